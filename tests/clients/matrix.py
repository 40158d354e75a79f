"""Harness for the Go and Java client matrix (test_go_clients.py, test_java_clients.py).

Each case runs one real SDK release as a subprocess (a small program of ours that uses
only the SDK's default machinery) with exactly the variables of one compatibility level,
against the real passport binary, with `passport emulator` as STS. The program reads the
credentials from many goroutines/threads at once, calls GetCallerIdentity on the emulator
(which verifies the SigV4 signature made with the vended secret) and prints one JSON line.

Between the SDK and passport sits a counting proxy (loopback, threaded): it forwards every
request unchanged and counts them by method and path, so each case can assert how many
credential fetches the SDK made (single-flight: one per cache period, not one per read).
It also notes each request's `X-amzn-extended` header (Java v2 sends it instead of asking
for `security-credentials-extended/`), and can answer 404 for `security-credentials-extended/`
paths (`hide_extended`), for an SDK that asks them first. Its count of 200s is cross-checked against
passport's own `passport_http_requests_total{status="200"}`.

Every case appends a row to the matrix report (`$PASSPORT_MATRIX_REPORT`, default
`$TMPDIR/client-matrix.jsonl`, emptied at the start of each pytest session), from which the
README's table is made.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import re
import subprocess
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import (
    ACCOUNT_ID,
    EMULATOR_ROLE,
    EMULATOR_ROLE_ARN,
    REGION,
    SESSION_NAME,
    SHADOWING,
    Emulator,
    Passport,
    http_get,
    start_ready_passport,
    stop_passport,
)
from sdkbuild import java_cmd

#: What GetCallerIdentity must answer for credentials passport got for the emulator's role.
ASSUMED_ARN = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{EMULATOR_ROLE}/{SESSION_NAME}"

#: Concurrent readers in each client, and reads per reader, for the single-flight check.
READERS = 32
READS = 10

RUN_TIMEOUT = 120

CREDENTIALS_PATH = re.compile(r"^/v1/credentials$")
IMDS_CREDENTIALS_PATH = re.compile(r"^/latest/meta-data/iam/security-credentials(-extended)?/[^/]+$")


@dataclass
class CountingProxy:
    """A loopback HTTP proxy in front of passport that counts requests by (method, path)."""

    upstream_port: int
    hide_extended: bool = False
    counts: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    extended_header: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: http.server.ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def credentials_url(self) -> str:
        return f"{self.base_url}/v1/credentials"

    def start(self) -> "CountingProxy":
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                path = self.path.split("?", 1)[0]
                if proxy.hide_extended and "/security-credentials-extended" in path:
                    status, headers, data = 404, {"Content-Type": "text/plain"}, b"Not Found"
                else:
                    conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=10)
                    headers_out = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                    headers_out["Host"] = f"127.0.0.1:{proxy.upstream_port}"
                    conn.request(self.command, self.path, body=body, headers=headers_out)
                    response = conn.getresponse()
                    status, data = response.status, response.read()
                    headers = {
                        k: v
                        for k, v in response.getheaders()
                        if k.lower() not in ("connection", "transfer-encoding", "content-length", "keep-alive")
                    }
                    conn.close()
                with proxy.lock:
                    proxy.counts[(self.command, path)] += 1
                    if self.headers.get("X-amzn-extended") is not None:
                        proxy.extended_header[(self.command, path, self.headers["X-amzn-extended"])] += 1
                    proxy.statuses[status] += 1
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_HEAD = do_POST = forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def snapshot(self) -> dict:
        with self.lock:
            return {f"{m} {p}": n for (m, p), n in sorted(self.counts.items())}

    def credential_fetches(self) -> int:
        """Requests that return credentials: the container path, or IMDS's per-role paths."""
        with self.lock:
            return sum(
                n
                for (method, path), n in self.counts.items()
                if method == "GET" and (CREDENTIALS_PATH.match(path) or IMDS_CREDENTIALS_PATH.match(path))
            )

    def ok_responses(self) -> int:
        with self.lock:
            return self.statuses[200]


