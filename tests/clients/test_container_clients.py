"""Unmodified AWS clients against the real passport binary, with moto as STS.

"Each client receives exactly the credentials STS issued": passport's served keys are
checked against moto's GetCallerIdentity (moto maps an access key it issued back to the
assumed-role ARN), and every client must end up with those keys.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import datetime, timezone

import boto3
import botocore.exceptions
import pytest

from conftest import (
    ACCOUNT_ID,
    REGION,
    ROLE_ARN,
    SHADOWING,
    assumed_role_arn,
    aws_cli_identity,
    fake_jwt,
    http_get,
    passport_bin,
    start_passport,
    start_ready_passport,
    stop_passport,
    sts_flags,
    use_env,
    wait_ready,
)

EXPIRATION = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
FAKE_KEY = "AKIAFAKEFAKEFAKEFAKE"
FAKE_SECRET = "fake/secret/key/that/must/never/be/used00"

# A real client must get an answer, not hang: botocore tries 3 times, 1 s apart, 2 s timeout.
CLIENT_GIVES_UP_WITHIN = 15.0


def answers(url: str) -> bool:
    try:
        return http_get(url)[0] == 200
    except OSError:
        return False


def run(cmd, env, timeout=60, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd, env=env, timeout=timeout, capture_output=True, text=True, stdin=subprocess.DEVNULL, **kwargs
    )


# ---------------------------------------------------------------- what passport serves


def test_served_credentials_are_the_ones_sts_issued(passport, moto):
    served = passport.served()
    assert set(served) >= {"AccessKeyId", "SecretAccessKey", "Token", "Expiration", "AccountId"}
    assert served["AccessKeyId"].startswith("ASIA"), served["AccessKeyId"]
    assert served["AccountId"] == ACCOUNT_ID
    assert served.get("RoleArn", ROLE_ARN) == ROLE_ARN
    assert EXPIRATION.match(served["Expiration"]), served["Expiration"]
    left = datetime.strptime(served["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc) - datetime.now(
        timezone.utc
    )
    assert left.total_seconds() > 15 * 60, f"clients would refetch on every call: {left}"

    identity = moto.caller_identity(served["AccessKeyId"], served["SecretAccessKey"], served["Token"])
    assert identity["Arn"] == assumed_role_arn()
    assert identity["Account"] == ACCOUNT_ID


def test_passport_auth_token_file_is_one_clean_line(passport):
    # botocore, Go and Rust reject a token with CR/LF anywhere: passport must never write one.
    raw = passport.auth_token_file.read_bytes()
    assert raw, "empty auth token"
    assert b"\n" not in raw and b"\r" not in raw
    assert all(0x21 <= b <= 0x7E for b in raw), raw


def test_credentials_endpoint_refuses_missing_and_wrong_tokens(passport):
    status, body = http_get(passport.url)
    assert status == 401
    assert json.loads(body)["Code"]
    status, body = http_get(passport.url, {"Authorization": "not-the-token"})
    assert status == 403
    error = json.loads(body)
    assert error["Code"] == error["code"] and error["Message"] == error["message"]


# ---------------------------------------------------------------- botocore / boto3


def test_boto3_uses_the_container_provider_and_gets_the_served_keys(passport, moto, container_env, monkeypatch):
    use_env(monkeypatch, container_env)
    credentials = boto3.Session().get_credentials()
    assert credentials is not None
    assert credentials.method == "container-role"
    frozen = credentials.get_frozen_credentials()

    served = passport.served()
    assert (frozen.access_key, frozen.secret_key, frozen.token) == (
        served["AccessKeyId"],
        served["SecretAccessKey"],
        served["Token"],
    )

    sts = boto3.Session().client("sts", endpoint_url=moto.url, region_name=REGION)
    assert sts.get_caller_identity()["Arn"] == assumed_role_arn()


def test_boto3_with_a_wrong_token_fails_fast_with_a_credential_error(passport, container_env, tmp_path, monkeypatch):
    wrong = tmp_path / "wrong-token"
    wrong.write_text("0" * 64)
    container_env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = str(wrong)
    use_env(monkeypatch, container_env)
    started = time.monotonic()
    with pytest.raises(botocore.exceptions.CredentialRetrievalError) as raised:
        boto3.Session().get_credentials()
    assert time.monotonic() - started < CLIENT_GIVES_UP_WITHIN
    assert "403" in str(raised.value) or "InvalidAuthorization" in str(raised.value), raised.value


def test_boto3_rejects_a_copied_token_file_with_a_trailing_newline(passport, container_env, tmp_path, monkeypatch):
    # Documents pitfall 1 of client-compat.md: an operator who copies the token with `echo`
    # breaks botocore, which is why passport writes its own file without a newline.
    copied = tmp_path / "copied-token"
    copied.write_text(passport.auth_token_file.read_text() + "\n")
    container_env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = str(copied)
    use_env(monkeypatch, container_env)
    # Not even a credential error: botocore raises ValueError before sending anything.
    with pytest.raises(ValueError, match="not a legal header value"):
        boto3.Session().get_credentials()


# ---------------------------------------------------------------- the AWS CLI


def test_aws_cli_gets_the_assumed_role(container_env, moto):
    identity = aws_cli_identity(container_env, moto.url)
    assert identity["Arn"] == assumed_role_arn()
    assert identity["Account"] == ACCOUNT_ID


def test_print_env_evaluated_by_sh_makes_the_aws_cli_work(passport, moto, client_env):
    # Static keys in the parent would win over the container endpoint: the printed `unset`
    # line must remove them.
    client_env.update({"AWS_ACCESS_KEY_ID": FAKE_KEY, "AWS_SECRET_ACCESS_KEY": FAKE_SECRET})
    printed = run(
        [
            str(passport_bin()),
            "serve",
            "--print-env",
            *sts_flags(moto, passport.auth_token_file),
            "--listen",
            f"127.0.0.1:{passport.port}",
            "--auth-token-file",
            str(passport.auth_token_file),
        ],
        client_env,
    )
    assert printed.returncode == 0, printed.stderr
    assert f"export AWS_CONTAINER_CREDENTIALS_FULL_URI={passport.url}\n" in printed.stdout
    # The binary's own list of shadowing variables (src/env.rs) is one the harness strips from
    # every client's environment too (passport_harness.SHADOWING): the two cannot drift apart.
    unset = [line.split()[1:] for line in printed.stdout.splitlines() if line.startswith("unset ")]
    assert len(unset) == 1 and "AWS_ACCESS_KEY_ID" in unset[0], printed.stdout
    assert set(unset[0]) <= set(SHADOWING), f"not in passport_harness.SHADOWING: {set(unset[0]) - set(SHADOWING)}"
    script = f'eval "$PASSPORT_ENV" && exec aws sts get-caller-identity --endpoint-url {moto.url} --output json'
    out = run(["sh", "-c", script], {**client_env, "PASSPORT_ENV": printed.stdout})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["Arn"] == assumed_role_arn()


# ---------------------------------------------------------------- passport exec

CHILD = r"""
import json, os, sys
import boto3
creds = boto3.Session().get_credentials()
frozen = creds.get_frozen_credentials()
sts = boto3.client("sts", endpoint_url=sys.argv[1], region_name="us-east-1")
print(json.dumps({
    "method": creds.method,
    "access_key": frozen.access_key,
    "arn": sts.get_caller_identity()["Arn"],
    "env": {k: v for k, v in os.environ.items() if k.startswith("AWS_")},
    "token": open(os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]).read(),
}))
"""


def exec_cmd(moto, token_file, *command: str) -> list[str]:
    return [str(passport_bin()), "exec", *sts_flags(moto, token_file), "--", *command]


def test_exec_child_gets_credentials_and_shadowing_variables_are_removed(moto, web_identity_token, client_env):
    client_env.update(
        {
            "AWS_ACCESS_KEY_ID": FAKE_KEY,
            "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
            "AWS_SESSION_TOKEN": "fake-session",
            "AWS_PROFILE": "nonexistent-profile",
            "AWS_ROLE_ARN": "arn:aws:iam::999999999999:role/other",
            "AWS_WEB_IDENTITY_TOKEN_FILE": "/nonexistent/token",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/nonexistent",
        }
    )
    out = run(exec_cmd(moto, web_identity_token, sys.executable, "-c", CHILD, moto.url), client_env)
    assert out.returncode == 0, out.stderr
    child = json.loads(out.stdout)
    assert child["method"] == "container-role"
    assert child["access_key"].startswith("ASIA")
    assert child["arn"] == assumed_role_arn()
    env = child["env"]
    for removed in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    ):
        assert removed not in env, f"{removed} leaked into the child"
    assert re.match(r"^http://127\.0\.0\.1:\d+/v1/credentials$", env["AWS_CONTAINER_CREDENTIALS_FULL_URI"])
    # The token as a value too (SDKs from 2017 to late 2023 read only that), equal to the file.
    assert env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] == child["token"]
    # The child's token file is passport's own: one clean line.
    assert child["token"] and "\n" not in child["token"] and "\r" not in child["token"]


def test_exec_child_uses_passport_even_with_static_keys_in_the_default_profile(moto, web_identity_token, client_env):
    with open(client_env["AWS_SHARED_CREDENTIALS_FILE"], "w") as f:
        f.write(f"[default]\naws_access_key_id = {FAKE_KEY}\naws_secret_access_key = {FAKE_SECRET}\n")
    out = run(exec_cmd(moto, web_identity_token, sys.executable, "-c", CHILD, moto.url), client_env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["method"] == "container-role"


def test_exec_runs_the_aws_cli(moto, web_identity_token, client_env):
    client_env.update({"AWS_ACCESS_KEY_ID": FAKE_KEY, "AWS_SECRET_ACCESS_KEY": FAKE_SECRET})
    out = run(
        exec_cmd(moto, web_identity_token, "aws", "sts", "get-caller-identity", "--endpoint-url", moto.url),
        client_env,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["Arn"] == assumed_role_arn()


@pytest.mark.parametrize("status", [0, 1, 7, 255])
def test_exec_propagates_the_exit_status(moto, web_identity_token, client_env, status):
    out = run(exec_cmd(moto, web_identity_token, "sh", "-c", f"exit {status}"), client_env)
    assert out.returncode == status, out.stderr


def test_exec_of_a_missing_command_is_127(moto, web_identity_token, client_env):
    out = run(exec_cmd(moto, web_identity_token, "/nonexistent/command"), client_env)
    assert out.returncode == 127, out.stderr


# ---------------------------------------------------------------- lifecycle and bad input


def test_not_ready_without_a_token_then_clients_fail_fast(moto, tmp_path, client_env, monkeypatch):
    missing = tmp_path / "no-such-token"
    server = start_passport(moto, missing, tmp_path)
    try:
        # The server answers (healthz) but is not ready, and says why.
        deadline = time.monotonic() + 10
        while not answers(f"{server.admin_url}/healthz"):
            assert time.monotonic() < deadline, server.log.read_text()
            assert server.proc.poll() is None, server.log.read_text()
            time.sleep(0.05)
        assert http_get(f"{server.admin_url}/readyz")[0] == 503
        status, body = http_get(server.url, {"Authorization": server.auth_token_file.read_text()})
        assert status == 503, body
        assert json.loads(body)["Code"]

        use_env(
            monkeypatch,
            {
                **client_env,
                "AWS_CONTAINER_CREDENTIALS_FULL_URI": server.url,
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(server.auth_token_file),
            },
        )
        started = time.monotonic()
        with pytest.raises(botocore.exceptions.CredentialRetrievalError):
            boto3.Session().get_credentials()
        assert time.monotonic() - started < CLIENT_GIVES_UP_WITHIN

        # The token appears (kubelet projected it late): passport recovers by itself.
        missing.write_text(fake_jwt())
        wait_ready(server)
        assert server.served()["AccessKeyId"].startswith("ASIA")
    finally:
        stop_passport(server)


def test_sigterm_exits_zero_promptly(moto, web_identity_token, tmp_path):
    server = start_ready_passport(moto, web_identity_token, tmp_path)
    started = time.monotonic()
    stop_passport(server)
    assert time.monotonic() - started < 3.0


def test_logs_to_a_pipe_have_no_colour_codes(passport):
    # Container runtimes hand passport's stderr to a log shipper, never a terminal.
    text = passport.log.read_text(errors="replace")
    assert "passport serving" in text, text
    assert "\x1b[" not in text, text[:500]


def test_bad_flags_exit_64_and_list_every_problem(client_env):
    out = run([str(passport_bin()), "serve", "--role-arn", "nope", "--duration-seconds", "5"], client_env)
    assert out.returncode == 64, out
    assert "invalid configuration" in out.stderr
    assert '--role-arn "nope"' in out.stderr, out.stderr
    assert '--duration-seconds "5"' in out.stderr, out.stderr
    assert out.stdout == ""

