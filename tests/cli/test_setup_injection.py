"""What `gcp-wif setup` prints is code users run: a shell script they paste, Terraform they apply, YAML and JSON
the script writes. The oracle: for any value of any setup flag (the flags are read from the argparse parser, so a
new flag is drawn too), hostile ones included (metacharacters, quotes, newlines, `EOF`, `${}`, `%{}`, Unicode),
setup either refuses with one line naming a flag, or
  (a) the gcloud script, run by bash with `gcloud`, `aws` and `terraform` replaced by recorders, passes each value
      as exactly one argument equal to its normalised value, runs no other command and writes no other file;
  (b) the Terraform parses (python-hcl2) into exactly the expected blocks, each value where it belongs;
  (c) the YAML and JSON it writes read back as the plan's values.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

import hcl2
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from airflow_provider_gcp_wif import cli
from airflow_provider_gcp_wif.cli.setup_args import SETUP_ENV_DEFAULTS, SetupArgs, build_setup_plan
from airflow_provider_gcp_wif.cli.setup_plan import SERVICES
from airflow_provider_gcp_wif.cli.setup_writers import hcl_string

ISSUER = "https://0f5a1d2e-abcd-4e3f-9a8b-1234567890ab.tokens.sts.global.api.aws"
#: Values Google or AWS accept, per flag (dest): the property mixes them with hostile ones.
VALID: dict[str, list[str]] = {
    "project_id": ["wif-demo-project", "other-project-42"],
    "project_number": ["734501234567", "12"],
    "pool_id": ["aws-pool", "pool-2"],
    "provider_id": ["aws-provider", "prov"],
    "aws_account_id": ["123456789012"],
    "aws_role_name": ["wif-role", "arn:aws:iam::123456789012:role/service-role/wif-role", "path/to/r+=,.@_-x",
                      "arn:aws-cn:iam::123456789012:role/wif-role"],
    "service_account": ["named-sa", "named-sa@wif-demo-project.iam.gserviceaccount.com"],
    "bucket": ["my-data-bucket", "gs://other.bucket", "gs://b_1/"],
    "bucket_role": ["roles/storage.objectViewer", "projects/wif-demo-project/roles/custom.role",
                    "organizations/1234567/roles/my_role"],
    "universe_domain": ["googleapis.com", "Example.Test."],
    "organization_id": ["1234567"],
    "issuer_uri": [ISSUER, ISSUER + "/", "HTTPS://X.tokens.sts.global.api.aws:443/", "http://127.0.0.1:8080/i"],
}
HOSTILE = ["; touch pwned", "|touch pwned", "&& touch pwned", "$(touch pwned)", "`touch pwned`", "'", '"', "\n",
           "\nEOF\ntouch pwned\n", "\r", "\t", " ", "${file(\"/etc/passwd\")}", "%{if true}x%{endif}",
           "{touch,pwned}", ";{touch,pwned};#", "\n}\noutput \"x\" {\n  value = 1\n}\n# ", "é", "\u202e", "\x00",
           "\\", "<pwned", ">pwned", "#", "\"\nEOF\n"]


def setup_parser():
    commands = next(a for a in cli._parser()._actions if a.dest == "command")
    return commands.choices["setup"]


FLAGS = [a for a in setup_parser()._actions if a.option_strings and a.dest != "help"]
TEXT_FLAGS = [a for a in FLAGS if a.nargs != 0 and not a.choices]


#: Flags without which setup refuses anyway: always drawn (as the flag or its environment variable).
NEEDED = {"aws_role_name", "project_number", "aws_account_id"}


def test_every_text_flag_has_valid_values_to_draw():
    assert {a.dest for a in TEXT_FLAGS} == set(VALID), "add valid values for the new flag to VALID"


@st.composite
def invocations(draw):
    """(argv without --format, environment, the flags given a hostile value, those of them whose value has a
    character refused before any value is parsed: one of these is the flag the error names)."""
    hostile = draw(st.one_of(st.just(set()), st.sets(st.sampled_from([a.dest for a in TEXT_FLAGS]), min_size=1,
                                                     max_size=2)))
    argv, env, refused_first = ["setup"], {}, set()

    def value(dest: str) -> str:
        good = draw(st.sampled_from(VALID[dest]))
        if dest not in hostile:
            return good
        bad = draw(st.sampled_from(HOSTILE))
        at = draw(st.integers(0, len(good)))
        text = draw(st.sampled_from([good[:at] + bad + good[at:], bad, good + bad]))
        if any(not ch.isascii() or not ch.isprintable() or ch.isspace() or ch in "\"'`$\\;&|<>()" for ch in text):
            refused_first.add(dest)
        return text

    for action in FLAGS:
        flag = action.option_strings[0]
        if action.nargs == 0:
            if draw(st.integers(0, 3)) == 0:
                argv.append(flag)
        elif action.choices:
            if draw(st.booleans()):
                argv.append(f"{flag}={draw(st.sampled_from(list(action.choices)))}")
        elif action.dest in {*hostile, *NEEDED} or action.required or draw(st.booleans()):
            if action.dest in SETUP_ENV_DEFAULTS and not action.required and draw(st.integers(0, 3)) == 0:
                # (an environment variable cannot hold NUL: the next control character stands in)
                env[SETUP_ENV_DEFAULTS[action.dest]] = value(action.dest).replace("\x00", "\x01")
            else:
                for _ in range(draw(st.integers(1, 2)) if isinstance(action, argparse._AppendAction) else 1):
                    argv.append(f"{flag}={value(action.dest)}")
    return argv, env, hostile, refused_first


@contextlib.contextmanager
def environment(values: dict[str, str]):
    saved = {name: os.environ.pop(name, None) for name in SETUP_ENV_DEFAULTS.values()}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            os.environ.pop(name, None)
            if old is not None:
                os.environ[name] = old


def expected_values(argv: list[str], env: dict[str, str]) -> dict:
    """The normalised value of each flag, worked out here from the flags alone."""
    given_ = {}
    for word in argv[1:]:
        flag, _, value = word.partition("=")
        given_.setdefault(flag[2:].replace("-", "_"), []).append(value)
    one = {k: v[0] for k, v in given_.items()}
    for dest, name in SETUP_ENV_DEFAULTS.items():
        if dest not in one and name in env:
            one[dest] = env[name]
    role = one["aws_role_name"]
    arn = re.fullmatch(r"arn:([a-z-]+):iam::([0-9]{12}):role(/.*/|/)([^/]+)", role)
    name = arn.group(4) if arn else role.rsplit("/", 1)[-1]
    path = arn.group(3) if arn else ("/" + role.rsplit("/", 1)[0] + "/" if "/" in role else "/")
    project = one["project_id"]
    account = arn.group(2) if arn else one.get("aws_account_id")
    sa = one.get("service_account") or "airflow-wif"
    issuer = one.get("issuer_uri")
    if issuer:
        url = re.fullmatch(r"(?i)(https?)://([^/:]+)(?::([0-9]+))?(/.*)?", issuer)
        scheme, host, port = url.group(1).lower(), url.group(2).lower(), url.group(3)
        port = "" if port in (None, {"https": "443", "http": "80"}[scheme]) else f":{port}"
        issuer = f"{scheme}://{host}{port}{(url.group(4) or '').rstrip('/')}"
    return {
        "project_id": project, "project_number": one.get("project_number"),
        "pool_id": one.get("pool_id") or "airflow-aws", "provider_id": one.get("provider_id") or "aws-provider",
        "aws_account_id": account, "aws_role_name": name, "role_path": path,
        "aws_partition": arn.group(1) if arn else one.get("aws_partition") or "aws",
        "service_account": None if "direct_access" in given_ else (
            sa if "@" in sa else f"{sa}@{project}.iam.gserviceaccount.com"),
        "buckets": tuple(b.removeprefix("gs://").rstrip("/") for b in given_.get("bucket", [])),
        "bucket_role": one.get("bucket_role") or "roles/storage.objectAdmin",
        "universe_domain": (one.get("universe_domain") or "googleapis.com").lower().rstrip("."),
        "organization_id": one.get("organization_id"), "issuer_uri": issuer,
    }


RECORDER = "#!/bin/bash\nprintf '%s\\0' \"${0##*/}\" \"$#\" \"$@\" >> \"$RECORD\"\n"


def run_script(script: str) -> tuple[list[list[str]], dict[str, str], str]:
    """Run the script with bash in an empty folder, gcloud/aws/terraform recording their argv: (calls, the files
    the script left, the connection its uncommented `export` line sets)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "bin").mkdir()
        (root / "work").mkdir()
        for name in ("gcloud", "aws", "terraform"):
            (root / "bin" / name).write_text(RECORDER)
            (root / "bin" / name).chmod(0o755)
        export = next(line for line in script.splitlines() if line.startswith("# export AIRFLOW_CONN_"))
        (root / "setup.sh").write_text(f"{script}{export[2:]}\nprintf '%s' \"$AIRFLOW_CONN_GCP_WIF_DEFAULT\" "
                                       "> \"$CONNECTION\"\n")
        result = subprocess.run(["bash", str(root / "setup.sh")], cwd=root / "work", capture_output=True, text=True,
                                timeout=60, env={"PATH": f"{root / 'bin'}:/usr/bin:/bin", "HOME": str(root),
                                                 "RECORD": str(root / "calls"), "CONNECTION": str(root / "conn")})
        assert result.returncode == 0 and result.stderr == "", result.stderr
        words = (root / "calls").read_bytes().decode().split("\0")[:-1] if (root / "calls").exists() else []
        calls = []
        while words:
            count = int(words[1])
            calls.append([words[0], *words[2:2 + count]])
            words = words[2 + count:]
        files = {p.name: p.read_text() for p in (root / "work").iterdir()}
        return calls, files, (root / "conn").read_text()


