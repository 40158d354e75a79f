"""AWS SDKs for Java against passport: v2 (BOM 2.59.1), v1 1.12.797, and a 2018 v1 1.11.461.

`tests/clients/java` is a Maven build with one module per SDK line (sdk-v2, sdk-v1,
sdk-v1-2018: one build holds one version of an artifact). It is packaged offline
(`mvn -o`): `./test.sh` resolves the dependencies first. Each module's program prints one
JSON line; see matrix.py for the harness.

* v2: DefaultCredentialsProvider, ContainerCredentialsProvider (modern level) and
  InstanceProfileCredentialsProvider (IMDS through `AWS_EC2_METADATA_SERVICE_ENDPOINT`).
  2.59.1 never asks for `security-credentials-extended/` (an older contract note said it
  did): it sends `X-amzn-extended: 1` on the classic path, which the tests record.
* v1 1.12.797: DefaultAWSCredentialsProviderChain with the container endpoint, and with
  IMDS (v1 reads the IMDS endpoint from the system property
  `com.amazonaws.sdk.ec2MetadataServiceEndpointOverride`, not from the environment).
* v1 1.11.461 (November 2018, before web identity in 1.11.704): the `token-env` level.

STS endpoint: v2 reads `AWS_ENDPOINT_URL_STS` itself; v1 has no such variable, so its
program hands the variable to `withEndpointConfiguration`.
"""

from __future__ import annotations

import pytest

from matrix import (  # noqa: F401  (fixtures)
    assert_identity,
    assert_refused,
    base_env,
    level_env,
    proxy,
    requests_200,
    run_client,
    served,
)
from sdkbuild import java_cmd

V1_IMDS_PROPERTY = "com.amazonaws.sdk.ec2MetadataServiceEndpointOverride"


# v2 reports the source as a business-metric id, which the program names.
V2_CONTAINER = {"CREDENTIALS_HTTP"}
V2_IMDS = {"CREDENTIALS_IMDS"}

V2_CASES = [
    ("default", "modern", V2_CONTAINER),
    ("container", "modern", V2_CONTAINER),
    ("default", "imds-endpoint", V2_IMDS),
    ("instance", "imds-endpoint", V2_IMDS),
]


@pytest.mark.parametrize("provider,level,names", V2_CASES, ids=[f"{p}-{lv}" for p, lv, _ in V2_CASES])
def test_java_v2(java_cp, emulator, served, proxy, tmp_path, provider, level, names):
    env = level_env(level, base_env(tmp_path, emulator), served, proxy)
    before = requests_200(served)
    outcome = run_client(f"[Java sdk-v2 {provider}] at level {level}", java_cmd(java_cp["sdk-v2"], provider), env)
    assert_identity(outcome, served, proxy, names, level=level, before_200=before)
    if level == "imds-endpoint":
        # Measured with 2.59.1: no request for `security-credentials-extended/`; the
        # extended form is asked with the header `X-amzn-extended: 1` on the classic path.
        # passport ignores the header and serves the classic body, which Java v2 accepts.
        seen = proxy.snapshot()
        assert set(seen) == {
            "PUT /latest/api/token",
            "GET /latest/meta-data/iam/security-credentials/",
            "GET /latest/meta-data/iam/security-credentials/passport-demo",
        }, f"{outcome.describe()}: {seen}"
        assert proxy.extended_header == {
            ("GET", "/latest/meta-data/iam/security-credentials/passport-demo", "1"): 1
        }, f"{outcome.describe()}: X-amzn-extended headers seen: {dict(proxy.extended_header)}"


V1_CONTAINER = {"EC2ContainerCredentialsProviderWrapper"}


def test_java_v1_current_container(java_cp, emulator, served, proxy, tmp_path):
    env = level_env("modern", base_env(tmp_path, emulator), served, proxy)
    before = requests_200(served)
    outcome = run_client("[Java sdk-v1] at level modern", java_cmd(java_cp["sdk-v1"]), env)
    assert_identity(outcome, served, proxy, V1_CONTAINER, level="modern", before_200=before)


def test_java_v1_current_imds(java_cp, emulator, served, proxy, tmp_path):
    env = level_env("imds-endpoint", base_env(tmp_path, emulator), served, proxy)
    before = requests_200(served)
    cmd = java_cmd(java_cp["sdk-v1"], props={V1_IMDS_PROPERTY: proxy.base_url})
    outcome = run_client("[Java sdk-v1] at level imds-endpoint (system property)", cmd, env)
    # The chain's container wrapper falls through to InstanceProfileCredentialsProvider.
    assert_identity(outcome, served, proxy, V1_CONTAINER, level="imds (system property)", before_200=before)
    assert any(k.startswith("GET /latest/meta-data/iam/security-credentials/") for k in proxy.snapshot())


def test_java_v1_2018_token_env(java_cp, emulator, served, proxy, tmp_path):
    env = level_env("token-env-only", base_env(tmp_path, emulator), served, proxy)
    before = requests_200(served)
    outcome = run_client("[Java sdk-v1-2018] at level token-env", java_cmd(java_cp["sdk-v1-2018"]), env)
    assert outcome.result and outcome.result.get("version") == "1.11.461", outcome.describe()
    assert_identity(outcome, served, proxy, V1_CONTAINER, level="token-env", before_200=before)


def test_java_v1_2018_with_the_token_file_only_gets_401(java_cp, emulator, served, proxy, tmp_path):
    """Why the token-env level exists: 1.11.x never reads AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE."""
    env = level_env("modern", base_env(tmp_path, emulator), served, proxy)
    outcome = run_client("[Java sdk-v1-2018] at level modern", java_cmd(java_cp["sdk-v1-2018"]), env)
    assert_refused(outcome, level="modern", expect="Status Code: 401")
