"""Harness for the legacy client suite: real old SDK releases, real network namespaces.

Each "pod" is a network namespace (netns.py) holding `passport emulator` (OIDC issuer and
SigV4-verifying STS on 127.0.0.1:9401), `passport serve` configured exactly as the rendered
kustomization says (manifest.py), the overlay's own iptables redirect rules, and the
application: botocore 1.12.0 / boto3 1.9.0 in this suite's virtualenv, aws-sdk 2.382.0
under Node, or the 2018 aws-sdk-go v1.15.78 and AWS SDK for Java 1.11.461 programs of
tests/clients (built by tests/pylib/sdkbuild.py), given only the application container's
environment from the same manifest.

Run tests/legacy/setup.sh first (./test.sh does). Needs root for `ip netns` and iptables;
where namespaces are impossible the suite skips with a loud reason, and under CI=true it
fails instead.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import manifest
import netns

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
# The helpers every suite shares and the Go/Java builds (tests/pylib, Python 3.7-compatible).
sys.path.insert(0, str(REPO_ROOT / "tests" / "pylib"))

import sdkbuild  # noqa: E402
from passport_harness import passport_bin, stop  # noqa: E402  (passport_bin re-exported to the tests)

ACCOUNT_ID = "111122223333"
ROLE = "passport-demo"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/{ROLE}"
EMULATOR = "http://127.0.0.1:9401"
#: Session name passport derives from the downward API (POD_NAMESPACE.POD_NAME).
SESSION = f"{manifest.POD_NAMESPACE}.{manifest.POD_NAME}"
ASSUMED_ARN = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{ROLE}/{SESSION}"
#: The shared token Secret the token-env overlay names (created by the user or by inject).
SHARED_SECRET = "passport-auth-token"
SHARED_KEY = "auth-token"

STARTUP_TIMEOUT = 30.0
#: The compiled 2018 1.x clients: they read credentials READERS x READS times concurrently
#: first (the single-flight check), then call GetCallerIdentity.
COMPILED_CLIENTS = ("go-1.15.78", "java-1.11.461")
READERS = 32
READS = 10


#: client -> argv, filled by the `built_clients` fixture on first use.
_built: dict[str, list[str]] = {}


def legacy_python() -> Path:
    venv = Path(os.environ.get("PASSPORT_LEGACY_VENV", HERE / ".venv"))
    py = venv / "bin" / "python"
    if not py.is_file():
        pytest.fail(f"legacy virtualenv missing ({py}): run tests/legacy/setup.sh")
    return py


def base_env(home: Path) -> dict[str, str]:
    """A clean process environment: no AWS or PASSPORT variables, no proxies."""
    env = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "TZ") if k in os.environ}
    env["HOME"] = str(home)
    return env


_NOT_RUN: list[str] = []


def pytest_terminal_summary(terminalreporter):
    """Say it loudly at the end, where nobody misses it, when the suite could not run."""
    for message in _NOT_RUN[:1]:
        terminalreporter.write_line("!" * 78, red=True, bold=True)
        terminalreporter.write_line(message, red=True, bold=True)
        terminalreporter.write_line("!" * 78, red=True, bold=True)


@pytest.fixture(scope="session")
def namespaces_ok():
    reason = netns.usable()
    if reason is not None:
        message = f"LEGACY CLIENT SUITE NOT RUN: network namespaces impossible here: {reason}"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: this must run in CI)")
        _NOT_RUN.append(message)
        pytest.skip(message)
    netns.remove_stale()


@dataclass
class ClientResult:
    ok: bool
    raw: dict
    stderr: str
    seconds: float

    def __str__(self) -> str:
        return json.dumps(self.raw) + ("\n" + self.stderr if self.stderr else "")


class LegacyPod:
    """A running pod: namespace, redirect rules, emulator, passport from the manifest."""

    def __init__(
        self, kustomization: str, workdir: Path, secrets_data: dict | None = None, ipv6: bool = True
    ):
        self.ipv6 = ipv6
        self.kustomization = kustomization
        self.workdir = workdir
        self.docs = manifest.render(kustomization)
        self.spec = manifest.pod_spec(self.docs)
        self.pod = manifest.Pod(self.spec, workdir, dict(secrets_data or {}))
        self.ns = netns.PodNetns()
        self.procs: list[subprocess.Popen] = []
        self.passport: subprocess.Popen | None = None
        self.passport_log = workdir / "passport.log"

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> "LegacyPod":
        self.ns.create()
        if not self.ipv6:
            # A pod whose kernel has IPv6 disabled: no ::1 at all.
            done = self.ns.run("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.lo.disable_ipv6=1")
            assert done.returncode == 0, done.stderr
        self.rules = manifest.redirect_rules(self.spec)
        for rule in self.rules:
            done = self.ns.run(*rule)
            assert done.returncode == 0, f"redirect rule from k8s/{self.kustomization} failed: {rule}\n{done.stderr}"
        self._start_emulator()
        self._start_passport()
        return self

    def _start_emulator(self) -> None:
        key = self.workdir / "signing-key.pem"
        self.web_identity_token = self.workdir / "web-identity-token"
        mint = subprocess.run(
            [str(passport_bin()), "token", "mint", "--signing-key", str(key), "--issuer", EMULATOR,
             "-o", str(self.web_identity_token), "--namespace", manifest.POD_NAMESPACE, "--service-account", "app"],
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert mint.returncode == 0, mint.stdout + mint.stderr
        log = self.workdir / "emulator.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                self.ns.argv(str(passport_bin()), "emulator", "--listen", "127.0.0.1:9401", "--signing-key", str(key)),
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=base_env(self.workdir),
            )  # fmt: skip
        self.procs.append(proc)
        self.wait_http("emulator", f"{EMULATOR}/.well-known/openid-configuration", proc, log)

    def passport_env(self) -> dict[str, str]:
        env = base_env(self.workdir)
        env.update(self.pod.env("passport"))
        # What the IRSA webhook adds to passport in a real pod.
        env.update(
            {
                "AWS_ROLE_ARN": ROLE_ARN,
                "AWS_WEB_IDENTITY_TOKEN_FILE": str(self.web_identity_token),
                "AWS_REGION": "us-east-1",
                "AWS_ENDPOINT_URL_STS": EMULATOR,
                "NO_COLOR": "1",
            }
        )
        return env

    def _start_passport(self) -> None:
        with self.passport_log.open("wb") as out:
            self.passport = subprocess.Popen(
                self.ns.argv(str(passport_bin()), *self.pod.args("passport")),
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.passport_env(),
            )  # fmt: skip
        self.procs.append(self.passport)
        self.wait_http("passport /readyz", "http://127.0.0.1:9912/readyz", self.passport, self.passport_log)

    def stop(self) -> list[str]:
        """Stop everything; the problems found (non-zero exits), for the caller to assert."""
        problems = []
        for proc in reversed(self.procs):
            code = stop(proc)
            if code != 0:
                problems.append(f"{proc.args[4:6]} exited {code}")
        self.procs.clear()
        self.ns.delete()
        if problems and self.passport_log.exists():
            problems.append(self.passport_log.read_text(errors="replace"))
        return problems

    # -- in-pod helpers --------------------------------------------------------------------
    def probe(self, url: str, headers: dict | None = None) -> dict:
        """One GET from inside the pod: {"status": N, "body": ...} (status 0: nothing answered)."""
        args = [f"{k}={v}" for k, v in (headers or {}).items()]
        done = self.ns.run(sys.executable, str(HERE / "probe.py"), url, *args, env=base_env(self.workdir), timeout=30)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def wait_http(self, what: str, url: str, proc: subprocess.Popen, log: Path) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"{what}: exited {proc.returncode} while starting\n{log.read_text(errors='replace')}")
            if self.probe(url)["status"] == 200:
                return
            time.sleep(0.1)
        pytest.fail(f"{what}: not ready after {STARTUP_TIMEOUT:.0f}s\n{log.read_text(errors='replace')}")

    def app_env(self, **overrides: str | None) -> dict[str, str]:
        """The application container's environment from the manifest, plus empty AWS files.

        `overrides`: NAME=value to set, NAME=None to remove (for the negative cases).
        """
        home = self.workdir / "app-home"
        home.mkdir(exist_ok=True)
        (home / "credentials").write_text("")
        (home / "config").write_text("")
        env = base_env(home)
        env["AWS_SHARED_CREDENTIALS_FILE"] = str(home / "credentials")
        env["AWS_CONFIG_FILE"] = str(home / "config")
        env.update(self.pod.env("app"))
        for key, value in overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    @staticmethod
    def client_argv(client: str) -> list[str]:
        if client == "botocore":
            return [str(legacy_python()), str(HERE / "clients" / "botocore_client.py"), EMULATOR]
        if client == "aws-sdk":
            return ["node", str(HERE / "clients" / "awssdk_client.js"), EMULATOR]
        if client in COMPILED_CLIENTS:
            assert client in _built, f"{client}: request the `built_clients` fixture and call it first"
            return _built[client]
        raise ValueError(client)

    @staticmethod
    def client_env(client: str, env: dict[str, str]) -> dict[str, str]:
        """The 1.x programs take the STS endpoint in code, from AWS_ENDPOINT_URL_STS (their
        SDKs never read it); the others get it as an argument."""
        if client not in COMPILED_CLIENTS:
            return env
        env = dict(env)
        env.update(
            {
                "AWS_ENDPOINT_URL_STS": EMULATOR,
                "CLIENT_READERS": str(READERS),
                "CLIENT_READS": str(READS),
                "AWS_JAVA_V1_DISABLE_DEPRECATION_ANNOUNCEMENT": "true",
            }
        )
        env.setdefault("AWS_REGION", "us-east-1")
        return env

    def run_client(self, client: str, env: dict[str, str], timeout: float = 120) -> ClientResult:
        argv = self.client_argv(client)
        started = time.monotonic()
        done = self.ns.run(*argv, env=self.client_env(client, env), timeout=timeout)
        seconds = time.monotonic() - started
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        try:
            raw = json.loads(lines[-1])
        except (IndexError, ValueError):
            raise AssertionError(f"{client} printed no result (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
        ok = raw.get("ok") if "ok" in raw else "error" not in raw  # the 1.x programs: "error" or not
        return ClientResult(bool(ok) and done.returncode == 0, raw, done.stderr.strip(), seconds)

    def requests(self, status: int = 200) -> int:
        """passport's own count of answers with `status` (its /metrics on the admin listener)."""
        answer = self.probe("http://127.0.0.1:9912/metrics")
        assert answer["status"] == 200, answer
        for line in answer["body"].splitlines():
            if line.startswith(f'passport_http_requests_total{{status="{status}"}}'):
                return int(float(line.split()[-1]))
        return 0

    def served_access_key(self, token: str | None = None) -> str:
        """The access key passport serves now (the main listener, authenticated)."""
        headers = {"Authorization": token} if token else {}
        answer = self.probe("http://127.0.0.1:9911/v1/credentials", headers)
        assert answer["status"] == 200, answer
        return json.loads(answer["body"])["AccessKeyId"]