def split_options(call: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    positional, options = [], []
    words = iter(call[1:])
    for word in words:
        if word.startswith("--"):
            name, has_value, value = word[2:].partition("=")
            options.append((name, value if has_value or call[0] != "aws" else next(words)))
        else:
            positional.append(word)
    return positional, options


def check_gcloud(script: str, plan) -> None:
    calls, files, connection = run_script(script)
    policies = plan.org_policies()
    expected_files = set() if plan.organization_id else {name for name, _, _ in policies}
    if plan.jwt:
        expected_files.add("gcp-wif-web-identity-token.json")
    assert set(files) == expected_files  # no file of anyone else's making
    lines = [line for line in script.splitlines() if line.startswith(("gcloud ", "aws ", 'ISSUER_URI="$(aws '))]
    assert len(calls) == len(lines)  # no command of anyone else's making
    sa_name, _, sa_domain = (plan.service_account or "@").partition("@")
    mapping = ",".join(f"{k}={v}" for k, v in plan.attribute_mapping.items())
    allowed = {
        "project": {plan.project_id, sa_domain.split(".")[0]}, "location": {"global"},
        "display-name": {"Airflow on AWS", "Airflow (keyless, from AWS)"}, "workload-identity-pool": {plan.pool_id},
        "account-id": {plan.aws_account_id}, "attribute-mapping": {mapping}, "attribute-condition": {plan.condition},
        "issuer-uri": {plan.issuer_uri or ""}, "allowed-audiences": {plan.jwt_audience},
        "role": {"roles/iam.workloadIdentityUser", plan.bucket_role}, "member": {plan.member, plan.grantee},
        "organization": {plan.organization_id}, "role-name": {plan.aws_role_name},
        "policy-name": {"gcp-wif-web-identity-token"}, "policy-document": {"file://gcp-wif-web-identity-token.json"},
        "query": {"IssuerIdentifier"}, "output": {"text"},
    }
    words = {"services", "enable", "iam", "workload-identity-pools", "create", "providers", "create-aws",
             "create-oidc", "service-accounts", "add-iam-policy-binding", "storage", "buckets", "resource-manager",
             "org-policies", "allow", "set-policy", "enable-outbound-web-identity-federation",
             "get-outbound-web-identity-federation-info", "put-role-policy", *SERVICES, plan.pool_id,
             plan.provider_id, sa_name, plan.service_account, *(f"gs://{b}" for b in plan.buckets),
             *(name for name, _, _ in policies), *(c for _, c, _ in policies), *(v for p in policies for v in p[2])}
    seen: set[str] = set()
    for call in calls:
        positional, options = split_options(call)
        assert set(positional) <= words, call
        for name, value in options:
            assert value in allowed[name], (name, value)
        seen.update(positional)
        seen.update(value for _, value in options)
    values = [plan.project_id, plan.pool_id, plan.provider_id, *(f"gs://{b}" for b in plan.buckets)]
    values += [plan.bucket_role, plan.grantee] if plan.buckets else []
    values += [plan.member] if plan.service_account else []
    values += [plan.aws_role_name, plan.jwt_audience] if plan.jwt else [plan.aws_account_id]
    values += [plan.service_account] if plan.service_account else []
    values += [plan.organization_id] if plan.organization_id and policies else []
    values += [plan.issuer_uri] if plan.issuer_uri else []
    assert set(values) <= seen
    assert json.loads(connection) == {"conn_type": "gcp_wif", "extra": plan.connection_extra()}
    for name, constraint, policy_values in policies:
        if not plan.organization_id:
            policy = yaml.safe_load(files[name])
            assert policy["name"] == f"projects/{plan.project_id}/policies/{constraint}"
            assert policy["spec"]["rules"][0]["values"]["allowedValues"] == policy_values
    if plan.jwt:
        assert json.loads(files["gcp-wif-web-identity-token.json"]) == plan.web_identity_token_policy()


def hcl_text(literal) -> str:
    """The string a Terraform quoted-string literal denotes (HCL native syntax spec: escapes, `$${`, `%%{`); a
    template interpolation or directive fails."""
    assert isinstance(literal, str) and literal.startswith('"') and literal.endswith('"'), literal
    body, out, i = literal[1:-1], [], 0
    escapes = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}
    while i < len(body):
        if body.startswith(("$${", "%%{"), i):
            out.append(body[i + 1:i + 3])
            i += 3
        elif body.startswith(("${", "%{"), i):
            raise AssertionError(f"a template in {literal!r}")
        elif body[i] == "\\":
            kind = body[i + 1]
            if kind in "uU":
                width = 4 if kind == "u" else 8
                out.append(chr(int(body[i + 2:i + 2 + width], 16)))
                i += 2 + width
            else:
                out.append(escapes[kind])
                i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


