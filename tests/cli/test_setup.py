"""`gcp-wif setup`: gcloud commands and Terraform for the Google side, restricted to one AWS role."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess

import pytest
import yaml

from tests.emulated_gcloud import assert_gcloud_parses

from .running import run_cli

ARGS = ["setup", "--project-id", "wif-demo-project", "--project-number", "734501234567", "--pool-id", "aws-pool",
        "--provider-id", "aws-provider", "--aws-account-id", "123456789012", "--aws-role-name", "wif-role"]
MEMBER = ("principalSet://iam.googleapis.com/projects/734501234567/locations/global/workloadIdentityPools/aws-pool/"
          "attribute.aws_role/arn:aws:sts::123456789012:assumed-role/wif-role")
CONDITION = "--attribute-condition=\"attribute.aws_role=='arn:aws:sts::123456789012:assumed-role/wif-role'\""
SA = "airflow-wif@wif-demo-project.iam.gserviceaccount.com"


def commands(script: str) -> list[str]:
    return [line for line in script.splitlines() if line.startswith("gcloud ")]


def heredocs(script: str) -> dict[str, str]:
    return dict(re.findall(r"cat > (\S+) <<'EOF'\n(.*?)\nEOF", script, re.DOTALL))


def test_gcloud_commands_create_pool_provider_account_and_the_exact_binding():
    code, out, _ = run_cli(*ARGS)
    assert code == 0
    lines = commands(out)
    assert [" ".join(shlex.split(line)[1:4]) for line in lines] == [
        "services enable iam.googleapis.com",
        "iam workload-identity-pools create",
        "iam workload-identity-pools providers",
        "iam service-accounts create",
        "iam service-accounts add-iam-policy-binding",
    ]
    provider = lines[2]
    assert "providers create-aws aws-provider" in provider and "--account-id=123456789012" in provider
    assert CONDITION in provider
    binding = shlex.split(lines[4])
    assert binding[4] == SA
    assert "--role=roles/iam.workloadIdentityUser" in binding and f"--member={MEMBER}" in binding
    assert "org-policies" not in out


def test_org_policies_extend_the_organizations_values_and_never_replace_them():
    code, out, _ = run_cli(*ARGS, "--lifetime-over-hour", "--org-restrictions", "--organization-id", "1234567")
    assert code == 0
    assert heredocs(out) == {}  # no set-policy on the organization: it would replace other teams' values
    assert [line for line in commands(out) if "org-policies" in line] == [
        "gcloud resource-manager org-policies allow iam.workloadIdentityPoolProviders https://sts.amazonaws.com "
        "--organization=1234567",
        "gcloud resource-manager org-policies allow iam.workloadIdentityPoolAwsAccounts 123456789012 "
        "--organization=1234567",
        f"gcloud resource-manager org-policies allow iam.allowServiceAccountCredentialLifetimeExtension {SA} "
        "--organization=1234567",
    ]
    assert "ADDS to the organization's allowed values" in out


def test_project_org_policies_merge_with_the_organizations_as_valid_policy_yaml():
    code, out, _ = run_cli(*ARGS, "--lifetime-over-hour", "--org-restrictions")
    assert code == 0
    policies = {name: yaml.safe_load(text) for name, text in heredocs(out).items()}
    by_constraint = {p["name"].rsplit("/", 1)[1]: p for p in policies.values()}
    assert by_constraint["iam.allowServiceAccountCredentialLifetimeExtension"]["spec"]["rules"][0]["values"] == {
        "allowedValues": [SA]}
    assert by_constraint["iam.workloadIdentityPoolAwsAccounts"]["spec"]["rules"][0]["values"]["allowedValues"] == [
        "123456789012"]
    assert all(p["spec"]["inheritFromParent"] is True for p in policies.values())
    assert all(p["name"].startswith("projects/wif-demo-project/policies/") for p in policies.values())
    assert "MERGES with the organization's" in out
    # Allowed before the provider is created: the policies gate creating it.
    lines = commands(out)
    assert max(i for i, line in enumerate(lines) if "set-policy" in line) < next(
        i for i, line in enumerate(lines) if "create-aws" in line)

    _, only_lifetime, _ = run_cli(*ARGS, "--lifetime-over-hour")
    assert "allowServiceAccountCredentialLifetimeExtension" in only_lifetime
    assert "workloadIdentityPoolAwsAccounts" not in only_lifetime


def test_a_role_arn_with_a_path_gives_the_assumed_role_member_without_the_path():
    args = [a for a in ARGS if a not in ("--aws-account-id", "123456789012")]
    args[args.index("wif-role")] = "arn:aws:iam::123456789012:role/service-role/wif-role"
    code, out, _ = run_cli(*args)
    assert code == 0
    assert f'--member="{MEMBER}"' in out and "service-role" not in out


@pytest.mark.parametrize(
    ("change", "flag"),
    [
        (("--project-number", "wif-demo-project"), "--project-number: project number"),
        (("--pool-id", "gcp-pool"), "--pool-id: pool id 'gcp-pool' starts with 'gcp-'"),
        (("--aws-account-id", "12345"), "--aws-account-id: '12345' is not a 12-digit AWS account id"),
        (("--aws-role-name", "not a role"), "--aws-role-name: 'not a role' is not an IAM role name"),
        (("--project-id", "X"), "--project-id: 'X' is not a Google Cloud project id"),
    ],
)
def test_bad_inputs_exit_2_and_name_the_flag(change, flag):
    args = list(ARGS)
    args[args.index(change[0]) + 1] = change[1]
    code, out, err = run_cli(*args)
    assert code == 2 and out == ""
    assert flag in err


def test_terraform_blocks_name_the_same_member_condition_and_account():
    code, out, _ = run_cli(*ARGS, "--format", "terraform", "--lifetime-over-hour", "--org-restrictions")
    assert code == 0
    resources = re.findall(r'^resource "(\w+)" "(\w+)" \{$', out, re.MULTILINE)
    assert [kind for kind, _ in resources] == [
        "google_project_service", "google_org_policy_policy", "google_org_policy_policy", "google_org_policy_policy",
        "google_iam_workload_identity_pool", "google_iam_workload_identity_pool_provider",
        "google_service_account", "google_service_account_iam_member"]
    assert out.count("inherit_from_parent = true") == 3
    assert out.count("{") == out.count("}")
    assert f'member             = "{MEMBER}"' in out
    assert "attribute_condition = \"attribute.aws_role=='arn:aws:sts::123456789012:assumed-role/wif-role'\"" in out
    assert re.search(r'aws \{\n\s+account_id = "123456789012"\n\s+\}', out)
    assert 'role               = "roles/iam.workloadIdentityUser"' in out
    # CEL's {account_arn} / {role_name} are not Terraform templates; "${" would be.
    assert "${" not in out


VARIANTS = {
    "service_account": ["--lifetime-over-hour", "--org-restrictions"],
    "direct_access": ["--direct-access", "--bucket", "my-data-bucket", "--org-restrictions", "--organization-id",
                      "1234567"],
    "organization": ["--bucket", "my-data-bucket", "--lifetime-over-hour", "--organization-id", "1234567",
                     "--aws-partition", "aws-us-gov"],
}


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_terraform_output_is_valid_hcl_in_canonical_format(tmp_path, variant):
    _, out, _ = run_cli(*ARGS, "--format", "terraform", *VARIANTS[variant])
    (tmp_path / "main.tf").write_text(out)
    result = subprocess.run(["terraform", "fmt", "-check", "-diff", str(tmp_path)], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "TF_CLI_CONFIG_FILE": os.devnull})
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("gcloud") is None, reason="gcloud is not installed")
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_gcloud_command_parses(tmp_path, variant):
    _, out, _ = run_cli(*ARGS, *VARIANTS[variant])
    for name, text in heredocs(out).items():
        (tmp_path / name).write_text(text + "\n")
    lines = [line.replace("$ISSUER_URI", "https://example-issuer.test") for line in commands(out)]
    assert len(lines) >= 5
    assert_gcloud_parses(lines, tmp_path)


def test_the_printed_binding_is_the_one_the_exchange_needs(emulator, seed_env):
    """Replace the fixture's binding by the printed one: the chain works again."""
    sa = emulator.info["service_account"]
    emulator.control.remove_bindings(sa)
    _, out, _ = run_cli(*ARGS)
    member = shlex.split(commands(out)[4])[-1].removeprefix("--member=")
    emulator.control.add_binding(sa, "roles/iam.workloadIdentityUser", member)
    code, report, _ = run_cli("doctor")
    assert code == 0, report