def requests_200(passport: Passport) -> int:
    """passport's own count of 200 answers on the credentials listener."""
    status, body = http_get(f"{passport.admin_url}/metrics")
    assert status == 200, body
    found = re.search(rb'^passport_http_requests_total\{status="200"\} (\d+)$', body, re.M)
    assert found, body
    return int(found.group(1))


@pytest.fixture(scope="module")
def served(emulator: Emulator, tmp_path_factory) -> Passport:
    """`passport serve` exchanging a minted token at the emulator, for role passport-demo,
    with IMDSv2 on (off unless asked for) for the imds-endpoint level."""
    workdir = tmp_path_factory.mktemp("matrix-passport")
    token = workdir / "token"
    emulator.mint(token, namespace="clients", service_account="app")
    server = start_ready_passport(emulator, token, workdir, "--imds", role_arn=EMULATOR_ROLE_ARN)
    server.extra["web_identity_token"] = token
    yield server
    stop_passport(server)


@pytest.fixture
def proxy(served):
    p = CountingProxy(served.port).start()
    yield p
    p.stop()


def base_env(tmp_path: Path, emulator: Emulator) -> dict:
    """An application's environment with no credentials anywhere, STS at the emulator."""
    credentials = tmp_path / "aws-credentials"
    config = tmp_path / "aws-config"
    credentials.write_text("")
    config.write_text("")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in SHADOWING and not k.startswith(("AWS_", "PASSPORT_", "CLIENT_", "JAVA_TOOL_OPTIONS"))
    }
    env.update(
        {
            "HOME": str(tmp_path),
            "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
            "AWS_CONFIG_FILE": str(config),
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL_STS": emulator.url,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_JAVA_V1_DISABLE_DEPRECATION_ANNOUNCEMENT": "true",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "CLIENT_READERS": str(READERS),
            "CLIENT_READS": str(READS),
        }
    )
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env.pop(name, None)
    return env


#: The compatibility levels (issue 13) this suite can reach on loopback. `relative-uri`
#: (169.254.170.2) and `imds` without an endpoint variable (169.254.169.254) need a network
#: namespace with the overlay's redirect: the client programs take them from the
#: environment as they are, so each becomes one more entry here.
LEVELS = ("modern", "token-env", "imds-endpoint")


def level_env(level: str, base: dict, served: Passport, proxy: CountingProxy) -> dict:
    env = dict(base)
    if level == "modern":
        env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = proxy.credentials_url
        env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = str(served.auth_token_file)
    elif level == "token-env":
        # The token as a value, as SDKs before late 2023 read it (with the _FILE as well,
        # as the level gives both). Today the value comes from the file passport writes.
        env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = proxy.credentials_url
        env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = served.auth_token_file.read_text()
        env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = str(served.auth_token_file)
    elif level == "token-env-only":
        # Only the value: proves the legacy SDK really reads it (it ignores the _FILE).
        env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = proxy.credentials_url
        env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = served.auth_token_file.read_text()
    elif level == "imds-endpoint":
        del env["AWS_EC2_METADATA_DISABLED"]
        env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = proxy.base_url
        env["AWS_EC2_METADATA_V1_DISABLED"] = "true"
    else:
        raise AssertionError(f"unknown level {level}")
    return env


def report_path() -> Path:
    raw = os.environ.get("PASSPORT_MATRIX_REPORT")
    return Path(raw) if raw else Path(os.environ.get("TMPDIR", "/tmp")) / "client-matrix.jsonl"


# One report per pytest session: emptied when this module is first imported.
report_path().write_text("")


def record(row: dict) -> None:
    with report_path().open("a") as out:
        out.write(json.dumps(row) + "\n")


