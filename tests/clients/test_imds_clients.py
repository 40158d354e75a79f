"""boto3/botocore against passport's IMDS endpoint, with moto_server as STS.

Self-contained on purpose (the shared harness lives in conftest.py on another branch):
starts `moto_server` and the real `passport` binary (PASSPORT_BIN, default
target/debug/passport) on free loopback ports, then lets botocore find credentials with
nothing but AWS_EC2_METADATA_SERVICE_ENDPOINT set, and checks they are exactly what
passport's container endpoint serves (i.e. what moto's STS issued).

Run: pytest tests/clients/test_imds_clients.py
"""

import base64
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROLE_ARN = "arn:aws:iam::123456789012:role/team/imds-app"
ROLE_NAME = "imds-app"

# Anything that would let botocore find credentials some other way.
SHADOWING = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_STS",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


def b64url(data):
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def fake_jwt():
    header = b64url({"alg": "RS256", "kid": "test"})
    payload = b64url(
        {
            "iss": "https://oidc.example.test",
            "sub": "system:serviceaccount:default:imds-app",
            "aud": ["sts.amazonaws.com"],
            "exp": int(time.time()) + 3600,
        }
    )
    return f"{header}.{payload}.c2lnbmF0dXJl"


def clean_env():
    env = {k: v for k, v in os.environ.items() if k not in SHADOWING}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def moto():
    exe = shutil.which("moto_server")
    if exe is None:
        pytest.skip("moto_server not installed (pip install 'moto[server]')")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)],
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: urllib.request.urlopen(url + "/moto-api/", timeout=1), "moto_server")
        yield url
    finally:
        stop(proc)


def start_passport(moto_url, tmp, *extra):
    binary = Path(os.environ.get("PASSPORT_BIN", ROOT / "target/debug/passport"))
    if not binary.exists():
        pytest.skip(f"{binary} not built (cargo build)")
    tmp.mkdir(parents=True, exist_ok=True)
    jwt = tmp / "jwt"
    jwt.write_text(fake_jwt())
    auth = tmp / "auth-token"
    port = free_port()
    env = clean_env()
    env["PASSPORT_LOG"] = "warn"
    proc = subprocess.Popen(
        [
            str(binary),
            "serve",
            "--role-arn",
            ROLE_ARN,
            "--token-file",
            str(jwt),
            "--sts-endpoint",
            moto_url,
            "--region",
            "eu-west-1",
            "--listen",
            f"127.0.0.1:{port}",
            "--admin-listen",
            "off",
            "--auth-token-file",
            str(auth),
            "--drain-delay",
            "0s",
            *extra,
        ],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"

    def container_credentials():
        req = urllib.request.Request(
            base + "/v1/credentials", headers={"Authorization": auth.read_text()}
        )
        with urllib.request.urlopen(req, timeout=1) as resp:
            return json.loads(resp.read())

    try:
        served = wait_for(container_credentials, "passport to obtain credentials from moto")
    except BaseException:
        stop(proc)
        raise
    return proc, base, served


@pytest.fixture
def passport(moto, tmp_path):
    proc, base, served = start_passport(moto, tmp_path)
    yield base, served
    stop(proc)


@pytest.fixture
def imds_env(monkeypatch, tmp_path):
    """Only the IMDS endpoint override; empty config and credentials files."""
    for var in SHADOWING:
        monkeypatch.delenv(var, raising=False)
    empty_config = tmp_path / "config"
    empty_credentials = tmp_path / "credentials"
    empty_config.write_text("")
    empty_credentials.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty_config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty_credentials))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")

    def point_at(base, v1_disabled=True):
        monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", base)
        if v1_disabled:
            monkeypatch.setenv("AWS_EC2_METADATA_V1_DISABLED", "true")

    return point_at


def test_boto3_gets_exactly_the_sts_credentials(passport, imds_env):
    import boto3

    base, served = passport
    imds_env(base)
    session = boto3.Session()
    creds = session.get_credentials()
    assert creds is not None, "botocore found no credentials through IMDS"
    assert creds.method == "iam-role"
    frozen = creds.get_frozen_credentials()
    assert frozen.access_key == served["AccessKeyId"]
    assert frozen.secret_key == served["SecretAccessKey"]
    assert frozen.token == served["Token"]
    assert served["AccessKeyId"].startswith("ASIA"), "issued by moto's STS"


def test_boto3_credentials_work_against_moto_sts(passport, imds_env, moto):
    import boto3

    base, _ = passport
    imds_env(base)
    sts = boto3.Session().client("sts", region_name="eu-west-1", endpoint_url=moto)
    arn = sts.get_caller_identity()["Arn"]
    assert arn.startswith("arn:aws:sts::123456789012:assumed-role/imds-app/"), arn


def test_botocore_imds_region_discovery(passport, imds_env):
    from botocore.utils import InstanceMetadataRegionFetcher

    base, _ = passport
    imds_env(base)
    # botocore asks for `placement/availability-zone/` (trailing slash) and drops the
    # last character.
    fetcher = InstanceMetadataRegionFetcher(
        config={"ec2_metadata_service_endpoint": base, "ec2_metadata_v1_disabled": True}
    )
    assert fetcher.retrieve_region() == "eu-west-1"


def test_role_listing_and_token_rules_over_the_wire(passport):
    base, _ = passport

    def call(method, path, headers=None):
        req = urllib.request.Request(base + path, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=2) as resp:
                return resp.status, resp.headers, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read().decode()

    ttl = "X-aws-ec2-metadata-token-ttl-seconds"
    status, headers, token = call("PUT", "/latest/api/token", {ttl: "21600"})
    assert status == 200
    assert headers[ttl] == "21600"
    status, _, _ = call("PUT", "/latest/api/token", {ttl: "21600", "X-Forwarded-For": "10.0.0.1"})
    assert status == 403
    status, _, _ = call("PUT", "/latest/api/token", {ttl: "0"})
    assert status == 400
    listing = "/latest/meta-data/iam/security-credentials/"
    assert call("GET", listing)[0] == 401, "IMDSv1 refused by default"
    status, _, body = call("GET", listing, {"X-aws-ec2-metadata-token": token})
    assert (status, body) == (200, ROLE_NAME)


def test_boto3_gets_nothing_when_imds_disabled(moto, imds_env, tmp_path):
    import boto3
    from botocore.exceptions import MetadataRetrievalError

    proc, base, _ = start_passport(moto, tmp_path / "disabled", "--disable-imds")
    try:
        imds_env(base)
        # The token PUT gets 404; with IMDSv1 disabled botocore raises rather than fall back.
        with pytest.raises(MetadataRetrievalError):
            boto3.Session().get_credentials()
    finally:
        stop(proc)
