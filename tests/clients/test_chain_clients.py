"""Role chaining with real clients: `passport serve --chain-role-arn` against the emulator.

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

import os
import subprocess

import boto3
import pytest

from conftest import (
    EMULATOR_ROLE_ARN,
    SESSION_NAME,
    aws_cli_identity,
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