# -- --federation jwt: AWS outbound identity federation ----------------------------------------------------------

JWT_ARGS = [*ARGS, "--federation", "jwt"]
JWT_AUDIENCE = ("https://iam.googleapis.com/projects/734501234567/locations/global/workloadIdentityPools/aws-pool/"
                "providers/aws-provider")
ISSUER = "https://0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0.tokens.sts.global.api.aws"


def aws_commands(script: str) -> list[str]:
    return [line for line in script.splitlines() if line.startswith(("aws ", "ISSUER_URI="))]


def test_jwt_script_turns_the_feature_on_reads_the_issuer_and_lets_only_the_role_ask_for_this_audience():
    code, out, err = run_cli(*JWT_ARGS)
    assert code == 0, err
    assert aws_commands(out) == [
        "aws iam enable-outbound-web-identity-federation",
        'ISSUER_URI="$(aws iam get-outbound-web-identity-federation-info --query IssuerIdentifier --output text)"',
        "aws iam put-role-policy --role-name wif-role --policy-name gcp-wif-web-identity-token "
        "--policy-document file://gcp-wif-web-identity-token.json",
    ]
    policy = json.loads(heredocs(out)["gcp-wif-web-identity-token.json"])
    (statement,) = policy["Statement"]
    assert statement["Action"] == "sts:GetWebIdentityToken" and statement["Effect"] == "Allow"
    assert statement["Condition"] == {
        "ForAllValues:StringEquals": {"sts:IdentityTokenAudience": JWT_AUDIENCE},
        "StringEquals": {"sts:SigningAlgorithm": "RS256"},
        "NumericLessThanEquals": {"sts:DurationSeconds": "300"},
    }
    # The AWS side comes first: the provider needs the issuer URL it reads.
    lines = out.splitlines()
    assert lines.index(aws_commands(out)[-1]) < next(i for i, line in enumerate(lines) if "create-oidc" in line)
    provider = shlex.split(next(line for line in commands(out) if "providers create-oidc aws-provider" in line))
    assert "--issuer-uri=$ISSUER_URI" in provider and f"--allowed-audiences={JWT_AUDIENCE}" in provider
    assert ("--attribute-condition=attribute.aws_account=='123456789012' && "
            "attribute.aws_role=='arn:aws:iam::123456789012:role/wif-role'") in provider
    assert "create-aws" not in out and "--account-id" not in out
    binding = shlex.split(next(line for line in commands(out) if "add-iam-policy-binding" in line))
    assert ("--member=principalSet://iam.googleapis.com/projects/734501234567/locations/global/workloadIdentityPools/"
            "aws-pool/attribute.aws_role/arn:aws:iam::123456789012:role/wif-role") in binding
    assert '"federation": "jwt"' in out


