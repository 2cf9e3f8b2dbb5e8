"""The writers of ``gcp-wif setup``'s output: a plan as a shell script of ``gcloud`` (and AWS CLI) commands or as
Terraform, from the templates in ``cli/templates/``, with every value quoted for the language it goes into (shell
words, HCL strings, YAML scalars, JSON)."""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
import shlex
import string
from typing import Any

from airflow_provider_gcp_wif.cli.setup_plan import JWT_MAX_DURATION_SECONDS, SERVICES, SetupPlan
from airflow_provider_gcp_wif.constants import (
    CONN_TYPE,
    JWT_POLICY_NAME,
    JWT_SIGNING_ALGORITHM,
)


@functools.cache
def _sections(name: str) -> dict[str, string.Template]:
    """The sections of a template file shipped in ``cli/templates/``: each ``#@ NAME`` line starts one, ``#@ end``
    ends the last; other ``#@`` lines are comments."""
    text = importlib.resources.files(__package__).joinpath("templates").joinpath(name).read_text(encoding="utf-8")
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.split("\n"):
        if line.startswith("#@ "):
            marker = line[3:]
            if marker.isidentifier():
                current = None if marker == "end" else sections.setdefault(marker, [])
            continue
        if current is not None:
            current.append(line)
    return {key: string.Template("\n".join(lines)) for key, lines in sections.items()}


def _fill(template_file: str, section: str, **values: Any) -> str:
    return _sections(template_file)[section].substitute(values)


class _Text(str):
    """Text setup composed itself, for the place it goes: constants, and values already quoted or escaped by the
    writer of that language (:func:`shell_word`, :func:`hcl_string`, :func:`_yaml_scalar`). Filled in as is."""


def _single_line(value: str) -> str:
    """``value``, which must not end a comment, a heredoc line or a command: no line break or other control
    character (the values were refused before they got here; this is the writers' own guard)."""
    if not value.isprintable():
        raise ValueError(f"setup would print a control character: {value[:80]!r}")
    return value


def shell_word(value: str) -> str:
    """``value`` as exactly one word of a POSIX shell (bash, zsh, sh), as :func:`shlex.quote` writes it: bare when
    it has only characters no shell reads, else in single quotes."""
    return shlex.quote(_single_line(str(value)))


def _shell_dq(value: str) -> _Text:
    """One shell word in double quotes (how a reader expects CEL, member and URL arguments), or
    :func:`shell_word`'s single quotes if it has a character double quotes leave to the shell (``$``, a backtick,
    a backslash, ``"``, ``!``)."""
    value = _single_line(value)
    if value and not any(ch in '$`\\"!' for ch in value):
        return _Text(f'"{value}"')
    return _Text(shell_word(value))


def _shell_words(values: Any) -> _Text:
    return _Text(" ".join(shell_word(v) for v in values))


def _comment(text: str) -> _Text:
    """Text for the rest of a ``#`` comment line (shell or Terraform): one line, whatever it says."""
    return _Text(_single_line(text))


def _heredoc(text: str, end: str = "EOF") -> _Text:
    """The body of a quoted heredoc (``<<'EOF'``: nothing in it is expanded), which no line of may end early."""
    if any(line == end for line in text.split("\n")):
        raise ValueError(f"a line of the heredoc would end it: {end!r}")
    return _Text(text)


def _sh(section: str, **values: Any) -> list[str]:
    """Lines of the gcloud script. Every value is one shell word (:func:`shell_word`) unless it is :class:`_Text`
    that was written for its place."""
    words = {key: value if isinstance(value, _Text) else shell_word(str(value)) for key, value in values.items()}
    return _fill("setup.sh.tmpl", section, **words).split("\n")


def _tf_text(section: str, **values: Any) -> _Text:
    """A piece of the Terraform: :class:`_Text` values are HCL written for their place (:func:`hcl_string`, blocks
    made of those); any other value is the text of a ``#`` comment and must be one line."""
    pieces = {key: value if isinstance(value, _Text) else _comment(str(value)) for key, value in values.items()}
    return _Text(_fill("setup.tf.tmpl", section, **pieces))


def _tf(section: str, **values: Any) -> str:
    """A Terraform block (ends with a newline)."""
    return _tf_text(section, **values) + "\n"


