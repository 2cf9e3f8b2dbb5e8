"""`gcp-wif doctor` with `federation: jwt`: the GetWebIdentityToken step between the AWS identity and the STS
exchange, failing with AWS's reason and the fix, and passing with what Google's OIDC provider will check."""

from __future__ import annotations

from .running import run_cli, statuses

JWT_STEPS = ["settings", "AWS identity", "subject length", "web identity token", "STS exchange", "impersonation",
             "API call"]


def test_feature_disabled_fails_the_web_identity_token_step_with_the_enable_command(emulator, seed_env, monkeypatch):
    monkeypatch.setenv("GCP_WIF_FEDERATION", "jwt")
    emulator.control.set_aws_outbound_federation(False)
    code, out, _ = run_cli("doctor")
    assert code == 1, out
    assert statuses(out) == {"settings": "OK", "AWS identity": "OK", "subject length": "OK",
                             "web identity token": "FAIL", "STS exchange": "SKIP", "impersonation": "SKIP",
                             "API call": "SKIP"}
    assert "OutboundWebIdentityFederationDisabledException" in out
    assert "aws iam enable-outbound-web-identity-federation" in out
    assert emulator.control.requests("sts") == []  # nothing reached Google


def test_sigv4_has_no_web_identity_token_step(emulator, seed_env):
    code, out, _ = run_cli("doctor", "--no-api-call")
    assert code == 0, out
    assert "web identity token" not in statuses(out)
