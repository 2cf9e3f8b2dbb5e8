"""`gcp-wif setup`: gcloud commands and Terraform for the Google side, restricted to one AWS role."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess

import pytest
import yaml

from tests.emulated_gcloud import assert_gcloud_parses

from .conftest import run_cli

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
    lines = commands(out)
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
