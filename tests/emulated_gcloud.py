"""Apply the gcloud commands and Terraform we print to the emulated Google Cloud's configuration.

``--federation jwt`` also prints the AWS side (``aws iam ...`` commands, a shell variable holding the issuer URL,
and ``aws_*`` Terraform resources): with ``aws`` (an admin boto3 session of the emulated AWS account) and
``aws_endpoint``, those are applied to the emulated AWS through boto3, the AWS CLI's own engine.

Exactly the commands and resources `gcp-wif setup` and diagnosis.py's fix texts print, interpreted as Google would
apply them (a provider's --attribute-mapping replaces the whole mapping; set-policy replaces a policy; `allow`
extends it; org policies restrict which AWS accounts a provider may trust when it is created or updated). Anything
else, or an unfilled placeholder, is an error: a fix we print that this cannot apply is a fix the user cannot
apply either.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from typing import Any

import yaml
from botocore.exceptions import ClientError

from airflow_provider_gcp_wif.testing import EmulatorControl

_PLACEHOLDER = re.compile(r"\b(?:PROJECT_ID|PROJECT_NUMBER|ORG_ID|SA_EMAIL|POOL_ID|PROVIDER_ID|AWS_ACCOUNT_ID|"
                          r"AWS_ROLE_NAME|ACCOUNT_UNIQUE_ID|SESSION)\b")
_READ_ONLY = {("iam", "workload-identity-pools", "providers", "describe"), ("iam", "service-accounts", "describe"),
              ("iam", "service-accounts", "list"), ("iam", "workload-identity-pools", "describe"),
              ("resource-manager", "org-policies", "describe")}
AWS_PROVIDER_VALUE = "https://sts.amazonaws.com"
ACCOUNTS_CONSTRAINT = "iam.workloadIdentityPoolAwsAccounts"
PROVIDERS_CONSTRAINT = "iam.workloadIdentityPoolProviders"
LIFETIME_CONSTRAINT = "iam.allowServiceAccountCredentialLifetimeExtension"


class GcloudError(RuntimeError):
    """The command would fail on Google Cloud too (or is not one we print)."""


class AlreadyInState(GcloudError):
    """E.g. undeleting a pool that is not deleted: harmless, nothing changed (gcloud also reports an error)."""


def gcloud_commands(text: str) -> list[str]:
    """Every gcloud command in a fix text (in backticks) or a script (one per line)."""
    found = re.findall(r"`(gcloud [^`]+)`", text)
    found += [line.strip() for line in text.splitlines() if line.startswith("gcloud ")]
    return found


def is_mutating(command: str) -> bool:
    words = [w for w in shlex.split(command)[1:] if not w.startswith("-")]
    return not any(tuple(words[: len(verb)]) == verb for verb in _READ_ONLY)


@dataclass
class EmulatedGcloud:
    """A gcloud (and Terraform) that acts on the emulated project behind ``control``."""

    control: EmulatorControl
    organization_id: str = "1234567"
    files: dict[str, str] = field(default_factory=dict)
    #: (parent, constraint) -> {"values": [...], "inherit": bool}; parent is "organizations/N" or "projects/P".
    policies: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    applied: list[str] = field(default_factory=list)
    #: An admin boto3 session of the emulated AWS account and its endpoint (for the AWS side of ``jwt``).
    aws: Any = None
    aws_endpoint: str | None = None
    #: Shell variables the script set (``ISSUER_URI``).
    variables: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        config = self.control.get_config()
        self.project_id: str = config["project_id"]
        self.project_number: str = config["project_number"]

    # -- configuration helpers -------------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        return self.control.get_config()

    def _put(self, config: dict[str, Any]) -> None:
        self.control.replace_config(config)

    def _project(self, value: str | None) -> None:
        if value is not None and value not in (self.project_id, self.project_number):
            raise GcloudError(f"project {value!r} is not the emulated project")

    def effective_allowed(self, constraint: str) -> list[str] | None:
        """The project's effective allowed values (``None``: no policy, everything allowed)."""
        project = self.policies.get((f"projects/{self.project_id}", constraint))
        organization = self.policies.get((f"organizations/{self.organization_id}", constraint))
        if project is None:
            return None if organization is None else list(organization["values"])
        values = list(project["values"])
        if project["inherit"] and organization is not None:
            values += [v for v in organization["values"] if v not in values]
        return values

    def _sync_lifetime_policy(self) -> None:
        config = self._config()
        config["org_policy"]["lifetime_extension"] = self.effective_allowed(LIFETIME_CONSTRAINT) or []
        self._put(config)

    def _check_provider_policies(self, account: str | None, provider_value: str = AWS_PROVIDER_VALUE) -> None:
        """``provider_value``: ``https://sts.amazonaws.com`` for AWS providers, the issuer URI for OIDC ones."""
        providers = self.effective_allowed(PROVIDERS_CONSTRAINT)
        if providers is not None and provider_value not in providers:
            raise GcloudError(f"FAILED_PRECONDITION: org policy {PROVIDERS_CONSTRAINT} does not allow "
                              f"{provider_value}")
        accounts = self.effective_allowed(ACCOUNTS_CONSTRAINT)
        if account is not None and accounts is not None and account not in accounts:
            raise GcloudError(f"FAILED_PRECONDITION: org policy {ACCOUNTS_CONSTRAINT} does not allow {account}")

    def _pool(self, config: dict[str, Any], pool_id: str) -> dict[str, Any]:
        if pool_id not in config["pools"]:
            raise GcloudError(f"NOT_FOUND: pool {pool_id}")
        return config["pools"][pool_id]

    def _provider(self, config: dict[str, Any], pool_id: str, provider_id: str) -> dict[str, Any]:
        providers = self._pool(config, pool_id).setdefault("providers", {})
        if provider_id not in providers:
            raise GcloudError(f"NOT_FOUND: provider {provider_id}")
        return providers[provider_id]

    def _bind(self, bindings: list[dict[str, Any]], role: str, member: str) -> None:
        for binding in bindings:
            if binding["role"] == role:
                if member not in binding["members"]:
                    binding["members"].append(member)
                return
        bindings.append({"role": role, "members": [member]})

    def _service_account(self, config: dict[str, Any], email: str) -> dict[str, Any]:
        if email not in config["service_accounts"]:
            raise GcloudError(f"NOT_FOUND: service account {email}")
        return config["service_accounts"][email]

    # -- gcloud ----------------------------------------------------------------------------------------------
    def run(self, command: str) -> None:
        command = (command.replace("PROJECT_ID", self.project_id).replace("PROJECT_NUMBER", self.project_number)
                   .replace("ORG_ID", self.organization_id))
        if _PLACEHOLDER.search(command):
            raise GcloudError(f"unfilled placeholder in {command!r}")
        words = shlex.split(command)
        if not words or words[0] != "gcloud":
            raise GcloudError(f"not a gcloud command: {command!r}")
        positional: list[str] = []
        flags: dict[str, str | bool] = {}
        for word in words[1:]:
            if word.startswith("--"):
                name, has_value, value = word[2:].partition("=")
                if name.startswith("no-") and not has_value:
                    flags[name[3:]] = False
                else:
                    flags[name] = value if has_value else True
            else:
                positional.append(word)
        self._dispatch(positional, flags, command)
        self.applied.append(command)

    def _dispatch(self, words: list[str], flags: dict[str, str | bool], command: str) -> None:
        def flag(name: str) -> str | None:
            value = flags.get(name)
            return value if isinstance(value, str) else None

        self._project(flag("project"))
        if tuple(w for w in words[:4]) in _READ_ONLY or tuple(words[:3]) in _READ_ONLY:
            return
        config = self._config()
        key = tuple(words[:4]) if words[:3] == ["iam", "workload-identity-pools", "providers"] else tuple(words[:3])
        if words[:2] == ["services", "enable"]:
            config["disabled_services"] = [s for s in config.get("disabled_services", []) if s not in words[2:]]
        elif key == ("iam", "workload-identity-pools", "create"):
            if words[3] in config["pools"]:
                raise GcloudError(f"ALREADY_EXISTS: pool {words[3]}")
            config["pools"][words[3]] = {"disabled": bool(flags.get("disabled", False)), "providers": {}}
        elif key == ("iam", "workload-identity-pools", "update"):
            if "disabled" in flags:
                self._pool(config, words[3])["disabled"] = bool(flags["disabled"])
        elif key == ("iam", "workload-identity-pools", "undelete"):
            pool = self._pool(config, words[3])
            if not pool.get("deleted"):
                raise AlreadyInState(f"pool {words[3]} is not deleted")
            pool["deleted"] = False
        elif key[:3] == ("iam", "workload-identity-pools", "providers"):
            self._provider_command(config, key[3], words[4], flags)
        elif key == ("iam", "service-accounts", "create"):
            email = f"{words[3]}@{flag('project') or self.project_id}.iam.gserviceaccount.com"
            if email in config["service_accounts"]:
                raise GcloudError(f"ALREADY_EXISTS: {email}")
            config["service_accounts"][email] = {"disabled": False, "bindings": []}
        elif key == ("iam", "service-accounts", "add-iam-policy-binding"):
            account = self._service_account(config, words[3])
            self._bind(account.setdefault("bindings", []), str(flag("role")), str(flag("member")))
        elif key == ("iam", "service-accounts", "enable"):
            self._service_account(config, words[3])["disabled"] = False
        elif key == ("projects", "add-iam-policy-binding", words[2] if len(words) > 2 else ""):
            self._project(words[2])
            self._bind(config.setdefault("project_iam", []), str(flag("role")), str(flag("member")))
        elif words[:3] == ["storage", "buckets", "add-iam-policy-binding"]:
            bucket = words[3].removeprefix("gs://").rstrip("/")
            if bucket not in config["buckets"]:
                raise GcloudError(f"NOT_FOUND: bucket {bucket}")
            bucket_config = config["buckets"][bucket] or {}
            self._bind(bucket_config.setdefault("iam", []), str(flag("role")), str(flag("member")))
            config["buckets"][bucket] = bucket_config
        elif words[:3] == ["resource-manager", "org-policies", "allow"]:
            constraint = words[3].removeprefix("constraints/")
            parent = (f"organizations/{flag('organization')}" if flag("organization")
                      else f"projects/{flag('project')}")
            if flag("organization") and flag("organization") != self.organization_id:
                raise GcloudError(f"organization {flag('organization')} is not the emulated one")
            policy = self.policies.setdefault((parent, constraint), {"values": [], "inherit": False})
            policy["values"] += [v for v in words[4:] if v not in policy["values"]]
            self._put(config)
            self._sync_lifetime_policy()
            return
        elif words[:2] == ["org-policies", "set-policy"]:
            self._set_policy(yaml.safe_load(self.files[words[2]]))
            self._put(config)
            self._sync_lifetime_policy()
            return
        else:
            raise GcloudError(f"not a command we print: {command!r}")
        self._put(config)

    def _provider_command(self, config: dict[str, Any], verb: str, provider_id: str,
                          flags: dict[str, str | bool]) -> None:
        pool_id = str(flags.get("workload-identity-pool"))
        if flags.get("location") != "global":
            raise GcloudError("--location=global is required")
        mapping = flags.get("attribute-mapping")
        fields: dict[str, Any] = {}
        if isinstance(mapping, str):
            fields["attribute_mapping"] = parse_arg_dict(mapping)
        if isinstance(flags.get("attribute-condition"), str):
            fields["attribute_condition"] = flags["attribute-condition"]
        if isinstance(flags.get("account-id"), str):
            fields["aws_account_id"] = flags["account-id"]
        if "disabled" in flags:
            fields["disabled"] = bool(flags["disabled"])
        if verb in ("create-oidc", "update-oidc"):
            self._oidc_provider_command(config, verb, pool_id, provider_id, flags, fields)
        elif verb == "create-aws":
            pool = self._pool(config, pool_id)
            if provider_id in pool.setdefault("providers", {}):
                raise GcloudError(f"ALREADY_EXISTS: provider {provider_id}")
            if "aws_account_id" not in fields:
                raise GcloudError("--account-id is required")
            self._check_provider_policies(fields["aws_account_id"])
            pool["providers"][provider_id] = {"disabled": False, "attribute_mapping": None,
                                              "attribute_condition": None, **fields}
        elif verb == "update-aws":
            self._check_provider_policies(fields.get("aws_account_id"))
            self._provider(config, pool_id, provider_id).update(fields)
        elif verb == "undelete":
            provider = self._provider(config, pool_id, provider_id)
            if not provider.get("deleted"):
                raise AlreadyInState(f"provider {provider_id} is not deleted")
            provider["deleted"] = False
        else:
            raise GcloudError(f"providers {verb} is not a command we print")

    def _oidc_provider_command(self, config: dict[str, Any], verb: str, pool_id: str, provider_id: str,
                               flags: dict[str, str | bool], fields: dict[str, Any]) -> None:
        """``create-oidc`` / ``update-oidc``: ``--issuer-uri``, ``--allowed-audiences`` (comma-separated; an update
        replaces the list), ``--jwk-json-path`` is not something we print."""
        if "account-id" in flags or "jwk-json-path" in flags:
            raise GcloudError("not an OIDC provider flag we print")
        issuer = flags.get("issuer-uri")
        audiences = flags.get("allowed-audiences")
        if verb == "create-oidc":
            pool = self._pool(config, pool_id)
            if provider_id in pool.setdefault("providers", {}):
                raise GcloudError(f"ALREADY_EXISTS: provider {provider_id}")
            if not isinstance(issuer, str) or not issuer:
                raise GcloudError("--issuer-uri is required")
            self._check_provider_policies(None, issuer)
            pool["providers"][provider_id] = {
                "disabled": False, "attribute_mapping": None, "attribute_condition": None, **fields,
                "oidc": {"issuer_uri": issuer,
                         "allowed_audiences": audiences.split(",") if isinstance(audiences, str) else [],
                         "jwks_json": None}}
            return
        provider = self._provider(config, pool_id, provider_id)
        if "oidc" not in provider:
            raise GcloudError(f"INVALID_ARGUMENT: provider {provider_id} is not an OIDC provider")
        oidc = dict(provider["oidc"])
        if isinstance(issuer, str):
            self._check_provider_policies(None, issuer)
            oidc["issuer_uri"] = issuer
        if isinstance(audiences, str):
            oidc["allowed_audiences"] = audiences.split(",") if audiences else []
        provider.update(fields, oidc=oidc)

    # -- the AWS side of --federation jwt ------------------------------------------------------------------
    def _aws_client(self, service: str) -> Any:
        if self.aws is None or not self.aws_endpoint:
            raise GcloudError("an AWS command, but no emulated AWS session was given")
        return self.aws.client(service, region_name=self.aws.region_name, endpoint_url=self.aws_endpoint)

    def run_aws(self, command: str) -> Any:
        """``aws <service> <operation> --flag value ...`` through boto3 (kebab-case -> botocore's names;
        ``file://NAME`` reads a heredoc file of the script; ``--query X --output text`` picks one field).
        ``FeatureEnabled`` from ``enable-outbound-web-identity-federation`` is the answer of a script run twice:
        nothing changed, the script goes on (the shell would too)."""
        words = shlex.split(command)
        if words[:1] != ["aws"] or len(words) < 3:
            raise GcloudError(f"not an aws command: {command!r}")
        service, operation, rest = words[1], words[2].replace("-", "_"), words[3:]
        params: dict[str, Any] = {}
        query = None
        while rest:
            flag = rest.pop(0)
            if not flag.startswith("--"):
                raise GcloudError(f"unexpected {flag!r} in {command!r}")
            value = rest.pop(0) if rest and not rest[0].startswith("--") else ""
            if flag == "--query":
                query = value
            elif flag == "--output":
                continue
            else:
                if value.startswith("file://"):
                    value = self.files[value.removeprefix("file://")]
                params["".join(part.capitalize() for part in flag[2:].split("-"))] = value
        try:
            result = getattr(self._aws_client(service), operation)(**params)
        except ClientError as error:
            if error.response["Error"]["Code"] == "FeatureEnabled":
                self.applied.append(command)
                return None
            raise GcloudError(f"{command!r}: {error}") from None
        self.applied.append(command)
        return result.get(query) if query else result

    def _expand(self, line: str) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1) or match.group(2)
            if name not in self.variables:
                raise GcloudError(f"${name} is not set")
            return self.variables[name]

        return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, line)

    def _assign(self, name: str, value: str) -> None:
        command = re.fullmatch(r"\$\((aws [^)]*)\)", value)
        if command:
            result = self.run_aws(command.group(1))
            if not isinstance(result, str):
                raise GcloudError(f"{command.group(1)!r} printed no text")
            value = result
        self.variables[name] = self._expand(value)

    def _set_policy(self, policy: dict[str, Any]) -> None:
        parent, _, constraint = policy["name"].partition("/policies/")
        spec = policy.get("spec") or {}
        values: list[str] = []
        for rule in spec.get("rules") or []:
            values += (rule.get("values") or {}).get("allowedValues") or []
        self.policies[(parent, constraint)] = {"values": values, "inherit": bool(spec.get("inheritFromParent"))}

    def run_script(self, script: str) -> None:
        """A `gcp-wif setup` script: heredoc files first, then every gcloud line in order; with ``jwt`` also its
        ``aws`` lines and ``NAME="..."`` assignments (``$NAME`` expanded in later lines), in script order."""
        self.files.update(dict(re.findall(r"cat > (\S+) <<'EOF'\n(.*?)\nEOF", script, re.DOTALL)))
        body = re.sub(r"cat > (\S+) <<'EOF'\n(.*?)\nEOF", "", script, flags=re.DOTALL)
        for command in re.findall(r"`(gcloud [^`]+)`", body):
            self.run(command)
        for line in body.splitlines():
            assignment = re.fullmatch(r'([A-Z_][A-Z0-9_]*)="(.*)"', line.strip())
            if line.startswith("gcloud "):
                self.run(self._expand(line.strip()))
            elif line.startswith("aws "):
                self.run_aws(self._expand(line.strip()))
            elif assignment:
                self._assign(assignment.group(1), assignment.group(2))

    # -- Terraform ------------------------------------------------------------------------------------------
    def apply_terraform(self, text: str) -> None:
        """Apply the resources of a `gcp-wif setup --format terraform` file, in order."""
        resources = parse_hcl(text)
        names: dict[tuple[str, str], dict[str, Any]] = {}
        config = self._config()
        for kind, name, body in resources:
            body = _resolve(body, names)
            names[(kind, name)] = body
            if kind == "google_project_service":
                self._project(body["project"])
                config["disabled_services"] = [s for s in config.get("disabled_services", [])
                                               if s not in body["for_each"]]
            elif kind == "google_iam_workload_identity_pool":
                self._project(body["project"])
                config["pools"][body["workload_identity_pool_id"]] = {"disabled": False, "providers": {}}
            elif kind == "google_iam_workload_identity_pool_provider":
                self._project(body["project"])
                pool = self._pool(config, body["workload_identity_pool_id"])
                provider = {"disabled": False, "attribute_mapping": body.get("attribute_mapping"),
                            "attribute_condition": body.get("attribute_condition")}
                if "oidc" in body:
                    oidc = body["oidc"]
                    if not isinstance(oidc.get("issuer_uri"), str):
                        raise GcloudError(f"oidc.issuer_uri is not a string: {oidc.get('issuer_uri')!r}")
                    self._check_provider_policies(None, oidc["issuer_uri"])
                    provider["oidc"] = {"issuer_uri": oidc["issuer_uri"],
                                        "allowed_audiences": list(oidc.get("allowed_audiences") or []),
                                        "jwks_json": oidc.get("jwks_json")}
                else:
                    self._check_provider_policies(body["aws"]["account_id"])
                    provider["aws_account_id"] = body["aws"]["account_id"]
                pool["providers"][body["workload_identity_pool_provider_id"]] = provider
            elif kind == "google_service_account":
                self._project(body["project"])
                email = f"{body['account_id']}@{body['project']}.iam.gserviceaccount.com"
                body["email"] = email
                body["name"] = f"projects/{body['project']}/serviceAccounts/{email}"
                config["service_accounts"][email] = {"disabled": False, "bindings": []}
            elif kind == "google_service_account_iam_member":
                email = body["service_account_id"].rsplit("/", 1)[-1]
                self._bind(self._service_account(config, email).setdefault("bindings", []), body["role"],
                           body["member"])
            elif kind == "google_storage_bucket_iam_member":
                bucket = body["bucket"]
                if bucket not in config["buckets"]:
                    raise GcloudError(f"NOT_FOUND: bucket {bucket}")
                bucket_config = config["buckets"][bucket] or {}
                self._bind(bucket_config.setdefault("iam", []), body["role"], body["member"])
                config["buckets"][bucket] = bucket_config
            elif kind == "google_project_iam_member":
                self._project(body["project"])
                self._bind(config.setdefault("project_iam", []), body["role"], body["member"])
            elif kind == "aws_iam_outbound_web_identity_federation":
                # Creating the resource enables the feature; Terraform fails if it is on already (import it).
                try:
                    answer = self._aws_client("iam").enable_outbound_web_identity_federation()
                except ClientError as error:
                    raise GcloudError(f"{kind}: {error}") from None
                body["issuer_identifier"] = answer["IssuerIdentifier"]
            elif kind == "aws_iam_role_policy":
                policy = body["policy"]
                if not (isinstance(policy, dict) and policy.get("call") == "jsonencode"):
                    raise GcloudError("aws_iam_role_policy.policy must be jsonencode({...})")
                self._aws_client("iam").put_role_policy(RoleName=body["role"], PolicyName=body["name"],
                                                        PolicyDocument=json.dumps(policy["arg"]))
            elif kind == "google_org_policy_policy":
                spec = body.get("spec") or {}
                rules = spec.get("rules") or {}
                values = (rules.get("values") or {}).get("allowed_values") or []
                self.policies[(body["parent"], body["name"].rsplit("/", 1)[-1])] = {
                    "values": list(values), "inherit": bool(spec.get("inherit_from_parent"))}
            else:
                raise GcloudError(f"resource {kind} is not one we emit")
            self._put(config)
            config = self._config()
        self._sync_lifetime_policy()


