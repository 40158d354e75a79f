"""Role chaining with real clients: `passport serve --chain-role-arn` against the emulator,
and against moto_server as an STS no one here wrote (below).

passport exchanges the minted token for the emulator's `passport-demo` role (account
111122223333), then calls AssumeRole into `reader` in account 444455556666, whose trust
policy `passport trust-policy --for-role` rendered (Principal.AWS the first role, an
external id, sts:TagSession). boto3, the AWS CLI, and the Go (aws-sdk-go-v2, aws-sdk-go
v1.55) and Java (2.x, 1.12) programs of the client matrix, given only the container
endpoint, must get the chained session: the emulator's GetCallerIdentity, which verifies
their SigV4 signatures, names the chained role. The Go and Java runs go through matrix.py's
counting proxy, so they also prove one credential fetch for 32 x 10 concurrent reads.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess

import boto3
import pytest

from conftest import (
    EMULATOR_ROLE_ARN,
    ROLE_ARN,
    SESSION_NAME,
    aws_cli_identity,
    http_get,
    passport_bin,
    start_emulator,
    start_ready_passport,
    stop_emulator,
    stop_passport,
    use_env,
    with_container_endpoint,
)
from matrix import SDK_CASES, CountingProxy, assert_identity, base_env, level_env, requests_200, run_client, sdk_program

CHAINED_ROLE_ARN = "arn:aws:iam::444455556666:role/reader"
CHAINED_ARN = f"arn:aws:sts::444455556666:assumed-role/reader/{SESSION_NAME}"
EXTERNAL_ID = "shared-secret-id"


@pytest.fixture(scope="module")
def chained(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("chain")
    policy = subprocess.run(
        [
            str(passport_bin()),
            "trust-policy",
            "--for-role",
            EMULATOR_ROLE_ARN,
            "--external-id",
            EXTERNAL_ID,
            "--allow-session-tags",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    (workdir / "reader.json").write_text(policy)
    emulator = start_emulator(workdir, "--role", f"444455556666:reader={workdir / 'reader.json'}")
    token = workdir / "token"
    emulator.mint(token, namespace="clients", service_account="app")
    (workdir / "external-id").write_text(EXTERNAL_ID + "\n")
    server = start_ready_passport(
        emulator,
        token,
        workdir,
        "--chain-role-arn",
        CHAINED_ROLE_ARN,
        "--external-id-file",
        str(workdir / "external-id"),
        "--session-tag",
        "team=payments",
        role_arn=EMULATOR_ROLE_ARN,
    )
    yield emulator, server
    stop_passport(server)
    stop_emulator(emulator)


def test_boto3_gets_the_chained_role(chained, client_env, monkeypatch):
    emulator, server = chained
    use_env(monkeypatch, with_container_endpoint(client_env, server))
    session = boto3.Session()
    assert session.get_credentials().method == "container-role"
    identity = session.client("sts", endpoint_url=emulator.url).get_caller_identity()
    assert identity["Arn"] == CHAINED_ARN
    assert identity["Account"] == "444455556666"
    assert server.served()["RoleArn"] == CHAINED_ROLE_ARN


def test_aws_cli_gets_the_chained_role(chained, client_env):
    emulator, server = chained
    identity = aws_cli_identity(with_container_endpoint(client_env, server), emulator.url)
    assert identity["Arn"] == CHAINED_ARN


@pytest.fixture
def chained_proxy(chained):
    _, server = chained
    p = CountingProxy(server.port).start()
    yield p
    p.stop()


@pytest.mark.parametrize("case,providers", SDK_CASES, ids=[c for c, _ in SDK_CASES])
def test_go_and_java_get_the_chained_role(chained, chained_proxy, tmp_path, request, case, providers):
    emulator, server = chained
    cmd = sdk_program(case, request)
    env = level_env("modern", base_env(tmp_path, emulator), server, chained_proxy)
    before = requests_200(server)
    outcome = run_client(f"[{case}] chained, at level modern", cmd, env)
    assert_identity(
        outcome,
        server,
        chained_proxy,
        providers,
        level="modern (chained)",
        before_200=before,
        arn=CHAINED_ARN,
        result="chained assumed-role ARN",
    )
    assert server.served()["RoleArn"] == CHAINED_ROLE_ARN


def test_the_external_id_never_reaches_the_log(chained):
    _, server = chained
    log = server.log.read_text(errors="replace")
    assert "refreshed credentials" in log
    assert EXTERNAL_ID not in log


def test_the_external_id_never_reaches_help_or_errors():
    """clap prints an env variable's value in --help unless told not to; an external id is a
    shared secret, so neither --help nor a usage error may show it."""
    env = dict(os.environ, PASSPORT_EXTERNAL_ID="planted-external-id-value")
    for argv in (["serve", "--help"], ["serve", "--role-arn", "bad"]):
        done = subprocess.run(
            [str(passport_bin()), *argv], env=env, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
        )
        assert "planted-external-id-value" not in done.stdout + done.stderr, argv


# --- moto_server as a second, independent STS for both hops' wire format ---------------
#
# The emulator above was written here; moto was not. passport exchanges the fake token with
# moto (AssumeRoleWithWebIdentity), then calls AssumeRole into a role of another account with
# every chaining option, through aws-sdk-sts. moto parses the request with its own code and
# records what it understood (its /moto-api/data.json), and answers in its own XML, which
# passport must read. moto checks no trust policy and no signature: the emulator tests do.
# Without moto_server the `moto` fixture fails (it never skips).

MOTO_CHAINED_ROLE_ARN = "arn:aws:iam::444455556666:role/reader"
MOTO_CHAIN_SESSION = "chained-moto"
MOTO_CHAINED_ARN = f"arn:aws:sts::444455556666:assumed-role/reader/{MOTO_CHAIN_SESSION}"
MOTO_EXTERNAL_ID = "moto-external-id-42"
MOTO_CHAIN_SECONDS = 1800
SESSION_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::reports/*"}],
}


@pytest.fixture(scope="module")
def moto_chained(moto, web_identity_token, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("moto-chain")
    external_id = workdir / "external-id"
    external_id.write_text(MOTO_EXTERNAL_ID + "\n")
    policy = workdir / "session-policy.json"
    policy.write_text(json.dumps(SESSION_POLICY))
    server = start_ready_passport(
        moto,
        web_identity_token,
        workdir,
        "--chain-role-arn",
        MOTO_CHAINED_ROLE_ARN,
        "--chain-session-name",
        MOTO_CHAIN_SESSION,
        "--chain-duration-seconds",
        str(MOTO_CHAIN_SECONDS),
        "--external-id-file",
        str(external_id),
        "--session-tag",
        "team=payments",
        "--transitive-tag-key",
        "team",
        "--session-policy-file",
        str(policy),
    )
    yield server
    stop_passport(server)


def moto_sessions(moto) -> list[dict]:
    """Every session moto issued, as it recorded them (parsed from the requests it got)."""
    status, body = http_get(f"{moto.url}/moto-api/data.json")
    assert status == 200, body
    return json.loads(body)["sts"]["AssumedRole"]


def test_boto3_gets_the_chained_role_from_moto(moto, moto_chained, client_env, monkeypatch):
    use_env(monkeypatch, with_container_endpoint(client_env, moto_chained))
    session = boto3.Session()
    credentials = session.get_credentials()
    assert credentials.method == "container-role"
    identity = session.client("sts", endpoint_url=moto.url).get_caller_identity()
    assert identity["Arn"] == MOTO_CHAINED_ARN
    assert identity["Account"] == "444455556666"
    served = moto_chained.served()
    assert served["RoleArn"] == MOTO_CHAINED_ROLE_ARN
    # moto honoured the DurationSeconds passport sent, and passport read moto's Expiration.
    expires = datetime.datetime.strptime(served["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc
    )
    left = (expires - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
    assert MOTO_CHAIN_SECONDS - 300 < left <= MOTO_CHAIN_SECONDS + 5, served["Expiration"]

    # The application holds the second hop's keys, and moto parsed every parameter of the
    # AssumeRole passport sent: role, session name, external id, session policy.
    sessions = moto_sessions(moto)
    hop2 = [s for s in sessions if s["access_key_id"] == credentials.access_key]
    assert len(hop2) == 1, sessions
    hop2 = hop2[0]
    assert hop2["role_arn"] == MOTO_CHAINED_ROLE_ARN
    assert hop2["session_name"] == MOTO_CHAIN_SESSION
    assert hop2["external_id"] == MOTO_EXTERNAL_ID
    assert json.loads(hop2["policy"]) == SESSION_POLICY
    # ...and hop 1 was the web-identity session of the first role.
    assert any(s["role_arn"] == ROLE_ARN and s["session_name"] == SESSION_NAME for s in sessions), sessions


def test_aws_cli_gets_the_chained_role_from_moto(moto, moto_chained, client_env):
    identity = aws_cli_identity(with_container_endpoint(client_env, moto_chained), moto.url)
    assert identity["Arn"] == MOTO_CHAINED_ARN


def test_the_moto_chain_log_names_the_chained_role_and_no_secret(moto_chained):
    log = moto_chained.log.read_text(errors="replace")
    assert f'chain_role_arn="{MOTO_CHAINED_ROLE_ARN}"' in log
    assert "refreshed credentials" in log
    assert MOTO_EXTERNAL_ID not in log
