"""Harness for the real-client tests: moto as STS, the real passport binary, real SDKs.

Nothing here is mocked. moto_server plays STS (it accepts any web-identity token and maps
the keys it issues back to the assumed role in GetCallerIdentity), passport is the binary
that ships (``PASSPORT_BIN``, default ``target/debug/passport``), and the clients are the
unmodified botocore/boto3 and AWS CLI found on PATH.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# The helpers every suite shares (passport_harness) and the Go/Java builds (sdkbuild).
sys.path.insert(0, str(REPO_ROOT / "tests" / "pylib"))

import sdkbuild  # noqa: E402
from passport_harness import (  # noqa: E402  (re-exported to the test modules)
    SHADOWING,
    free_port,
    free_ports,
    passport_bin,
    stop,
    stop_cleanly,
    wait_until,
)

ACCOUNT_ID = "111122223333"
ROLE_NAME = "app"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/{ROLE_NAME}"
SESSION_NAME = "clients-test"
REGION = "us-east-1"

STARTUP_TIMEOUT = 30.0


def _b64url(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def fake_jwt(lifetime: int = 3600) -> str:
    """A well-formed, unsigned-in-effect JWT: passport checks the shape, moto checks nothing."""
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT", "kid": "test-key"}
    claims = {
        "iss": "https://oidc.eks.us-east-1.amazonaws.com/id/TESTCLUSTER",
        "sub": "system:serviceaccount:default:app",
        "aud": ["sts.amazonaws.com"],
        "iat": now,
        "exp": now + lifetime,
    }
    return f"{_b64url(header)}.{_b64url(claims)}.bm90LWEtcmVhbC1zaWduYXR1cmU"


def http_get(url: str, headers: dict | None = None, timeout: float = 2.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@dataclass
class Moto:
    port: int
    proc: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def caller_identity(self, access_key: str, secret_key: str, session_token: str) -> dict:
        """GetCallerIdentity with explicit keys: moto maps them back to what it issued."""
        sts = boto3.client(
            "sts",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            aws_session_token=session_token,
        )
        return sts.get_caller_identity()


@pytest.fixture(scope="session")
def moto(tmp_path_factory) -> Moto:
    exe = shutil.which("moto_server")
    if exe is None:
        pytest.fail("moto_server is not on PATH: pip install -r tests/clients/requirements.txt")
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [exe, "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = Moto(port, proc)
    try:
        wait_until("moto_server", lambda: http_get(f"{server.url}/moto-api/")[0] < 500, STARTUP_TIMEOUT, proc, log)
        yield server
    finally:
        stop(proc)


#: The role `passport emulator` creates, trusting its own issuer for any service account.
EMULATOR_ROLE = "passport-demo"
EMULATOR_ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/{EMULATOR_ROLE}"


def mint_token(
    out: Path,
    signing_key: Path,
    issuer: str,
    *extra_flags: str,
    namespace: str = "default",
    service_account: str = "default",
) -> str:
    """`passport token mint` into `out` (the key is generated there if missing); the token."""
    cmd = [
        str(passport_bin()),
        "token",
        "mint",
        "--signing-key",
        str(signing_key),
        "--issuer",
        issuer,
        "-o",
        str(out),
        "--namespace",
        namespace,
        "--service-account",
        service_account,
        *extra_flags,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"{cmd}: exit {done.returncode}\n{done.stdout}{done.stderr}"
    return out.read_text()


@dataclass
class Emulator:
    """A running `passport emulator`: OIDC issuer and STS on one loopback port."""

    port: int
    proc: subprocess.Popen
    signing_key: Path
    log: Path

    @property
    def url(self) -> str:
        """The STS endpoint, also the issuer URL (`iss` of the tokens it accepts)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def provider_arn(self) -> str:
        return f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/127.0.0.1:{self.port}"

    def role_arn(self, name: str = EMULATOR_ROLE) -> str:
        return f"arn:aws:iam::{ACCOUNT_ID}:role/{name}"

    def mint(self, out: Path, *extra_flags: str, namespace: str = "default", service_account: str = "default") -> str:
        """A token from this emulator's issuer, signed with its key: one it accepts."""
        return mint_token(
            out, self.signing_key, self.url, *extra_flags, namespace=namespace, service_account=service_account
        )