def resources(document: dict) -> dict[tuple[str, str], dict]:
    found = {}
    for item in document.get("resource", []):
        for kind, named in item.items():
            for name, body in named.items():
                found[(hcl_text(kind), hcl_text(name))] = body
    return found


def check_terraform(text: str, plan) -> None:
    document = hcl2.loads(text)
    assert set(document) <= {"resource", "output", "__comments__"}
    assert [list(output) for output in document["output"]] == [['"gcp_wif_connection"']]
    output = document["output"][0]
    connection = json.loads(hcl_text(output['"gcp_wif_connection"']["value"]))
    assert connection == {"conn_type": "gcp_wif", "extra": plan.connection_extra()}
    found = resources(document)
    policies = {re.sub(r"(?<!^)(?=[A-Z])", "_", c.split(".", 1)[1].replace(
        "allowServiceAccountCredentialLifetimeExtension", "lifetime_extension")).lower(): (c, v)
        for _, c, v in plan.org_policies()}
    buckets = {re.sub(r"[^a-z0-9_]", "_", b).strip("_"): b for b in plan.buckets}
    expected = {("google_project_service", "gcp_wif"), ("google_iam_workload_identity_pool", "airflow"),
                ("google_iam_workload_identity_pool_provider", "aws"),
                *(("google_org_policy_policy", name) for name in policies),
                *(("google_storage_bucket_iam_member", name) for name in buckets)}
    if plan.service_account:
        expected |= {("google_service_account", "airflow"),
                     ("google_service_account_iam_member", "airflow_workload_identity_user")}
    if plan.jwt:
        expected.add(("aws_iam_role_policy", "gcp_wif_web_identity_token"))
        if not plan.issuer_uri:
            expected.add(("aws_iam_outbound_web_identity_federation", "gcp_wif"))
    assert set(found) == expected
    assert hcl_text(found[("google_project_service", "gcp_wif")]["project"]) == plan.project_id
    pool = found[("google_iam_workload_identity_pool", "airflow")]
    assert (hcl_text(pool["project"]), hcl_text(pool["workload_identity_pool_id"])) == (plan.project_id, plan.pool_id)
    provider = found[("google_iam_workload_identity_pool_provider", "aws")]
    assert hcl_text(provider["workload_identity_pool_provider_id"]) == plan.provider_id
    assert hcl_text(provider["attribute_condition"]) == plan.condition
    assert {hcl_text(k): hcl_text(v) for k, v in provider["attribute_mapping"].items()} == plan.attribute_mapping
    if plan.jwt:
        (oidc,) = provider["oidc"]
        assert [hcl_text(a) for a in oidc["allowed_audiences"]] == [plan.jwt_audience]
        assert (hcl_text(oidc["issuer_uri"]) == plan.issuer_uri if plan.issuer_uri
                else oidc["issuer_uri"] == "${aws_iam_outbound_web_identity_federation.gcp_wif.issuer_identifier}")
        policy = found[("aws_iam_role_policy", "gcp_wif_web_identity_token")]
        assert hcl_text(policy["role"]) == plan.aws_role_name
    else:
        (aws,) = provider["aws"]
        assert hcl_text(aws["account_id"]) == plan.aws_account_id
    if plan.service_account:
        name, _, domain = plan.service_account.partition("@")
        account = found[("google_service_account", "airflow")]
        assert (hcl_text(account["account_id"]), hcl_text(account["project"])) == (name, domain.split(".")[0])
        member = found[("google_service_account_iam_member", "airflow_workload_identity_user")]["member"]
        assert hcl_text(member) == plan.member
    for name, bucket in buckets.items():
        grant = found[("google_storage_bucket_iam_member", name)]
        assert [hcl_text(grant[k]) for k in ("bucket", "role", "member")] == [bucket, plan.bucket_role, plan.grantee]
    for name, (constraint, values) in policies.items():
        policy = found[("google_org_policy_policy", name)]
        assert hcl_text(policy["name"]) == f"projects/{plan.project_id}/policies/{constraint}"
        assert [hcl_text(v) for v in policy["spec"][0]["rules"][0]["values"][0]["allowed_values"]] == values


