"""Real old SDK releases get credentials from passport at every level their version supports.

Matrix: {botocore 1.12.0 + boto3 1.9.0, aws-sdk 2.382.0} x {modern, token-env, relative-uri,
imds}. Each level is a pod rendered from its kustomization (k8s/base and the overlays);
each client gets only the application container's environment from that manifest, and
must call the emulator's GetCallerIdentity (SigV4 verified) as the assumed role, with the
very key passport serves. Where a version cannot work at a level, the test asserts the
failure the user would see, so the README table stays measured, not claimed.
"""

from __future__ import annotations

import json
import time

import pytest

from conftest import ASSUMED_ARN, SHARED_KEY, SHARED_SECRET, new_token

#: level -> kustomization rendering it.
LEVELS = {
    "modern": "base",
    "token-env": "overlays/token-env",
    "relative-uri": "overlays/relative-uri",
    "imds": "overlays/imds-redirect",
}
CLIENTS = ("botocore", "aws-sdk")

#: (client, level) -> None when it must work, else the reason it cannot (asserted).
CANNOT = {
    ("botocore", "modern"): "botocore < 1.32.0 ignores AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: no Authorization, 401",
    ("aws-sdk", "modern"): "aws-sdk < 2.1550.0 ignores AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: no Authorization, 401",
}
#: What the credential provider reports when it works, per level.
PROVIDER = {
    ("botocore", "token-env"): "container-role",
    ("botocore", "relative-uri"): "container-role",
    ("botocore", "imds"): "iam-role",
    ("aws-sdk", "token-env"): "RemoteCredentials",
    ("aws-sdk", "relative-uri"): "RemoteCredentials",
    ("aws-sdk", "imds"): "EC2MetadataCredentials",
}


@pytest.fixture(scope="module")
def pods(pod_factory):
    """One pod per level, started lazily and shared by the module's tests."""
    started = {}
    shared_token = new_token()

    def get(level: str):
        if level not in started:
            secrets = {SHARED_SECRET: {SHARED_KEY: shared_token}} if level == "token-env" else None
            started[level] = pod_factory(LEVELS[level], secrets)
        return started[level]

    return get


@pytest.mark.parametrize("level", list(LEVELS))
@pytest.mark.parametrize("client", CLIENTS)
def test_client_at_level(pods, client, level):
    pod = pods(level)
    result = pod.run_client(client, pod.app_env())
    print(f"{client} @ {level}: {result.raw} ({result.seconds:.2f}s)")
    if (client, level) in CANNOT:
        assert not result.ok, f"{client} was expected to fail at {level} ({CANNOT[client, level]}), got {result}"
        text = json.dumps(result.raw)
        if client == "botocore":
            assert "(401)" in text and "MissingAuthorization" in text, text
        else:
            # aws-sdk v2 turns any 4xx into a bare `Error` (message null, no status): all a
            # user sees. Its container provider alone fails, and passport's answer to a
            # request without Authorization is the 401.
            assert "container_error" in result.raw, text
        assert pod.probe("http://127.0.0.1:9911/v1/credentials")["status"] == 401
        return
    assert result.ok, f"{client} at {level}: {result}\n--- passport log\n{pod.passport_log.read_text(errors='replace')}"
    assert result.raw["arn"] == ASSUMED_ARN
    method = result.raw.get("method") or result.raw.get("provider")
    assert method == PROVIDER[client, level], result.raw
    token = pod.pod.secrets.get(SHARED_SECRET, {}).get(SHARED_KEY) if level == "token-env" else None
    if token is None:
        token = (pod.pod.volumes["passport-auth"] / "auth-token").read_text()
    assert result.raw["access_key"] == pod.served_access_key(token)


@pytest.mark.parametrize("client", CLIENTS)
def test_full_uri_without_token_on_the_relative_listener(pods, client):
    """Go v1 v1.8.13-v1.15.40 sends no token to FULL_URI: the loopback port of the
    unauthenticated listener serves it. Emulated with both clients given FULL_URI only."""
    pod = pods("relative-uri")
    port = pod.pod.env("passport")["PASSPORT_RELATIVE_URI_LISTEN"].rsplit(":", 1)[1]
    env = pod.app_env(
        AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=None,
        AWS_CONTAINER_CREDENTIALS_FULL_URI=f"http://127.0.0.1:{port}/v1/credentials",
    )
    result = pod.run_client(client, env)
    assert result.ok, str(result)
    assert result.raw["arn"] == ASSUMED_ARN


