"""Real clients against `passport emulator` (issue 4), and the emulator against moto.

* The AWS CLI and boto3 use credentials *served by passport* (`passport serve` exchanging
  a `passport token mint` token at the emulator) and call the emulator's
  GetCallerIdentity, which verifies their SigV4 signatures.
* Trust cases through boto3 `assume_role_with_web_identity` straight at the emulator, each
  with the error code real STS gives.
* Cross-check with moto, an independent STS: the same token and role sent to both, the
  parsed responses and the raw XML trees compared where their behaviour overlaps.
* `passport demo` end to end, as a user runs it.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import re
import shlex
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import botocore
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import botocore.exceptions
import pytest

from conftest import (
    ACCOUNT_ID,
    EMULATOR_ROLE,
    EMULATOR_ROLE_ARN,
    REGION,
    SESSION_NAME,
    SHADOWING,
    aws_cli_identity,
    free_port,
    mint_token,
    passport_bin,
    start_emulator,
    stop,
    stop_emulator,
    use_env,
    with_container_endpoint,
)

XMLNS = "https://sts.amazonaws.com/doc/2011-06-15/"
ASSUMED_ARN = re.compile(r"^arn:aws:sts::(\d{12}):assumed-role/([\w+=,.@-]+)/([\w+=,.@-]{2,64})$")
NOT_AUTHORIZED = "Not authorized to perform sts:AssumeRoleWithWebIdentity"
DURATION_EXCEEDS_MAX = "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."


def assumed_arn(role: str, session: str) -> str:
    return f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{role}/{session}"


def unsigned_sts(endpoint: str):
    """An STS client for AssumeRoleWithWebIdentity (unsigned, as the SDKs send it), no retries."""
    return boto3.client(
        "sts",
        endpoint_url=endpoint,
        region_name=REGION,
        config=botocore.config.Config(signature_version=botocore.UNSIGNED, retries={"max_attempts": 1}),
    )


def keyed_sts(endpoint: str, creds: dict):
    """An STS client signing with `creds` (AccessKeyId/SecretAccessKey/SessionToken or Token)."""
    return boto3.client(
        "sts",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds.get("SessionToken") or creds["Token"],
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )


def sts_error(call) -> tuple[str, str, int]:
    """(code, message, HTTP status) of the ClientError `call()` must raise."""
    with pytest.raises(botocore.exceptions.ClientError) as info:
        call()
    response = info.value.response
    return response["Error"]["Code"], response["Error"].get("Message", ""), response["ResponseMetadata"]["HTTPStatusCode"]


# --- 1. Credentials served by passport, verified by the emulator's GetCallerIdentity ---


# `served`: matrix.py's fixture, `passport serve` exchanging a minted token at the emulator.
from matrix import served  # noqa: E402,F401  (a pytest fixture, used by name)


@pytest.fixture
def served_env(client_env, served) -> dict:
    return with_container_endpoint(client_env, served)


def test_aws_cli_identity_from_passport_credentials(emulator, served_env):
    identity = aws_cli_identity(served_env, emulator.url)
    assert identity["Arn"] == assumed_arn(EMULATOR_ROLE, SESSION_NAME)
    assert identity["Account"] == ACCOUNT_ID
    assert identity["UserId"].startswith("AROA") and identity["UserId"].endswith(f":{SESSION_NAME}")


def test_boto3_identity_from_passport_credentials(emulator, served, served_env, monkeypatch):
    use_env(monkeypatch, served_env)
    session = boto3.Session()
    creds = session.get_credentials()
    assert creds.method == "container-role"
    frozen = creds.get_frozen_credentials()
    served_now = served.served()
    assert (frozen.access_key, frozen.secret_key, frozen.token) == (
        served_now["AccessKeyId"],
        served_now["SecretAccessKey"],
        served_now["Token"],
    )
    assert frozen.access_key.startswith("ASIA")
    identity = session.client("sts", endpoint_url=emulator.url).get_caller_identity()
    assert identity["Arn"] == assumed_arn(EMULATOR_ROLE, SESSION_NAME)


def tamper(secret: str) -> str:
    """The secret with its last character changed."""
    return secret[:-1] + ("A" if secret[-1] != "A" else "B")


def test_tampered_secret_is_signature_does_not_match(emulator, served):
    creds = served.served()
    assert keyed_sts(emulator.url, creds).get_caller_identity()["Arn"] == assumed_arn(EMULATOR_ROLE, SESSION_NAME)
    bad = dict(creds, SecretAccessKey=tamper(creds["SecretAccessKey"]))
    code, _, status = sts_error(keyed_sts(emulator.url, bad).get_caller_identity)
    assert (code, status) == ("SignatureDoesNotMatch", 403)


def test_unknown_key_or_session_token_is_invalid_client_token_id(emulator, served):
    creds = served.served()
    for bad in (dict(creds, AccessKeyId="ASIA" + "Q" * 16), dict(creds, Token=tamper(creds["Token"]))):
        code, _, status = sts_error(keyed_sts(emulator.url, bad).get_caller_identity)
        assert (code, status) == ("InvalidClientTokenId", 403)


# --- 2. Trust policies: the error codes real STS gives ---

PAYMENTS_SUB = "system:serviceaccount:payments:api"


@pytest.fixture(scope="module")
def trust_emulator(tmp_path_factory, emulator):
    """An emulator with roles from trust policies rendered by `passport trust-policy`.

    * `payments`: exactly system:serviceaccount:payments:api (StringEquals), max session 3600;
    * `teams`: the same policy with `sub` turned into StringLike `system:serviceaccount:team-*:*`,
      max session 7200.
    The port is chosen first, since the provider ARN in the policies names it.
    """
    workdir = tmp_path_factory.mktemp("trust")
    port = free_port()  # the session emulator holds its own port: this one differs
    provider = f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/127.0.0.1:{port}"
    rendered = subprocess.run(
        [
            str(passport_bin()),
            "trust-policy",
            "--oidc-provider-arn",
            provider,
            "--namespace",
            "payments",
            "--service-account",
            "api",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert rendered.returncode == 0, rendered.stderr
    payments = json.loads(rendered.stdout)
    equals = payments["Statement"][0]["Condition"]["StringEquals"]
    assert equals == {f"127.0.0.1:{port}:sub": PAYMENTS_SUB, f"127.0.0.1:{port}:aud": "sts.amazonaws.com"}
    (workdir / "payments.json").write_text(rendered.stdout)

    teams = json.loads(rendered.stdout)
    condition = teams["Statement"][0]["Condition"]
    condition["StringLike"] = {f"127.0.0.1:{port}:sub": "system:serviceaccount:team-*:*"}
    del condition["StringEquals"][f"127.0.0.1:{port}:sub"]
    (workdir / "teams.json").write_text(json.dumps(teams))

    server = start_emulator(
        workdir,
        "--role",
        f"payments={workdir / 'payments.json'}",
        "--role",
        f"teams={workdir / 'teams.json'}",
        "--role-max-session",
        "teams=7200",
        port=port,
        signing_key=emulator.signing_key,
    )
    assert server.provider_arn == provider
    yield server
    stop_emulator(server)


def assume(emulator, token: str, role: str, session: str = "trust-test", **extra):
    return unsigned_sts(emulator.url).assume_role_with_web_identity(
        RoleArn=emulator.role_arn(role), RoleSessionName=session, WebIdentityToken=token, **extra
    )


def test_trust_exact_sub_accepted(trust_emulator, tmp_path):
    token = trust_emulator.mint(tmp_path / "t", namespace="payments", service_account="api")
    out = assume(trust_emulator, token, "payments")
    assert out["AssumedRoleUser"]["Arn"] == assumed_arn("payments", "trust-test")
    assert out["SubjectFromWebIdentityToken"] == PAYMENTS_SUB
    assert out["Audience"] == "sts.amazonaws.com"
    assert out["Provider"] == trust_emulator.provider_arn


def test_trust_wrong_sub_is_access_denied(trust_emulator, tmp_path):
    token = trust_emulator.mint(tmp_path / "t", namespace="payments", service_account="batch")
    assert sts_error(lambda: assume(trust_emulator, token, "payments")) == ("AccessDenied", NOT_AUTHORIZED, 403)


def test_trust_unknown_role_is_access_denied(trust_emulator, tmp_path):
    token = trust_emulator.mint(tmp_path / "t", namespace="payments", service_account="api")
    assert sts_error(lambda: assume(trust_emulator, token, "no-such-role")) == ("AccessDenied", NOT_AUTHORIZED, 403)


def test_trust_wrong_aud_is_invalid_identity_token(trust_emulator, tmp_path):
    token = trust_emulator.mint(
        tmp_path / "t", "--audience", "vault", namespace="payments", service_account="api"
    )
    code, message, status = sts_error(lambda: assume(trust_emulator, token, "payments"))
    assert (code, status) == ("InvalidIdentityToken", 400)
    assert message == "Incorrect token audience"


def test_trust_unknown_issuer_is_invalid_identity_token(trust_emulator, tmp_path):
    issuer = "http://127.0.0.1:1"
    token = mint_token(
        tmp_path / "t", tmp_path / "other-key.pem", issuer, namespace="payments", service_account="api"
    )
    code, message, status = sts_error(lambda: assume(trust_emulator, token, "payments"))
    assert (code, status) == ("InvalidIdentityToken", 400)
    assert message == f"No OpenIDConnect provider found in your account for {issuer}"


def test_trust_known_issuer_other_key_is_invalid_identity_token(trust_emulator, tmp_path):
    token = mint_token(
        tmp_path / "t", tmp_path / "other-key.pem", trust_emulator.url, namespace="payments", service_account="api"
    )
    code, _, status = sts_error(lambda: assume(trust_emulator, token, "payments"))
    assert (code, status) == ("InvalidIdentityToken", 400)


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def resign_expired(token: str, signing_key: Path, ago: int) -> str:
    """`token` with iat/nbf/exp moved `ago` seconds into the past, re-signed with the same key.

    `passport token mint --lifetime` takes a positive duration and the emulator allows 60 s
    of clock skew, so an expired token cannot come from the CLI without a minute's wait;
    the emulator's Rust tests cover expiry with a stepped clock. Here the minted token is
    re-signed (RS256, same key and kid) with `cryptography`, which moto[server] depends on.
    """
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    header, claims, _ = token.split(".")
    body = json.loads(_b64url_decode(claims))
    for claim in ("iat", "nbf", "exp"):
        if claim in body:
            body[claim] -= ago
    signing_input = f"{header}.{_b64url(json.dumps(body).encode())}"
    key = serialization.load_pem_private_key(signing_key.read_bytes(), password=None)
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64url(signature)}"


def test_trust_expired_token_is_expired_token_exception(trust_emulator, tmp_path):
    token = trust_emulator.mint(tmp_path / "t", "--lifetime", "10m", namespace="payments", service_account="api")
    # The re-signing itself is sound: moved 5 minutes back the token is still accepted ...
    assume(trust_emulator, resign_expired(token, trust_emulator.signing_key, 300), "payments")
    # ... and 2 hours back (expired 1h50m ago, far beyond the skew) it is refused.
    code, message, status = sts_error(
        lambda: assume(trust_emulator, resign_expired(token, trust_emulator.signing_key, 7200), "payments")
    )
    assert (code, status) == ("ExpiredTokenException", 400)
    assert message.startswith("Token expired")


def test_trust_string_like_wildcard(trust_emulator, tmp_path):
    for namespace in ("team-a", "team-billing"):
        token = trust_emulator.mint(tmp_path / namespace, namespace=namespace, service_account="worker")
        out = assume(trust_emulator, token, "teams")
        assert out["AssumedRoleUser"]["Arn"] == assumed_arn("teams", "trust-test")
        assert out["SubjectFromWebIdentityToken"] == f"system:serviceaccount:{namespace}:worker"
    for namespace in ("payments", "teams"):  # `team-*` needs the dash
        token = trust_emulator.mint(tmp_path / namespace, namespace=namespace, service_account="worker")
        assert sts_error(lambda: assume(trust_emulator, token, "teams"))[0] == "AccessDenied"


def test_duration_within_role_maximum(trust_emulator, tmp_path):
    token = trust_emulator.mint(tmp_path / "t", namespace="team-a", service_account="worker")
    out = assume(trust_emulator, token, "teams", DurationSeconds=7200)
    left = out["Credentials"]["Expiration"] - datetime.now(timezone.utc)
    assert timedelta(seconds=7200 - 60) < left <= timedelta(seconds=7200 + 5)


def test_duration_too_long_is_validation_error(trust_emulator, tmp_path):
    token = trust_emulator.mint(tmp_path / "t", namespace="payments", service_account="api")
    # Beyond the role's MaxSessionDuration (payments: 3600).
    assert sts_error(lambda: assume(trust_emulator, token, "payments", DurationSeconds=7200)) == (
        "ValidationError",
        DURATION_EXCEEDS_MAX,
        400,
    )
    # Beyond STS's own limit (botocore does not check maxima client-side).
    code, message, status = sts_error(lambda: assume(trust_emulator, token, "payments", DurationSeconds=50000))
    assert (code, status) == ("ValidationError", 400)
    assert message == (
        "1 validation error detected: Value '50000' at 'durationSeconds' failed to satisfy "
        "constraint: Member must have value less than or equal to 43200"
    )


@pytest.mark.parametrize(
    "session, problem",
    [
        ("has space", "Member must satisfy regular expression pattern: [\\w+=,.@-]*"),
        ("slash/y", "Member must satisfy regular expression pattern: [\\w+=,.@-]*"),
        ("s" * 65, "Member must have length less than or equal to 64"),
    ],
    ids=["space", "slash", "too-long"],
)
def test_bad_session_name_is_validation_error(trust_emulator, tmp_path, session, problem):
    # (Names shorter than 2 never leave botocore: it checks minimum lengths itself.)
    token = trust_emulator.mint(tmp_path / "t", namespace="payments", service_account="api")
    code, message, status = sts_error(lambda: assume(trust_emulator, token, "payments", session=session))
    assert (code, status) == ("ValidationError", 400)
    assert message == f"1 validation error detected: Value '{session}' at 'roleSessionName' failed to satisfy constraint: {problem}"


# --- 3. Cross-check with moto: same token, same role, both servers ---

CROSS_SESSION = "cross-check"
CROSS_DURATION = 1800
#: Elements real STS documents in AssumeRoleWithWebIdentityResult that moto 5.2 leaves out.
REAL_STS_ONLY = {"SubjectFromWebIdentityToken", "Provider", "Audience", "SourceIdentity"}
#: moto sends PackedPolicySize even without a session policy; STS sends it only with one.
MOTO_ONLY = {"PackedPolicySize"}


@pytest.fixture(scope="module")
def demo_token(emulator, tmp_path_factory) -> str:
    return emulator.mint(tmp_path_factory.mktemp("cross") / "token", namespace="cross", service_account="check")


def test_parsed_responses_agree_with_moto(emulator, moto, demo_token):
    results = {}
    for name, url in (("emulator", emulator.url), ("moto", moto.url)):
        before = datetime.now(timezone.utc)
        out = unsigned_sts(url).assume_role_with_web_identity(
            RoleArn=EMULATOR_ROLE_ARN,
            RoleSessionName=CROSS_SESSION,
            WebIdentityToken=demo_token,
            DurationSeconds=CROSS_DURATION,
        )
        results[name] = (before, out)
    (_, emu), (_, mot) = results["emulator"], results["moto"]

    assert set(emu["Credentials"]) == set(mot["Credentials"]) == {
        "AccessKeyId",
        "SecretAccessKey",
        "SessionToken",
        "Expiration",
    }
    for name, (before, out) in results.items():
        creds = out["Credentials"]
        assert creds["AccessKeyId"].startswith("ASIA") and len(creds["AccessKeyId"]) == 20, name
        assert len(creds["SecretAccessKey"]) == 40, name
        assert isinstance(creds["Expiration"], datetime) and creds["Expiration"].tzinfo is not None, name
        ahead = creds["Expiration"] - before
        assert timedelta(seconds=CROSS_DURATION - 5) <= ahead <= timedelta(seconds=CROSS_DURATION + 5), (name, ahead)
        match = ASSUMED_ARN.match(out["AssumedRoleUser"]["Arn"])
        assert match and match.groups() == (ACCOUNT_ID, EMULATOR_ROLE, CROSS_SESSION), (name, out)
        assert out["AssumedRoleUser"]["AssumedRoleId"].endswith(f":{CROSS_SESSION}"), name
    assert emu["AssumedRoleUser"]["Arn"] == mot["AssumedRoleUser"]["Arn"]
    assert emu["SubjectFromWebIdentityToken"] == "system:serviceaccount:cross:check"
    if "SubjectFromWebIdentityToken" in mot:
        assert mot["SubjectFromWebIdentityToken"] == emu["SubjectFromWebIdentityToken"]

    # GetCallerIdentity, each server with the keys it issued: the same ARN.
    arns = {
        name: keyed_sts(url, out["Credentials"]).get_caller_identity()
        for name, url, out in (("emulator", emulator.url, emu), ("moto", moto.url, mot))
    }
    assert arns["emulator"]["Arn"] == arns["moto"]["Arn"] == assumed_arn(EMULATOR_ROLE, CROSS_SESSION)
    assert arns["emulator"]["Account"] == arns["moto"]["Account"] == ACCOUNT_ID


def post_form(url: str, form: dict, headers: dict | None = None) -> tuple[int, dict, bytes]:
    data = urllib.parse.urlencode(form).encode()
    request = urllib.request.Request(url + "/", data=data, method="POST", headers=headers or {})
    request.add_header("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def namespaces(root: ET.Element) -> set[str]:
    """The namespace of every element (`""` for none)."""
    return {element.tag[1:].split("}", 1)[0] if element.tag.startswith("{") else "" for element in root.iter()}


def element_paths(root: ET.Element) -> set[str]:
    """Every element as a `/`-separated path of local names, leaves marked with `=`."""
    paths = set()

    def walk(element, prefix):
        path = f"{prefix}/{element.tag.rsplit('}', 1)[-1]}"
        children = list(element)
        paths.add(path if children else path + "=")
        for child in children:
            walk(child, path)

    walk(root, "")
    return paths


def local(path: str) -> str:
    return path.rsplit("/", 1)[-1].rstrip("=")


def xml_assume(url: str, token: str) -> tuple[int, ET.Element]:
    status, headers, body = post_form(
        url,
        {
            "Action": "AssumeRoleWithWebIdentity",
            "Version": "2011-06-15",
            "RoleArn": EMULATOR_ROLE_ARN,
            "RoleSessionName": CROSS_SESSION,
            "WebIdentityToken": token,
            "DurationSeconds": str(CROSS_DURATION),
        },
    )
    assert status == 200, body
    assert "xml" in headers.get("Content-Type", headers.get("content-type", "")), headers
    return status, ET.fromstring(body)


def signed_caller_identity_xml(url: str, creds: dict) -> ET.Element:
    """GetCallerIdentity signed by botocore's SigV4 signer, sent by urllib: the raw XML."""
    request = botocore.awsrequest.AWSRequest(
        method="POST",
        url=url + "/",
        data="Action=GetCallerIdentity&Version=2011-06-15",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    signer_creds = botocore.credentials.Credentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
    botocore.auth.SigV4Auth(signer_creds, "sts", REGION).add_auth(request)
    prepared = request.prepare()
    raw = urllib.request.Request(prepared.url, data=prepared.body.encode(), method="POST", headers=dict(prepared.headers))
    with urllib.request.urlopen(raw, timeout=10) as response:
        return ET.fromstring(response.read())


def credentials_from_xml(root: ET.Element) -> dict:
    ns = {"sts": XMLNS}
    element = root.find("sts:AssumeRoleWithWebIdentityResult/sts:Credentials", ns)
    return {child.tag.rsplit("}", 1)[1]: child.text for child in element}


def test_raw_xml_trees_agree_with_moto(emulator, moto, demo_token):
    trees = {name: xml_assume(url, demo_token)[1] for name, url in (("emulator", emulator.url), ("moto", moto.url))}
    emu, mot = trees["emulator"], trees["moto"]
    assert emu.tag == mot.tag == f"{{{XMLNS}}}AssumeRoleWithWebIdentityResponse"
    # Every element of both trees is in STS's namespace.
    assert namespaces(emu) == namespaces(mot) == {XMLNS}
    emu_paths, moto_paths = element_paths(emu), element_paths(mot)
    shared = emu_paths & moto_paths
    for required in (
        "AssumeRoleWithWebIdentityResult/Credentials/AccessKeyId=",
        "AssumeRoleWithWebIdentityResult/Credentials/SecretAccessKey=",
        "AssumeRoleWithWebIdentityResult/Credentials/SessionToken=",
        "AssumeRoleWithWebIdentityResult/Credentials/Expiration=",
        "AssumeRoleWithWebIdentityResult/AssumedRoleUser/Arn=",
        "AssumeRoleWithWebIdentityResult/AssumedRoleUser/AssumedRoleId=",
        "ResponseMetadata/RequestId=",
    ):
        path = "/AssumeRoleWithWebIdentityResponse/" + required
        assert path in shared, (path, sorted(emu_paths), sorted(moto_paths))
    # Where they differ, only in elements real STS sends and moto leaves out, or the reverse.
    emulator_only = {local(p) for p in emu_paths - moto_paths}
    moto_only = {local(p) for p in moto_paths - emu_paths}
    assert emulator_only <= REAL_STS_ONLY, emulator_only
    assert moto_only <= MOTO_ONLY, moto_only
    # Same Expiration format as STS (seconds, `Z`); moto adds microseconds.
    expiration = credentials_from_xml(emu)["Expiration"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", expiration), expiration

    identities = {
        name: signed_caller_identity_xml(url, credentials_from_xml(trees[name]))
        for name, url in (("emulator", emulator.url), ("moto", moto.url))
    }
    assert namespaces(identities["emulator"]) == namespaces(identities["moto"]) == {XMLNS}
    assert element_paths(identities["emulator"]) == element_paths(identities["moto"])
    arns = {name: root.findtext(f"{{{XMLNS}}}GetCallerIdentityResult/{{{XMLNS}}}Arn") for name, root in identities.items()}
    assert arns["emulator"] == arns["moto"] == assumed_arn(EMULATOR_ROLE, CROSS_SESSION)


def test_error_xml_shape(emulator):
    """STS's error envelope: ErrorResponse/Error/{Type,Code,Message} and RequestId."""
    status, headers, body = post_form(
        emulator.url,
        {
            "Action": "AssumeRoleWithWebIdentity",
            "Version": "2011-06-15",
            "RoleArn": EMULATOR_ROLE_ARN,
            "RoleSessionName": "x y",
            "WebIdentityToken": "not-a-jwt",
        },
    )
    assert status == 400
    root = ET.fromstring(body)
    ns = f"{{{XMLNS}}}"
    assert namespaces(root) == {XMLNS}
    assert element_paths(root) == {
        "/ErrorResponse",
        "/ErrorResponse/Error",
        "/ErrorResponse/Error/Type=",
        "/ErrorResponse/Error/Code=",
        "/ErrorResponse/Error/Message=",
        "/ErrorResponse/RequestId=",
    }
    assert root.findtext(f"{ns}Error/{ns}Code") == "ValidationError"
    assert root.findtext(f"{ns}Error/{ns}Type") == "Sender"
    assert root.findtext(f"{ns}RequestId") == headers.get("x-amzn-requestid", headers.get("X-Amzn-Requestid"))


# --- 4. passport demo ---


DEMO_READY_TIMEOUT = 60.0
DEMO_EXIT_TIMEOUT = 10.0


def parse_exports(lines: list[str]) -> dict:
    """`export NAME=VALUE` lines (VALUE shell-quoted or not) as a dict."""
    exports = {}
    for line in lines:
        if line.startswith("export "):
            words = shlex.split(line)
            if len(words) == 2 and "=" in words[1]:
                name, value = words[1].split("=", 1)
                exports[name] = value
    return exports


CHAINED_DEMO_ARN = re.compile(r"arn:aws:sts::444455556666:assumed-role/passport-demo-reader/\S+")


@pytest.mark.parametrize(
    "flags, expected_arn",
    [([], ASSUMED_ARN), (["--chain"], CHAINED_DEMO_ARN)],
    ids=["demo", "demo-chain"],
)
def test_passport_demo(client_env, tmp_path, flags, expected_arn):
    log = tmp_path / "demo.log"
    env = {k: v for k, v in os.environ.items() if k not in SHADOWING and k != "NO_COLOR"}
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [str(passport_bin()), "demo", *flags],
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env,
            text=True,
        )
    lines: queue.Queue = queue.Queue()

    def read():
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    try:
        seen = []
        deadline = time.monotonic() + DEMO_READY_TIMEOUT
        report_arn = None
        while report_arn is None:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no assumed-role/ line within {DEMO_READY_TIMEOUT:.0f}s\n" + "\n".join(seen) + log.read_text())
            if line is None:
                pytest.fail(f"demo exited ({proc.wait()}) before its report\n" + "\n".join(seen) + log.read_text())
            seen.append(line)
            if "assumed-role/" in line:
                found = re.search(r"arn:aws:sts::\d{12}:assumed-role/\S+", line)
                assert found, line
                report_arn = found.group(0)
        assert expected_arn.match(report_arn), report_arn

        exports = parse_exports(seen)
        for name in (
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
            "AWS_ENDPOINT_URL_STS",
        ):
            assert name in exports, (name, seen)
        cli_env = dict(client_env)
        for name in ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"):
            cli_env[name] = exports[name]
        done = subprocess.run(
            [
                "aws",
                "sts",
                "get-caller-identity",
                "--endpoint-url",
                exports["AWS_ENDPOINT_URL_STS"],
                "--output",
                "json",
            ],
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["Arn"] == report_arn

        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=DEMO_EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            code = None
        assert code == 0, f"demo should exit 0 within {DEMO_EXIT_TIMEOUT:.0f}s of SIGINT, got {code}\n{log.read_text()}"
    finally:
        stop(proc)
