"""Several roles from one passport: `serve --extra-role NAME=ARN[,chain]` with real clients.

The emulator holds three roles: `passport-demo` (the default role, web identity),
`reports` in the same account (web identity with the same token: an extra role), and
`reader` in account 444455556666, reached by AssumeRole from `passport-demo` (a chained
extra role). Each client is given only the container endpoint of one role, as a container
of a pod would be, and the emulator's GetCallerIdentity (which checks their SigV4
signatures) must name that role.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import boto3
import pytest

from conftest import (
    ACCOUNT_ID,
    EMULATOR_ROLE_ARN,
    REGION,
    SESSION_NAME,
    aws_cli_identity,
    free_port,
    http_get,
    passport_bin,
    start_emulator,
    start_ready_passport,
    stop_emulator,
    stop_passport,
    use_env,
    with_container_endpoint,
)
from matrix import SDK_CASES, base_env, run_client, sdk_program

NODE_DIR = Path(__file__).parent / "node"
REPORTS_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/reports"
READER_ARN = "arn:aws:iam::444455556666:role/reader"
EXPECTED = {
    None: f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/passport-demo/{SESSION_NAME}",
    "reports": f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/reports/{SESSION_NAME}",
    "reader": f"arn:aws:sts::444455556666:assumed-role/reader/{SESSION_NAME}",
}


def passport_stdout(*argv: str) -> str:
    return subprocess.run(
        [str(passport_bin()), *argv], capture_output=True, text=True, timeout=30, check=True
    ).stdout


@pytest.fixture(scope="module")
def roles(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("extra-roles")
    port = free_port()
    provider = f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/127.0.0.1:{port}"
    (workdir / "reports.json").write_text(
        passport_stdout(
            "trust-policy", "--oidc-provider-arn", provider, "--namespace", "clients", "--service-account", "app"
        )
    )
    (workdir / "reader.json").write_text(passport_stdout("trust-policy", "--for-role", EMULATOR_ROLE_ARN))
    emulator = start_emulator(
        workdir,
        "--role",
        f"reports={workdir / 'reports.json'}",
        "--role",
        f"444455556666:reader={workdir / 'reader.json'}",
        port=port,
    )
    token = workdir / "token"
    emulator.mint(token, namespace="clients", service_account="app")
    server = start_ready_passport(
        emulator,
        token,
        workdir,
        "--extra-role",
        f"reports={REPORTS_ARN}",
        "--extra-role",
        f"reader={READER_ARN},chain",
        role_arn=EMULATOR_ROLE_ARN,
    )
    yield emulator, server
    stop_passport(server)
    stop_emulator(emulator)


def role_env(client_env: dict, server, role: str | None) -> dict:
    env = with_container_endpoint(client_env, server)
    if role:
        env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = f"{server.url}/{role}"
    env["AWS_DEFAULT_REGION"] = REGION
    return env


@pytest.mark.parametrize("role", [None, "reports", "reader"])
def test_boto3_gets_the_role_its_endpoint_names(roles, client_env, monkeypatch, role):
    emulator, server = roles
    use_env(monkeypatch, role_env(client_env, server, role))
    session = boto3.Session()
    assert session.get_credentials().method == "container-role"
    identity = session.client("sts", endpoint_url=emulator.url).get_caller_identity()
    assert identity["Arn"] == EXPECTED[role]


@pytest.mark.parametrize("role", ["reports", "reader"])
def test_aws_cli_gets_the_role_its_endpoint_names(roles, client_env, role):
    emulator, server = roles
    identity = aws_cli_identity(role_env(client_env, server, role), emulator.url)
    assert identity["Arn"] == EXPECTED[role]


JS_GET_CALLER_IDENTITY = """
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
const sts = new STSClient({ region: "us-east-1", endpoint: process.env.STS_URL });
const identity = await sts.send(new GetCallerIdentityCommand({}));
console.log(JSON.stringify({ Arn: identity.Arn }));
"""


@pytest.mark.parametrize("role", ["reports", "reader"])
def test_js_v3_gets_the_role_its_endpoint_names(roles, client_env, role):
    emulator, server = roles
    env = role_env(client_env, server, role)
    env["STS_URL"] = emulator.url
    script = NODE_DIR / f".extra-role-{role}.mjs"
    script.write_text(JS_GET_CALLER_IDENTITY)
    try:
        done = subprocess.run(
            ["node", str(script)], env=env, cwd=NODE_DIR, capture_output=True, text=True, timeout=60
        )
    finally:
        script.unlink()
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["Arn"] == EXPECTED[role]


@pytest.mark.parametrize("case", [c for c, _ in SDK_CASES])
@pytest.mark.parametrize("role", ["reports", "reader"])
def test_go_and_java_get_the_role_their_endpoint_names(roles, tmp_path, request, case, role):
    """The current Go and Java SDKs of the client matrix, given one role's endpoint."""
    emulator, server = roles
    env = base_env(tmp_path, emulator)
    env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = f"{server.url}/{role}"
    env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = str(server.auth_token_file)
    outcome = run_client(f"[{case}] extra role {role}", sdk_program(case, request), env)
    assert outcome.code == 0 and outcome.result and "error" not in outcome.result, outcome.describe()
    assert outcome.result["arn"] == EXPECTED[role], outcome.describe()
    status, body = http_get(f"{server.url}/{role}", {"Authorization": server.auth_token_file.read_text()})
    assert status == 200
    assert outcome.result["access_key_id"] == json.loads(body)["AccessKeyId"], outcome.describe()


def test_readyz_and_metrics_name_every_role(roles):
    _, server = roles
    status, body = http_get(f"http://127.0.0.1:{server.admin_port}/readyz")
    assert status == 200, body
    assert set(json.loads(body)["roles"]) == {"default", "reports", "reader"}
    status, body = http_get(f"http://127.0.0.1:{server.admin_port}/metrics")
    text = body.decode()
    for role in ("default", "reports", "reader"):
        assert f'passport_ready{{role="{role}"}} 1' in text, text
    log = server.log.read_text(errors="replace")
    assert "serving an extra role" in log and "reader" in log