def run_setup(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


OPTION_STRINGS = {s for a in FLAGS for s in a.option_strings}


@settings(derandomize=True, max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(invocations())
def test_setup_refuses_a_value_or_prints_code_that_runs_only_what_it_says(invocation):
    argv, env, hostile, refused_first = invocation
    with environment(env):
        for fmt in ("gcloud", "terraform"):
            code, out, err = run_setup([*argv, "--format", fmt])
            event(f"{fmt}: {'printed' if code == 0 else 'refused'}")
            if code != 0:
                assert code == 2 and out == "" and err.endswith("\n") and err.count("\n") == 1, err
                flag = re.match(r"gcp-wif setup: (--[a-z-]+): ", err)
                assert flag and flag.group(1) in OPTION_STRINGS, err
                event(f"refused: {err.split(': ')[1]}")
                if refused_first:
                    assert flag.group(1) in {f"--{d.replace('_', '-')}" for d in refused_first}, (hostile, err)
                continue
            assert not hostile, f"accepted a hostile value of {hostile}"
            plan = build_setup_plan(SetupArgs.from_namespace(cli._parser().parse_args(argv)))
            expected = expected_values(argv, env)
            assert {k: getattr(plan, k) for k in expected} == expected
            if fmt == "gcloud":
                check_gcloud(out, plan)
            else:
                check_terraform(out, plan)


def test_a_role_injected_into_the_bucket_role_is_refused_naming_the_flag():
    code, out, err = run_setup(["setup", "--project-id", "wif-demo-project", "--project-number", "734501234567",
                                "--aws-account-id", "123456789012", "--aws-role-name", "wif-role", "--bucket", "b-1",
                                "--bucket-role", "projects/x; touch pwned; echo /roles/storage.objectViewer"])
    assert code == 2 and out == ""
    assert err.startswith("gcp-wif setup: --bucket-role: ") and err.count("\n") == 1


@settings(derandomize=True, max_examples=200, deadline=None)
@given(st.text())
def test_an_hcl_string_reads_back_as_the_text(text):
    """hcl_string writes a literal that HCL (python-hcl2's parser, the spec's escapes) reads as ``text``."""
    document = hcl2.loads(f"x = {hcl_string(text)}\n")
    assert hcl_text(document["x"]) == text


@pytest.mark.parametrize("fmt", ["gcloud", "terraform"])
def test_a_trailing_newline_is_refused_not_printed(fmt):
    base = ["setup", "--project-id", "wif-demo-project", "--project-number", "734501234567", "--aws-account-id",
            "123456789012", "--aws-role-name", "wif-role", "--format", fmt]
    for flag, value in (("--aws-account-id", "123456789012\n"), ("--aws-role-name", "wif-role\n"),
                        ("--organization-id", "1234567\n"), ("--bucket", "my-bucket\n")):
        argv = [*base, flag, value]
        code, out, err = run_setup(argv)
        assert code == 2 and out == "" and err.startswith(f"gcp-wif setup: {flag}: "), (flag, err)