def parse_arg_dict(value: str) -> dict[str, str]:
    """gcloud's KEY=VALUE,... dictionary flag: split on commas, then on the first '='."""
    result: dict[str, str] = {}
    for item in value.split(","):
        key, sep, val = item.partition("=")
        if not sep:
            raise GcloudError(f"bad dictionary item {item!r} (a comma inside a CEL expression?)")
        result[key] = val
    return result


def empty_project(control: EmulatorControl, buckets: tuple[str, ...] = ()) -> None:
    """An emulated project with nothing set up: no pools, no service accounts, the APIs of the exchange off."""
    config = control.get_config()
    fresh = copy.deepcopy(config)
    fresh.update({"pools": {}, "service_accounts": {}, "project_iam": [], "org_policy": {"lifetime_extension": []},
                  "buckets": {name: {"iam": []} for name in buckets}, "allow_anonymous_storage": False,
                  "disabled_services": ["sts.googleapis.com", "iamcredentials.googleapis.com"]})
    control.replace_config(fresh)


# -- a small HCL reader for the Terraform we emit ------------------------------------------------------------

_HCL_TOKEN = re.compile(r'\s*(?:(#[^\n]*)|("(?:[^"\\]|\\.)*")|([A-Za-z_][A-Za-z0-9_.\-]*)|(<<-?EOT\n.*?\nEOT)|(.))',
                        re.DOTALL)