def render_gcloud(plan: SetupPlan) -> str:
    p = plan
    mapping = ",".join(f"{key}={value}" for key, value in p.attribute_mapping.items())
    pool_flags = _Text(f"--project={shell_word(p.project_id)} --location=global")
    who = "the AWS role itself (direct resource access)" if p.direct_access else f"service account {p.service_account}"
    lines = _sh("header", role=p.iam_role_arn if p.jwt else p.role_arn, project_id=p.project_id,
                project_number=p.project_number, who=_comment(who),
                route=_comment(" through AWS outbound identity federation (JWT)" if p.jwt else ""))
    if p.jwt:
        lines += _aws_cli_jwt_side(p)
    lines += _sh("services", services=_shell_words(SERVICES), project_id=p.project_id)
    lines += _gcloud_org_policies(p)
    lines += _sh("pool", pool_id=p.pool_id, pool_flags=pool_flags)
    provider = {"aws_account_id": p.aws_account_id, "aws_role_name": p.aws_role_name, "provider_id": p.provider_id,
                "pool_flags": pool_flags, "pool_id": p.pool_id, "mapping": _shell_dq(mapping),
                "condition": _shell_dq(p.condition)}
    if p.jwt:
        lines += _sh("provider_oidc", jwt_audience=_shell_dq(p.jwt_audience), **provider)
    else:
        lines += _sh("provider_aws", **provider)
    if p.service_account:
        sa_name, sa_project = p.service_account.split("@", 1)[0], p.service_account.split("@", 1)[1].split(".")[0]
        lines += _sh("service_account", sa_name=sa_name, sa_project=sa_project, service_account=p.service_account,
                     member=_shell_dq(p.member))
    lines += _sh("grants_service_account" if p.service_account else "grants_direct",
                 colon=_Text(":" if p.buckets else ", for example:"))
    for bucket in p.buckets:
        lines += _sh("bucket", bucket=f"gs://{bucket}", grantee=_shell_dq(p.grantee), bucket_role=p.bucket_role)
    if not p.buckets:
        lines += _sh("bucket_example", grantee=_shell_dq(p.grantee))
    if p.direct_access:
        lines += _sh("direct_access_note")
    lines += _sh("connection", connection=_connection_json(p))
    for note in p.notes:
        lines += _sh("note", note=_comment(note))
    return "\n".join(lines) + "\n"


def _aws_cli_jwt_side(p: SetupPlan) -> list[str]:
    """AWS CLI steps of ``--federation jwt``: the feature, the issuer URL (into ``$ISSUER_URI``), the role's
    policy."""
    issuer = (_shell_dq(p.issuer_uri) if p.issuer_uri
              else _Text(f'"{_fill("setup.sh.tmpl", "issuer_from_aws_cli")}"'))
    return _sh("aws_jwt_side", aws_account_id=p.aws_account_id, aws_role_name=p.aws_role_name, issuer=issuer,
               algorithm=JWT_SIGNING_ALGORITHM, max_duration=JWT_MAX_DURATION_SECONDS, policy_name=JWT_POLICY_NAME,
               policy_json=_heredoc(json.dumps(p.web_identity_token_policy(), indent=2)))


def _gcloud_org_policies(p: SetupPlan) -> list[str]:
    lines: list[str] = []
    for file_name, constraint, values in p.org_policies():
        common = {"constraint": constraint, "why": _comment(_POLICY_WHY[constraint]), "values": _shell_words(values)}
        if p.organization_id:
            lines += _sh("org_policy_organization", organization_id=p.organization_id, **common)
        else:
            lines += _sh("org_policy_project", project_id=p.project_id, file_name=file_name,
                         policy_yaml=_heredoc("\n".join(_policy_yaml(p.policy_parent, constraint, values))),
                         **common)
    return lines


_POLICY_WHY = {
    "iam.allowServiceAccountCredentialLifetimeExtension": "lets the service account mint tokens for up to 12 h; "
    "needed for lifetime_seconds over 3600",
    "iam.workloadIdentityPoolProviders": "pools may only trust AWS as an external identity provider",
    "iam.workloadIdentityPoolAwsAccounts": "AWS providers may only trust these AWS accounts",
}


def _yaml_scalar(value: str) -> str:
    """``value`` as a YAML double-quoted scalar: YAML 1.2 is a superset of JSON, and a JSON string (ASCII, its
    escapes a subset of YAML's) is read back as the same string, whatever it holds."""
    return json.dumps(value)


def _policy_yaml(parent: str, constraint: str, values: list[str]) -> list[str]:
    """An org policy as YAML: the template's keys, every value a :func:`_yaml_scalar`."""
    policy = _fill("org-policy.yaml.tmpl", "policy", name=_yaml_scalar(f"{parent}/policies/{constraint}"))
    return [*policy.split("\n"), *[_fill("org-policy.yaml.tmpl", "value", value=_yaml_scalar(value))
                                   for value in values]]


def _connection_json(plan: SetupPlan) -> str:
    return json.dumps({"conn_type": CONN_TYPE, "extra": plan.connection_extra()})


def hcl_string(value: str) -> _Text:
    """``value`` as a Terraform (HCL) quoted string literal that Terraform reads back as exactly ``value``: JSON's
    string syntax is HCL's, except that ``${`` and ``%{`` start a template there (``$${`` and ``%%{`` are their
    escapes) and that HCL has no ``\b`` and ``\f`` (``\u0008``, ``\u000c``). Non-ASCII text is written as is:
    JSON's surrogate-pair escapes are not code points in HCL."""
    escaped = re.sub(r"\\(.)", lambda m: _HCL_FOR_JSON_ESCAPE.get(m.group(1), m.group(0)),
                     json.dumps(value, ensure_ascii=False))
    return _Text(escaped.replace("${", "$${").replace("%{", "%%{"))


_HCL_FOR_JSON_ESCAPE = {"b": "\\u0008", "f": "\\u000c"}


_hcl = hcl_string