@pytest.mark.parametrize("client", CLIENTS)
def test_token_env_wrong_token_is_refused(pods, client):
    pod = pods("token-env")
    result = pod.run_client(client, pod.app_env(AWS_CONTAINER_AUTHORIZATION_TOKEN=new_token()))
    assert not result.ok, str(result)
    answer = pod.probe("http://127.0.0.1:9911/v1/credentials", {"Authorization": new_token()})
    assert answer["status"] == 403, answer
    assert "InvalidAuthorization" in answer["body"]


def test_token_env_rotated_secret_is_picked_up_without_restart(pods):
    """The kubelet's `..data` swap: the new value works, the old one is refused, same pid."""
    pod = pods("token-env")
    old = pod.pod.secrets[SHARED_SECRET][SHARED_KEY]
    pid = pod.passport.pid
    new = new_token()
    try:
        pod.pod.rotate_secret(SHARED_SECRET, {SHARED_KEY: new})
        deadline = time.monotonic() + 10
        while pod.probe("http://127.0.0.1:9911/v1/credentials", {"Authorization": new})["status"] != 200:
            assert time.monotonic() < deadline, "passport did not pick up the rotated Secret within 10 s"
            time.sleep(0.1)
        assert pod.probe("http://127.0.0.1:9911/v1/credentials", {"Authorization": old})["status"] == 403
        assert pod.passport.pid == pid and pod.passport.poll() is None
        result = pod.run_client("botocore", pod.app_env())  # app env resolved from the new Secret
        assert result.ok and result.raw["arn"] == ASSUMED_ARN, str(result)
    finally:
        pod.pod.rotate_secret(SHARED_SECRET, {SHARED_KEY: old})
        deadline = time.monotonic() + 10
        while pod.probe("http://127.0.0.1:9911/v1/credentials", {"Authorization": old})["status"] != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)


@pytest.mark.parametrize(
    "path",
    [
        "/latest/meta-data/iam/security-credentials/",
        "/latest/api/token",
        "/metrics",
        "/healthz",
        "/readyz",
        "/v1/credentials/../metrics",
        "/",
    ],
)
def test_unauthenticated_listener_serves_only_the_credentials_path(pods, path):
    pod = pods("relative-uri")
    assert pod.probe("http://169.254.170.2/v1/credentials")["status"] == 200
    answer = pod.probe(f"http://169.254.170.2{path}")
    assert answer["status"] in (404, 405), answer
    assert "AccessKeyId" not in answer.get("body", "")


def test_unauthenticated_listener_keeps_the_host_check(pods):
    pod = pods("relative-uri")
    answer = pod.probe("http://169.254.170.2/v1/credentials", {"Host": "evil.example"})
    assert answer["status"] == 403, answer


@pytest.mark.parametrize("level", ["modern", "token-env", "relative-uri"])
def test_imdsv1_is_off_outside_the_imds_level(pods, level):
    pod = pods(level)
    answer = pod.probe("http://127.0.0.1:9911/latest/meta-data/iam/security-credentials/")
    assert answer["status"] == 401, answer


def test_imdsv1_is_on_in_the_imds_level(pods):
    pod = pods("imds")
    answer = pod.probe("http://169.254.169.254/latest/meta-data/iam/security-credentials/")
    assert answer["status"] == 200, answer


@pytest.mark.parametrize("level", ["modern", "token-env"])
def test_no_redirect_and_no_privilege_outside_the_redirect_levels(pods, level):
    """modern and token-env add no iptables rule (so no NET_ADMIN): nothing answers at
    the link-local addresses in their pods."""
    pod = pods(level)
    assert pod.rules == []
    for url in ("http://169.254.170.2/v1/credentials", "http://169.254.169.254/latest/meta-data/"):
        assert pod.probe(url)["status"] == 0


def test_redirect_rules_come_from_the_manifests(pods):
    assert any("169.254.170.2/32" in rule for rule in pods("relative-uri").rules)
    assert any("169.254.169.254/32" in rule for rule in pods("imds").rules)