@dataclass
class Outcome:
    label: str
    code: int
    result: dict | None
    stdout: str
    stderr: str

    def describe(self) -> str:
        got = json.dumps(self.result) if self.result is not None else f"stdout {self.stdout[-2000:]!r}"
        return f"{self.label}: exit {self.code}, got {got}; stderr tail {self.stderr[-1500:]!r}"


def run_client(label: str, cmd: list[str], env: dict) -> Outcome:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL)
    result = None
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            try:
                result = json.loads(line)
            except ValueError:
                pass
            break
    if result is not None:
        label = f"{result.get('sdk')} {result.get('version')} ({result.get('entry')}) {label}"
    return Outcome(label, done.returncode, result, done.stdout, done.stderr)


def assert_identity(
    outcome: Outcome,
    served: Passport,
    proxy: CountingProxy,
    providers: set[str],
    *,
    level: str,
    before_200: int,
    max_fetches: int = 1,
    arn: str = ASSUMED_ARN,
    result: str = "assumed-role ARN",
) -> None:
    """The client got passport's credentials, STS verified them (GetCallerIdentity says
    `arn`, by default the emulator role's session), and it fetched once."""
    r = outcome.result
    passport_200 = requests_200(served) - before_200  # before served() below adds one
    assert outcome.code == 0 and r is not None and "error" not in r, outcome.describe()
    assert r["arn"] == arn, f"{outcome.describe()}: expected Arn {arn}"
    assert r["account"] == arn.split(":")[4], outcome.describe()
    assert r["user_id"].startswith("AROA") and r["user_id"].endswith(f":{SESSION_NAME}"), outcome.describe()
    assert r["access_key_id"] == served.served()["AccessKeyId"], f"{outcome.describe()}: not the served key"
    assert r["provider"] in providers, f"{outcome.describe()}: provider not one of {sorted(providers)}"
    assert r["reads"] == READERS * READS and r["distinct_keys"] == 1, outcome.describe()
    fetches = proxy.credential_fetches()
    seen = proxy.snapshot()
    assert 1 <= fetches <= max_fetches, (
        f"{outcome.describe()}: {READERS} threads x {READS} reads made {fetches} credential fetches "
        f"(single-flight expects {max_fetches}); requests seen: {seen}"
    )
    # The proxy's count and passport's own metric agree (nothing else reached passport).
    assert passport_200 == proxy.ok_responses(), (outcome.describe(), passport_200, seen)
    record(
        {
            "sdk": r["sdk"],
            "version": r["version"],
            "entry": r["entry"],
            "level": level,
            "provider": r["provider"],
            "result": result,
            "reads": r["reads"],
            "fetches": fetches,
            "requests": seen,
        }
    )


def assert_refused(outcome: Outcome, *, level: str, expect: str) -> None:
    """The client failed, and what it got back says why (`expect`, a substring)."""
    r = outcome.result
    assert outcome.code != 0 and r is not None and "error" in r, outcome.describe()
    assert expect in r["error"], f"{outcome.describe()}: expected the error to mention {expect!r}"
    record(
        {
            "sdk": r["sdk"],
            "version": r["version"],
            "entry": r["entry"],
            "level": level,
            "result": f"no credentials ({expect})",
        }
    )


#: (case, accepted provider names): the current Go and Java SDKs of the client matrix.
SDK_CASES = [
    ("go-v2", {"CredentialsEndpointProvider"}),
    ("go-v1", {"CredentialsEndpointProvider"}),
    ("java-v2", {"CREDENTIALS_HTTP"}),
    ("java-v1", {"EC2ContainerCredentialsProviderWrapper"}),
]


def sdk_program(case: str, request) -> list[str]:
    """The matrix program for `case`, built once per session by conftest's go_bin / java_cp."""
    language, sdk = case.split("-")
    if language == "go":
        return [str(request.getfixturevalue("go_bin") / "sdkclient"), sdk]
    classpaths = request.getfixturevalue("java_cp")
    return java_cmd(classpaths["sdk-v2"], "default") if sdk == "v2" else java_cmd(classpaths["sdk-v1"])