def start_emulator(
    workdir: Path, *extra_flags: str, port: int | None = None, signing_key: Path | None = None
) -> Emulator:
    """`passport emulator` on `port` (default: a free one), ready: discovery answers 200.

    `port` may be chosen beforehand by the caller, to render trust policies naming the
    emulator's provider (`arn:aws:iam::ACCOUNT:oidc-provider/127.0.0.1:PORT`).
    """
    port = port or free_port()
    key = signing_key or workdir / "signing-key.pem"
    log = workdir / "emulator.log"
    cmd = [str(passport_bin()), "emulator", "--listen", f"127.0.0.1:{port}", "--signing-key", str(key), *extra_flags]
    env = {k: v for k, v in os.environ.items() if k not in SHADOWING and not k.startswith("PASSPORT_")}
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    emulator = Emulator(port, proc, key, log)
    discovery = f"{emulator.url}/.well-known/openid-configuration"
    try:
        wait_until("passport emulator", lambda: http_get(discovery)[0] == 200, STARTUP_TIMEOUT, proc, log)
        issuer = json.loads(http_get(discovery)[1])["issuer"]
        assert issuer == emulator.url, f"discovery names issuer {issuer!r}, expected {emulator.url!r}"
    except BaseException:
        stop(proc)
        raise
    return emulator


def stop_emulator(emulator: Emulator) -> None:
    stop_cleanly("passport emulator", emulator.proc, emulator.log)


@pytest.fixture(scope="session")
def emulator(tmp_path_factory) -> Emulator:
    """One `passport emulator` with its defaults (account 111122223333, role passport-demo)."""
    server = start_emulator(tmp_path_factory.mktemp("emulator"))
    yield server
    stop_emulator(server)


