"""AWS SDKs for Go against passport: current v2 and v1, a 2018 v1, and the IRSA validator.

* `tests/clients/go` (one module): aws-sdk-go-v2 (`config.LoadDefaultConfig`) and
  aws-sdk-go v1.55 (`session.NewSession()`), through the container endpoint and through IMDS
  with `AWS_EC2_METADATA_SERVICE_ENDPOINT`; and `cmd/irsa-validator`, the identity validator
  in the spirit of the Go IRSA demo, in native IRSA mode and in passport mode.
* `tests/clients/go-legacy` (a second module: one module can require one version of
  aws-sdk-go): aws-sdk-go v1.15.78 (November 2018, before web identity) at the `token-env`
  level.
* `tests/clients/go-probe` (a third module, required by both through a `replace`): the
  SDK-independent probe (concurrent reads, JSON result) and the aws-sdk-go v1 probe, one
  source linked against v1.55.8 and v1.15.78.

The binaries are built offline (`GOPROXY=off`): `./test.sh` downloads the modules first
(`go mod download` in each module). See matrix.py for the harness.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import EMULATOR_ROLE_ARN, SESSION_NAME
from matrix import (  # noqa: F401  (fixtures)
    ASSUMED_ARN,
    Outcome,
    assert_identity,
    assert_refused,
    base_env,
    level_env,
    proxy,
    record,
    requests_200,
    run_client,
    served,
)
from sdkbuild import BUILD_TIMEOUT, GO_DIR, GO_LEGACY_DIR, GO_PROBE_DIR


# --- current SDKs: container endpoint (modern level) and IMDS with the endpoint variable ---

CASES = [
    # (sdk argument, level, accepted provider names)
    ("v2", "modern", {"CredentialsEndpointProvider"}),
    ("v2", "imds-endpoint", {"EC2RoleProvider"}),
    ("v1", "modern", {"CredentialsEndpointProvider"}),
    ("v1", "imds-endpoint", {"EC2RoleProvider"}),
]


@pytest.mark.parametrize("sdk,level,providers", CASES, ids=[f"{s}-{lv}" for s, lv, _ in CASES])
def test_go_sdk(go_bin, emulator, served, proxy, tmp_path, sdk, level, providers):
    env = level_env(level, base_env(tmp_path, emulator), served, proxy)
    before = requests_200(served)
    outcome = run_client(f"[Go sdkclient {sdk}] at level {level}", [str(go_bin / "sdkclient"), sdk], env)
    assert_identity(outcome, served, proxy, providers, level=level, before_200=before)
    if level == "imds-endpoint":
        # Measured: neither SDK asks for `security-credentials-extended/` (config v1.33.21,
        # feature/ec2/imds v1.20.9; v1.55.8): token, role listing, credentials.
        assert set(proxy.snapshot()) == {
            "PUT /latest/api/token",
            "GET /latest/meta-data/iam/security-credentials/",
            "GET /latest/meta-data/iam/security-credentials/passport-demo",
        }, f"{outcome.describe()}: {proxy.snapshot()}"


# --- aws-sdk-go v1.15.78 (2018): token-env level ---


def test_go_v1_2018_token_env(go_bin, emulator, served, proxy, tmp_path):
    env = level_env("token-env-only", base_env(tmp_path, emulator), served, proxy)
    before = requests_200(served)
    outcome = run_client("[Go sdkclient-legacy, aws-sdk-go v1.15.78] at level token-env", [str(go_bin / "sdkclient-legacy")], env)
    assert outcome.result and outcome.result.get("version") == "1.15.78", outcome.describe()
    assert_identity(outcome, served, proxy, {"CredentialsEndpointProvider"}, level="token-env", before_200=before)


def test_go_v1_2018_with_the_token_file_only_gets_nothing(go_bin, emulator, served, proxy, tmp_path):
    """Why the token-env level exists: v1.15 never reads AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE."""
    env = level_env("modern", base_env(tmp_path, emulator), served, proxy)
    outcome = run_client("[Go sdkclient-legacy, aws-sdk-go v1.15.78] at level modern", [str(go_bin / "sdkclient-legacy")], env)
    assert_refused(outcome, level="modern", expect="NoCredentialProviders")
    # It did ask passport, without a token, and passport said 401.
    assert proxy.snapshot().get("GET /v1/credentials", 0) >= 1, proxy.snapshot()
    assert proxy.ok_responses() == 0


# --- the IRSA validator: native IRSA against the emulator, then through passport ---


def run_validator(go_bin: Path, env: dict) -> tuple[subprocess.CompletedProcess, dict]:
    done = subprocess.run(
        [str(go_bin / "irsa-validator"), "-json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    try:
        report = json.loads(last)
    except ValueError:
        report = {}
    return done, report


def validator_identities(done, report, mode: str, provider: str) -> list[str]:
    context = f"irsa-validator in {mode} mode: exit {done.returncode}\n{done.stdout}{done.stderr}"
    assert done.returncode == 0, context
    assert report.get("mode") == mode and report.get("problems") == [], context
    sdks = {r["sdk"]: r for r in report["sdks"]}
    assert set(sdks) == {"aws-sdk-go", "aws-sdk-go-v2"}, context
    for r in sdks.values():
        assert r.get("provider") == provider, f"{r['sdk']} {r['version']}: {context}"
        assert r["access_key_id"].startswith("ASIA"), context
    for line in ("Account:", "UserId:", "Arn:", "Provider:", "AccessKeyId:"):
        assert done.stdout.count(line) == 2, context
    return [sdks[name]["arn"] for name in ("aws-sdk-go", "aws-sdk-go-v2")]


def test_validator_native_irsa_and_passport_mode_give_the_same_role(go_bin, emulator, served, proxy, tmp_path):
    # (a) native IRSA: the SDKs exchange the pod's token with STS themselves.
    native_env = base_env(tmp_path, emulator)
    native_env.update(
        {
            "AWS_WEB_IDENTITY_TOKEN_FILE": str(served.extra["web_identity_token"]),
            "AWS_ROLE_ARN": EMULATOR_ROLE_ARN,
            "AWS_ROLE_SESSION_NAME": SESSION_NAME,
        }
    )
    done, report = run_validator(go_bin, native_env)
    native = validator_identities(done, report, "native IRSA", "WebIdentityCredentials")
    native_keys = {r["access_key_id"] for r in report["sdks"]}
    assert proxy.snapshot() == {}, "native IRSA must not touch passport"

    # (b) passport mode: the same pod, the sidecar exchanging the token instead.
    passport_env = level_env("modern", base_env(tmp_path, emulator), served, proxy)
    done, report = run_validator(go_bin, passport_env)
    via_passport = validator_identities(done, report, "passport", "CredentialsEndpointProvider")
    served_key = served.served()["AccessKeyId"]
    assert {r["access_key_id"] for r in report["sdks"]} == {served_key}

    assert native == via_passport == [ASSUMED_ARN, ASSUMED_ARN], (native, via_passport)
    assert served_key not in native_keys, "native mode must have made its own STS exchange"
    for r in report["sdks"]:
        record(
            {
                "sdk": r["sdk"],
                "version": r["version"],
                "entry": f"irsa-validator ({r['entry']})",
                "level": "native IRSA and passport (modern)",
                "provider": "WebIdentityCredentials / CredentialsEndpointProvider",
                "result": "same assumed-role ARN",
            }
        )


def test_validator_flags_web_identity_beside_passport(go_bin, emulator, served, proxy, tmp_path):
    env = level_env("modern", base_env(tmp_path, emulator), served, proxy)
    env["AWS_WEB_IDENTITY_TOKEN_FILE"] = str(served.extra["web_identity_token"])
    env["AWS_ROLE_ARN"] = EMULATOR_ROLE_ARN
    done, report = run_validator(go_bin, env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert report.get("mode") == "mixed"
    assert any("passport would be bypassed" in p for p in report["problems"]), report
    # And indeed: both SDKs took web identity, not passport.
    assert {r.get("provider") for r in report["sdks"]} == {"WebIdentityCredentials"}, report


def test_validator_without_any_identity_fails(go_bin, emulator, tmp_path):
    done, report = run_validator(go_bin, base_env(tmp_path, emulator))
    assert done.returncode == 1, done.stdout
    assert report.get("mode") == "none"
    assert all(r.get("error") for r in report["sdks"]), report
    assert "RESULT: FAILED" in done.stdout


def test_go_sources_are_gofmt_and_vet_clean():
    """The client programs themselves: gofmt-clean and `go vet`-clean, offline."""
    env = dict(os.environ, GOPROXY="off", GOFLAGS="-mod=readonly -buildvcs=false")
    for module in (GO_DIR, GO_LEGACY_DIR, GO_PROBE_DIR):
        fmt = subprocess.run(["gofmt", "-l", "."], cwd=module, capture_output=True, text=True, timeout=60)
        assert fmt.returncode == 0 and fmt.stdout == "", f"gofmt -l in {module}: {fmt.stdout}{fmt.stderr}"
        vet = subprocess.run(
            ["go", "vet", "./..."], cwd=module, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT
        )
        assert vet.returncode == 0, f"go vet in {module}:\n{vet.stderr}"