def _tf_name(text: str) -> _Text:
    """A Terraform resource name (an identifier) made from ``text``."""
    return _Text(re.sub(r"[^a-z0-9_]", "_", text.lower()).strip("_") or "x")


def render_terraform(plan: SetupPlan) -> str:
    p = plan
    mapping_rules = p.attribute_mapping
    width = max(len(key) for key in mapping_rules) + 2
    mapping = _Text("\n".join(_tf_text("mapping_rule", key=_Text(_hcl(key).ljust(width)), value=_hcl(value))
                              for key, value in mapping_rules.items()))
    policies = _terraform_policies(p)
    depends = _Text("")
    if policies:
        depends = _tf_text("depends_on", policies=_Text(", ".join(f"google_org_policy_policy.{name}"
                                                                   for name, _ in policies)))
    blocks = [
        _tf("header", role=p.iam_role_arn if p.jwt else p.role_arn, project_id=p.project_id,
            project_number=p.project_number, route=" through AWS outbound identity federation (JWT)" if p.jwt else ""),
        _tf("services", services=_Text(", ".join(_hcl(s) for s in SERVICES)), project_id=_hcl(p.project_id)),
        *_terraform_aws_jwt_side(p),
        *[block for _, block in policies],
        _tf("pool", project_id=_hcl(p.project_id), pool_id=_hcl(p.pool_id)),
        _tf("provider", project_id=_hcl(p.project_id), provider_id=_hcl(p.provider_id), mapping=mapping,
            condition=_hcl(p.condition), trust=_terraform_trust(p), depends=depends),
    ]
    if p.service_account:
        sa_name = p.service_account.split("@", 1)[0]
        sa_project = p.service_account.split("@", 1)[1].split(".", 1)[0]
        blocks += [_tf("service_account", sa_project=_hcl(sa_project), sa_name=_hcl(sa_name)),
                   _tf("service_account_member", member=_hcl(p.member))]
    for bucket in p.buckets:
        blocks.append(_tf("bucket", resource=_tf_name(bucket), bucket=_hcl(bucket), bucket_role=_hcl(p.bucket_role),
                          grantee=_hcl(p.grantee)))
    blocks.append(_tf("connection", connection=_hcl(_connection_json(p))))
    blocks += [_tf("note", note=note) for note in p.notes]
    return "\n".join(blocks)


AWS_FEDERATION_RESOURCE = "aws_iam_outbound_web_identity_federation.gcp_wif"


def _terraform_trust(p: SetupPlan) -> _Text:
    """The provider's ``aws {}`` block, or (``jwt``) its ``oidc {}`` block."""
    if not p.jwt:
        return _tf_text("trust_aws", aws_account_id=_hcl(p.aws_account_id))
    issuer = _hcl(p.issuer_uri) if p.issuer_uri else _Text(f"{AWS_FEDERATION_RESOURCE}.issuer_identifier")
    return _tf_text("trust_oidc", issuer=issuer, jwt_audience=_hcl(p.jwt_audience))


def _terraform_aws_jwt_side(p: SetupPlan) -> list[str]:
    """``jwt``: the AWS side (hashicorp/aws provider, configured for account ``p.aws_account_id``)."""
    if not p.jwt:
        return []
    blocks = []
    if not p.issuer_uri:
        blocks.append(_tf("aws_federation", aws_account_id=p.aws_account_id))
    statement = p.web_identity_token_policy()["Statement"][0]
    blocks.append(_tf("aws_role_policy", aws_role_name=p.aws_role_name, algorithm=JWT_SIGNING_ALGORITHM,
                      max_duration=JWT_MAX_DURATION_SECONDS, policy_name=_hcl(JWT_POLICY_NAME),
                      role_name=_hcl(p.aws_role_name), sid=_hcl(statement["Sid"]), jwt_audience=_hcl(p.jwt_audience),
                      signing_algorithm=_hcl(JWT_SIGNING_ALGORITHM),
                      duration=_hcl(statement["Condition"]["NumericLessThanEquals"]["sts:DurationSeconds"])))
    return blocks


def _terraform_policies(p: SetupPlan) -> list[tuple[str, str]]:
    """(resource name, block) per org policy. Terraform owns a policy resource whole, so the policies are set on
    the project and merge with the organization's (``inherit_from_parent``); for the organization itself the
    `allow` commands (which extend the organization's values) are given as comments."""
    result = []
    for _file_name, constraint, values in p.org_policies():
        name = constraint.split(".", 1)[1].replace("allowServiceAccountCredentialLifetimeExtension",
                                                   "lifetime_extension")
        resource = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
        parent = f"projects/{p.project_id}"
        org_note = _Text("")
        if p.organization_id:
            org_note = _Text(_tf_text("org_policy_organization_note", constraint=shell_word(constraint),
                                      values=_shell_words(values), organization_id=shell_word(p.organization_id))
                             + "\n")
        result.append((resource, _tf("org_policy", why=_POLICY_WHY[constraint], org_note=org_note,
                                     resource=_tf_name(resource), name=_hcl(f"{parent}/policies/{constraint}"),
                                     parent=_hcl(parent), allowed=_Text(", ".join(_hcl(v) for v in values)))))
    return result