@pytest.fixture(scope="session")
def web_identity_token(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("irsa") / "token"
    path.write_text(fake_jwt())
    return path


def sts_flags(moto: Moto, token_file: Path, role_arn: str = ROLE_ARN) -> list[str]:
    return [
        "--role-arn",
        role_arn,
        "--token-file",
        str(token_file),
        "--sts-endpoint",
        moto.url,
        "--session-name",
        SESSION_NAME,
    ]


@dataclass
class Passport:
    proc: subprocess.Popen
    port: int
    admin_port: int
    auth_token_file: Path
    log: Path
    extra: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/credentials"

    @property
    def base_url(self) -> str:
        """Where the IMDS endpoint answers (AWS_EC2_METADATA_SERVICE_ENDPOINT)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def served(self) -> dict:
        """What passport serves right now, fetched with its own auth token."""
        status, body = http_get(self.url, {"Authorization": self.auth_token_file.read_text()})
        assert status == 200, body
        return json.loads(body)


def start_passport(
    moto: Moto, token_file: Path, workdir: Path, *extra_flags: str, role_arn: str = ROLE_ARN
) -> Passport:
    port, admin_port = free_ports(2)
    auth = workdir / "auth-token"
    log = workdir / "passport.log"
    cmd = [
        str(passport_bin()),
        "serve",
        *sts_flags(moto, token_file, role_arn),
        "--listen",
        f"127.0.0.1:{port}",
        "--admin-listen",
        f"127.0.0.1:{admin_port}",
        "--auth-token-file",
        str(auth),
        "--drain-delay",
        "0s",
        *extra_flags,
    ]
    # NO_COLOR would hide escape codes in logs written to a pipe (see test_logs_...).
    env = {k: v for k, v in os.environ.items() if k not in SHADOWING and k != "NO_COLOR"}
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    passport = Passport(proc, port, admin_port, auth, log)
    return passport


def aws_cli_identity(env: dict, sts_url: str, timeout: float = 60) -> dict:
    """`aws sts get-caller-identity` against `sts_url` with `env`: the parsed answer."""
    done = subprocess.run(
        ["aws", "sts", "get-caller-identity", "--endpoint-url", sts_url, "--region", REGION, "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def wait_ready(passport: Passport) -> None:
    wait_until(
        "passport /readyz",
        lambda: http_get(f"{passport.admin_url}/readyz")[0] == 200,
        STARTUP_TIMEOUT,
        passport.proc,
        passport.log,
    )


def start_ready_passport(
    moto: Moto, token_file: Path, workdir: Path, *extra_flags: str, role_arn: str = ROLE_ARN
) -> Passport:
    """start_passport, then wait_ready; a passport that never gets ready is stopped."""
    server = start_passport(moto, token_file, workdir, *extra_flags, role_arn=role_arn)
    try:
        wait_ready(server)
    except BaseException:
        stop(server.proc)
        raise
    return server


def stop_passport(passport: Passport) -> None:
    stop_cleanly("passport", passport.proc, passport.log)


@pytest.fixture(scope="session")
def passport(moto, web_identity_token, tmp_path_factory) -> Passport:
    """One running passport for the read-only client tests (container endpoint and IMDSv2,
    which is off unless asked for); asserts a clean exit at the end."""
    server = start_ready_passport(moto, web_identity_token, tmp_path_factory.mktemp("passport"), "--imds")
    yield server
    stop_passport(server)


@pytest.fixture
def client_env(tmp_path) -> dict:
    """The environment of an application: no credentials anywhere but what a test adds."""
    credentials = tmp_path / "aws-credentials"
    config = tmp_path / "aws-config"
    credentials.write_text("")
    config.write_text("")
    env = {k: v for k, v in os.environ.items() if k not in SHADOWING and not k.startswith("AWS_DEFAULT_")}
    env.update(
        {
            "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
            "AWS_CONFIG_FILE": str(config),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "HOME": str(tmp_path),
        }
    )
    return env


def with_container_endpoint(client_env: dict, passport: "Passport") -> dict:
    """client_env plus exactly the two variables passport tells applications to set."""
    env = dict(client_env)
    env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = passport.url
    env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = str(passport.auth_token_file)
    return env


@pytest.fixture
def container_env(client_env, passport) -> dict:
    return with_container_endpoint(client_env, passport)


def imds_env(client_env: dict, passport: Passport) -> dict:
    """client_env with EC2 metadata enabled and pointed at passport's IMDS endpoint (IMDSv2 only)."""
    env = {k: v for k, v in client_env.items() if not k.startswith("AWS_EC2_METADATA_")}
    env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = passport.base_url
    env["AWS_EC2_METADATA_V1_DISABLED"] = "true"
    # botocore's IMDS client honours HTTP(S)_PROXY: keep loopback direct.
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def use_env(monkeypatch, env: dict) -> None:
    """Make the in-process environment exactly `env` (for botocore, which reads os.environ)."""
    for key in list(os.environ):
        if key not in env:
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def assumed_role_arn(session: str = SESSION_NAME, role_arn: str = ROLE_ARN) -> str:
    """What GetCallerIdentity says for keys moto issued for `role_arn` (its path dropped)."""
    account, name = role_arn.split(":")[4], role_arn.rsplit("/", 1)[1]
    return f"arn:aws:sts::{account}:assumed-role/{name}/{session}"


# --- the Go and Java client programs, built once per session (offline) ---


@pytest.fixture(scope="session")
def go_bin(tmp_path_factory) -> Path:
    """sdkclient, irsa-validator (tests/clients/go) and sdkclient-legacy (go-legacy)."""
    out = tmp_path_factory.mktemp("go-bin")
    sdkbuild.go_build(sdkbuild.GO_DIR, out)
    sdkbuild.go_build(sdkbuild.GO_LEGACY_DIR, out)
    for name in ("sdkclient", "irsa-validator", "sdkclient-legacy"):
        assert (out / name).is_file(), f"{name} was not built"
    return out


@pytest.fixture(scope="session")
def java_cp() -> dict:
    """Each Java module's runtime classpath, after an offline `mvn package`."""
    return sdkbuild.java_classpaths()