@pytest.fixture(scope="session")
def built_clients(tmp_path_factory):
    """`built_clients(client)` builds a compiled client on first use (no-op for the others)."""

    def need(client: str) -> None:
        if client in _built or client not in COMPILED_CLIENTS:
            return
        if client == "go-1.15.78":
            out = tmp_path_factory.mktemp("go-legacy-bin")
            sdkbuild.go_build(sdkbuild.GO_LEGACY_DIR, out)
            _built[client] = [str(out / "sdkclient-legacy")]
        else:
            _built[client] = sdkbuild.java_cmd(sdkbuild.java_classpaths()["sdk-v1-2018"])

    return need


def new_token() -> str:
    return secrets.token_hex(32)


@pytest.fixture(scope="module")
def pod_factory(namespaces_ok, tmp_path_factory):
    """Start pods for a module; all are stopped (and must exit 0) at the end."""
    pods: list[LegacyPod] = []

    def make(kustomization: str, secrets_data: dict | None = None, ipv6: bool = True) -> LegacyPod:
        workdir = tmp_path_factory.mktemp(kustomization.replace("/", "-"))
        pod = LegacyPod(kustomization, workdir, secrets_data, ipv6)
        pods.append(pod)
        return pod.start()

    yield make
    problems = []
    for pod in pods:
        problems += pod.stop()
    assert not problems, "\n".join(problems)
