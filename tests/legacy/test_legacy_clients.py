"""Real old SDK releases get credentials from passport at every level their version supports.

Matrix: {botocore 1.12.0 + boto3 1.9.0, aws-sdk 2.382.0, aws-sdk-go 1.15.78, AWS SDK for
Java 1.11.461} x {modern, token-env, relative-uri, imds}. Each level is a pod rendered from
its kustomization (k8s/base and the overlays); each client gets only the application
container's environment from that manifest, and must call the emulator's
GetCallerIdentity (SigV4 verified) as the assumed role, with the very key passport serves. Where a version cannot work at a level, the test asserts the
failure the user would see, so the README table stays measured, not claimed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import (
    ASSUMED_ARN,
    COMPILED_CLIENTS,
    READERS,
    READS,
    SHARED_KEY,
    SHARED_SECRET,
    new_token,
    passport_bin,
)

#: level -> kustomization rendering it.
LEVELS = {
    "modern": "base",
    "token-env": "overlays/token-env",
    "relative-uri": "overlays/relative-uri",
    "imds": "overlays/imds-redirect",
}
#: The script clients (every test); the compiled 2018 Go/Java 1.x ones join the level matrix.
CLIENTS = ("botocore", "aws-sdk")
GO, JAVA = COMPILED_CLIENTS

#: (client, level) -> None when it must work, else the reason it cannot (asserted).
CANNOT = {
    ("botocore", "modern"): "botocore < 1.32.0 ignores AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: no Authorization, 401",
    ("aws-sdk", "modern"): "aws-sdk < 2.1550.0 ignores AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: no Authorization, 401",
    (GO, "modern"): "aws-sdk-go < 1.47.11 ignores AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: no Authorization, 401",
    (JAVA, "modern"): "aws-java-sdk 1.11.x never reads AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: no Authorization, 401",
}
#: What the credential provider reports when it works, per level.
PROVIDER = {
    ("botocore", "token-env"): "container-role",
    ("botocore", "relative-uri"): "container-role",
    ("botocore", "imds"): "iam-role",
    ("aws-sdk", "token-env"): "RemoteCredentials",
    ("aws-sdk", "relative-uri"): "RemoteCredentials",
    ("aws-sdk", "imds"): "EC2MetadataCredentials",
    (GO, "token-env"): "CredentialsEndpointProvider",
    (GO, "relative-uri"): "CredentialsEndpointProvider",
    (GO, "imds"): "EC2RoleProvider",
    # The 1.x chain's wrapper picks the container provider or, with no container
    # variable, InstanceProfileCredentialsProvider; the chain names only the wrapper.
    (JAVA, "token-env"): "EC2ContainerCredentialsProviderWrapper",
    (JAVA, "relative-uri"): "EC2ContainerCredentialsProviderWrapper",
    (JAVA, "imds"): "EC2ContainerCredentialsProviderWrapper",
}
#: The compiled clients' credential requests answered 200 for READERS x READS reads: one
#: fetch (IMDS: the role listing, then the role's credentials).
FETCH_200 = {"token-env": 1, "relative-uri": 1, "imds": 2}


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
@pytest.mark.parametrize("client", CLIENTS + COMPILED_CLIENTS)
def test_client_at_level(pods, built_clients, client, level):
    built_clients(client)
    pod = pods(level)
    before = pod.requests(200), pod.requests(401)
    result = pod.run_client(client, pod.app_env())
    print(f"{client} @ {level}: {result.raw} ({result.seconds:.2f}s)")
    if (client, level) in CANNOT:
        assert not result.ok, f"{client} was expected to fail at {level} ({CANNOT[client, level]}), got {result}"
        text = json.dumps(result.raw)
        if client == "botocore":
            assert "(401)" in text and "MissingAuthorization" in text, text
        elif client == GO:
            # v1.15's chain reports only that no provider worked; passport's 401 is the why.
            assert "NoCredentialProviders" in text, text
            assert pod.requests(401) > before[1], "aws-sdk-go 1.15.78 never asked passport"
        elif client == JAVA:
            assert "Status Code: 401" in text, text
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
    served = pod.served_access_key(token)
    assert (result.raw.get("access_key") or result.raw.get("access_key_id")) == served, result.raw
    if client in COMPILED_CLIENTS:
        # Single flight: READERS threads x READS reads, one key, one fetch from passport.
        assert result.raw["reads"] == READERS * READS and result.raw["distinct_keys"] == 1, result.raw
        fetched = pod.requests(200) - before[0] - 1  # less served_access_key's own request
        assert fetched == FETCH_200[level], f"{client} at {level}: {fetched} requests answered 200, expected {FETCH_200[level]}"


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
def test_imds_is_off_outside_the_imds_level(pods, level):
    """IMDS authenticates nothing, so the manifests turn it off (PASSPORT_DISABLE_IMDS)
    outside the imds level: no /latest/ at all, v1 or v2 (issue 17)."""
    pod = pods(level)
    for url in ("http://127.0.0.1:9911/latest/meta-data/iam/security-credentials/", "http://127.0.0.1:9911/latest/api/token"):
        answer = pod.probe(url)
        assert answer["status"] == 404, (url, answer)


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


def test_ipv6_loopback_is_served_too(pods):
    """[::1] at the same port as 127.0.0.1, with the same token rule."""
    pod = pods("modern")
    token = (pod.pod.volumes["passport-auth"] / "auth-token").read_text()
    assert pod.probe("http://[::1]:9911/v1/credentials", {"Authorization": token})["status"] == 200
    assert pod.probe("http://[::1]:9911/v1/credentials")["status"] == 401


def test_a_pod_without_ipv6_still_starts(pod_factory):
    pod = pod_factory("base", ipv6=False)
    token = (pod.pod.volumes["passport-auth"] / "auth-token").read_text()
    assert pod.probe("http://127.0.0.1:9911/v1/credentials", {"Authorization": token})["status"] == 200
    assert pod.probe("http://[::1]:9911/v1/credentials")["status"] == 0
    log = pod.passport_log.read_text()
    assert "not listening on IPv6 loopback" in log, log


# -- passport exec, serve --print-env, passport check: the lines each level needs ---------


@pytest.mark.parametrize("client", CLIENTS)
def test_exec_serves_legacy_clients(pods, client):
    """`passport exec` sets the token value as well as the file: every SDK since 2017."""
    pod = pods("modern")  # for its namespace, emulator and web-identity token
    env = pod.app_env(AWS_CONTAINER_CREDENTIALS_FULL_URI=None, AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=None)
    env.update(
        {
            "AWS_ROLE_ARN": "arn:aws:iam::111122223333:role/passport-demo",
            "AWS_WEB_IDENTITY_TOKEN_FILE": str(pod.web_identity_token),
            "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:9401",
        }
    )
    argv = [str(passport_bin()), "exec", "--session-name", "exec-legacy", "--"] + pod.client_argv(client)
    done = pod.ns.run(*argv, env=env, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    raw = json.loads(done.stdout.strip().splitlines()[-1])
    assert raw["ok"] and raw["arn"].endswith(":assumed-role/passport-demo/exec-legacy"), raw


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("level", ["token-env", "relative-uri", "imds"])
def test_print_env_lines_for_the_level_serve_legacy_clients(pods, client, level):
    """`serve --print-env --compat LEVEL`, evaluated by sh in the pod, is all a client needs."""
    pod = pods(level)
    penv = pod.passport_env()
    shell = (
        f'eval "$({passport_bin()} serve --print-env --compat {level})" && exec '
        + " ".join(f"'{a}'" for a in pod.client_argv(client))
    )
    env = pod.app_env()
    for key in list(env):
        if key.startswith("AWS_CONTAINER_") or key == "AWS_EC2_METADATA_SERVICE_ENDPOINT":
            del env[key]
    env.update({k: v for k, v in penv.items() if k.startswith("PASSPORT_")})
    done = pod.ns.run("sh", "-c", shell, env=env, timeout=60)
    raw = json.loads(done.stdout.strip().splitlines()[-1])
    assert raw["ok"] and raw["arn"] == ASSUMED_ARN, (raw, done.stderr)


@pytest.mark.parametrize("level", list(LEVELS))
def test_check_passes_in_each_level(pods, level):
    pod = pods(level)
    done = pod.ns.run(
        str(passport_bin()), "check", "--sts-endpoint", "http://127.0.0.1:9401", env=pod.app_env(), timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _check_fails_naming(pod, variable: str, **overrides) -> str:
    done = pod.ns.run(
        str(passport_bin()), "check", "--no-identity", env=pod.app_env(**overrides), timeout=60
    )
    failing = [line for line in done.stdout.splitlines() if line.strip().startswith("✗")]
    assert done.returncode != 0, done.stdout
    assert any(variable in line for line in failing), done.stdout
    return done.stdout


def test_check_token_value_mismatch(pods):
    _check_fails_naming(pods("token-env"), "AWS_CONTAINER_AUTHORIZATION_TOKEN", AWS_CONTAINER_AUTHORIZATION_TOKEN=new_token())


def test_check_relative_uri_nothing_answers(pods):
    # In the token-env pod there is no redirect of 169.254.170.2.
    _check_fails_naming(
        pods("token-env"),
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        AWS_CONTAINER_CREDENTIALS_RELATIVE_URI="/v1/credentials",
        AWS_CONTAINER_CREDENTIALS_FULL_URI=None,
        AWS_CONTAINER_AUTHORIZATION_TOKEN=None,
        AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=None,
    )


def test_check_imds_off_is_named(pods):
    # relative-uri pod: passport's IMDS is off there (PASSPORT_DISABLE_IMDS, issue 17); an app
    # pointed at it anyway is told that the endpoint does not serve IMDS.
    _check_fails_naming(
        pods("relative-uri"),
        "IMDS http://127.0.0.1:9911: PUT /latest/api/token answered 404",
        AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=None,
        AWS_EC2_METADATA_SERVICE_ENDPOINT="http://127.0.0.1:9911",
    )


def test_check_relative_and_full_both_set(pods):
    pod = pods("relative-uri")
    out = _check_fails_naming(
        pod, "AWS_CONTAINER_CREDENTIALS_FULL_URI", AWS_CONTAINER_CREDENTIALS_FULL_URI="http://127.0.0.1:9911/v1/credentials"
    )
    assert "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI" in out


@pytest.mark.parametrize("client", CLIENTS)
def test_demo_compat_token_env_lines_serve_legacy_clients(pods, tmp_path, client):
    """`passport demo --compat token-env`: its export lines, as printed, are enough."""
    pod = pods("modern")  # only for a private network namespace
    out = tmp_path / "demo.out"
    with out.open("wb") as sink:
        demo = subprocess.Popen(
            pod.ns.argv(str(passport_bin()), "demo", "--compat", "token-env"),
            stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "NO_COLOR": "1"},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while "Serving until Ctrl-C." not in out.read_text(errors="replace"):
            assert demo.poll() is None and time.monotonic() < deadline, out.read_text(errors="replace")
            time.sleep(0.1)
        text = out.read_text()
        assert "0 failed" in text, text
        lines = [l for l in text.splitlines() if l.startswith(("export ", "unset "))]
        assert any(l.startswith("export AWS_CONTAINER_AUTHORIZATION_TOKEN=") for l in lines), text
        sts = next(l.split("=", 1)[1] for l in lines if l.startswith("export AWS_ENDPOINT_URL_STS="))
        argv = pod.client_argv(client)[:-1] + [sts]
        script = "\n".join(lines) + "\nexec " + " ".join(f"'{a}'" for a in argv)
        done = pod.ns.run("sh", "-c", script, env=pod.app_env(**{k: None for k in pod.app_env() if k.startswith("AWS_")}))
        raw = json.loads(done.stdout.strip().splitlines()[-1])
        assert raw["ok"] and raw["arn"].endswith(":assumed-role/passport-demo/demo.demo-app-demo"), (raw, done.stderr)
    finally:
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=10) == 0