def test_jwt_with_a_known_issuer_uses_it_and_org_restrictions_allow_that_issuer():
    code, out, err = run_cli(*JWT_ARGS, "--issuer-uri", ISSUER + "/", "--org-restrictions")
    assert code == 0, err
    assert f'ISSUER_URI="{ISSUER}"' in out.splitlines()
    policies = {p["name"].rsplit("/", 1)[1]: p for p in map(yaml.safe_load, heredocs(out).values()) if "name" in p}
    assert policies["iam.workloadIdentityPoolProviders"]["spec"]["rules"][0]["values"]["allowedValues"] == [ISSUER]
    assert "iam.workloadIdentityPoolAwsAccounts" not in out  # that constraint is about AWS providers


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--issuer-uri", ISSUER], "--issuer-uri: applies to --federation jwt only"),
        (["--federation", "jwt", "--issuer-uri", "http://issuer.example.com"], "--issuer-uri: 'http://issuer.example"),
        (["--federation", "jwt", "--org-restrictions"], "--issuer-uri: is needed with --org-restrictions"),
        (["--federation", "jwt", "--aws-role-name", "arn:aws:iam::123456789012:role/we{ird}/r"],
         "--aws-role-name: the IAM path '/we{ird}/'"),
    ],
)
def test_jwt_bad_inputs_exit_2_and_name_the_flag(extra, message):
    code, out, err = run_cli(*ARGS, *extra)
    assert code == 2 and out == ""
    assert message in err


def test_jwt_terraform_has_the_aws_side_and_an_oidc_block_instead_of_aws():
    code, out, _ = run_cli(*JWT_ARGS, "--format", "terraform")
    assert code == 0
    resources = [kind for kind, _ in re.findall(r'^resource "(\w+)" "(\w+)" \{', out, re.MULTILINE)]
    assert resources[:3] == ["google_project_service", "aws_iam_outbound_web_identity_federation",
                             "aws_iam_role_policy"]
    assert "issuer_uri        = aws_iam_outbound_web_identity_federation.gcp_wif.issuer_identifier" in out
    assert f'allowed_audiences = ["{JWT_AUDIENCE}"]' in out
    assert not re.search(r"aws \{\n\s+account_id", out)
    _, given, _ = run_cli(*JWT_ARGS, "--format", "terraform", "--issuer-uri", ISSUER)
    assert "aws_iam_outbound_web_identity_federation" not in given and f'issuer_uri        = "{ISSUER}"' in given


VARIANTS["jwt"] = ["--federation", "jwt", "--aws-role-name", "arn:aws:iam::123456789012:role/service-role/wif-role",
                   "--bucket", "my-data-bucket", "--lifetime-over-hour"]
VARIANTS["jwt_direct_org"] = ["--federation", "jwt", "--direct-access", "--issuer-uri", ISSUER, "--org-restrictions",
                              "--organization-id", "1234567"]