def _hcl_tokens(text: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    for comment, string, word, _heredoc, char in _HCL_TOKEN.findall(text):
        if comment:
            continue
        if string:
            value = json.loads(string)
            if "${" in value.replace("$${", ""):
                raise GcloudError(f"template interpolation in {string}")
            tokens.append(("str", value.replace("$${", "${").replace("%%{", "%{")))
        elif word:
            tokens.append(("word", word))
        elif char and not char.isspace():
            tokens.append(("op", char))
    return tokens


def parse_hcl(text: str) -> list[tuple[str, str, dict[str, Any]]]:
    """``resource "type" "name" { ... }`` blocks (outputs are skipped)."""
    tokens = _hcl_tokens(text)
    index = 0
    resources: list[tuple[str, str, dict[str, Any]]] = []

    def value() -> Any:
        nonlocal index
        kind, token = tokens[index]
        index += 1
        if kind == "str":
            return token
        if kind == "op" and token == "[":
            items = []
            while tokens[index] != ("op", "]"):
                items.append(value())
                if tokens[index] == ("op", ","):
                    index += 1
            index += 1
            return items
        if kind == "op" and token == "{":
            return block()
        if kind == "word" and token in ("true", "false"):
            return token == "true"
        if kind == "word" and tokens[index] == ("op", "("):
            index += 1
            argument = value()
            index += 1  # ")"
            return argument if token == "toset" else {"call": token, "arg": argument}
        if kind == "word":
            return {"ref": token}
        raise GcloudError(f"unexpected {token!r} in Terraform")

    def block() -> dict[str, Any]:
        nonlocal index
        body: dict[str, Any] = {}
        while tokens[index] != ("op", "}"):
            key = tokens[index][1]
            index += 1
            if tokens[index] == ("op", "="):
                index += 1
                body[key] = value()
            elif tokens[index] == ("op", "{"):
                index += 1
                body[key] = block()
            else:
                raise GcloudError(f"unexpected token after {key!r}")
        index += 1
        return body

    while index < len(tokens):
        word = tokens[index][1]
        index += 1
        if word in ("resource", "data"):
            resource_type, name = tokens[index][1], tokens[index + 1][1]
            index += 3  # type, name, "{"
            body = block()
            if word == "resource":
                resources.append((resource_type, name, body))
        elif word in ("output", "variable", "locals"):
            index += 1 if word != "locals" else 0
            index += 1  # "{"
            block()
        else:
            raise GcloudError(f"unexpected top-level {word!r}")
    return resources


def _resolve(body: Any, names: dict[tuple[str, str], dict[str, Any]]) -> Any:
    if isinstance(body, dict) and set(body) == {"ref"}:
        parts = body["ref"].split(".")
        if parts[0] == "each" or len(parts) < 3:
            return body
        return names[(parts[0], parts[1])][parts[2]]
    if isinstance(body, dict):
        return {k: _resolve(v, names) for k, v in body.items()}
    if isinstance(body, list):
        return [_resolve(v, names) for v in body]
    return body


def assert_gcloud_parses(lines: list[str], tmp_path) -> None:
    """gcloud checks a command's flags before it looks for an account: with no account configured, each command
    must fail only for want of credentials (nothing is sent anywhere)."""
    env = {**os.environ, "CLOUDSDK_CONFIG": str(tmp_path / "gcloud-config"), "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
           "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "1", "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "1",
           "CLOUDSDK_CORE_PROJECT": "wif-demo-project"}
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    for line in lines:
        result = subprocess.run(shlex.split(line), capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
        assert result.returncode != 0
        assert "do not currently have an active account" in result.stderr, (line, result.stderr[-800:])
