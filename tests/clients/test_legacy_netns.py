"""The 2018 Go and Java releases at the `imds` level, in a network namespace as a pod has.

aws-sdk-go v1.15.78 and the AWS SDK for Java 1.11.461 predate IMDSv2 and the IMDS endpoint
variable: they ask 169.254.169.254:80 with plain GETs. Reproduced as the kernel sees a pod
with `k8s/overlays/imds-redirect`:

* a network namespace with loopback up and a veth (its peer in a second throwaway
  namespace) carrying 169.254.0.1/16, so 169.254.169.254 is routable;
* the redirect rule taken from the rendered overlay itself (its `imds-redirect` init
  container's iptables command, run with `ip netns exec`): the test breaks when the
  manifest breaks;
* `passport emulator`, `passport serve --imds-allow-v1` on 127.0.0.1:9911 (the rule's
  target) and the client, all inside the namespace, the client with no AWS variable but
  the region and the STS endpoint.

Needs root, `ip` and `iptables` (Debian's, nf_tables); this machine and CI have them. The
tests fail, not skip, when the namespace cannot be made. The `relative-uri` level joins
here once passport serves it (issue 13): one more rule and one more client run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import ACCOUNT_ID, EMULATOR_ROLE_ARN, REPO_ROOT, passport_bin, mint_token
from matrix import READERS, READS, record
from test_go_clients import go_bin  # noqa: F401  (fixture)
from test_java_clients import java_cp, java_cmd  # noqa: F401  (fixture)

SESSION = "netns-imds"
ASSUMED = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/passport-demo/{SESSION}"
EMULATOR_PORT = 19401


def render_overlay() -> list[dict]:
    for tool in (["kubectl", "kustomize"], ["kustomize", "build"]):
        if shutil.which(tool[0]):
            done = subprocess.run([*tool, str(REPO_ROOT / "k8s/overlays/imds-redirect")], capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
            return [d for d in yaml.safe_load_all(done.stdout) if d]
    pytest.fail("neither kubectl nor kustomize on PATH (tests/setup.sh installs kustomize)")


def redirect_rule() -> tuple[list[str], int]:
    """The iptables command of the overlay's init container, and the port it redirects to."""
    (deployment,) = [d for d in render_overlay() if d["kind"] == "Deployment"]
    (init,) = [c for c in deployment["spec"]["template"]["spec"]["initContainers"] if c["name"] == "imds-redirect"]
    command = init["command"]
    assert command[0] == "iptables" and "REDIRECT" in command, command
    assert "169.254.169.254/32" in command, command
    return command, int(command[command.index("--to-ports") + 1])


class Netns:
    def __init__(self, name: str):
        self.name = name

    def run(self, *cmd: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.name, *cmd], capture_output=True, text=True, **kwargs)

    def popen(self, cmd: list[str], log: Path) -> subprocess.Popen:
        with log.open("wb") as out:
            return subprocess.Popen(
                ["ip", "netns", "exec", self.name, *cmd], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def get(self, url: str) -> tuple[int, str]:
        """HTTP GET from inside the namespace (a short Python child)."""
        code = (
            "import sys, urllib.request, urllib.error\n"
            "try:\n"
            "    r = urllib.request.urlopen(sys.argv[1], timeout=2); print(r.status); print(r.read().decode())\n"
            "except urllib.error.HTTPError as e:\n"
            "    print(e.code)\n"
            "except Exception as e:\n"
            "    print(0)\n"
        )
        done = self.run(sys.executable, "-c", code, url, timeout=30)
        lines = done.stdout.split("\n", 1)
        return (int(lines[0]) if lines[0].strip().isdigit() else 0), (lines[1] if len(lines) > 1 else "")


def sh(*cmd: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)}: {done.stderr}"


def wait_for(what: str, check, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}\n{log.read_text(errors='replace')}")
        if check():
            return
        time.sleep(0.1)
    pytest.fail(f"{what} not ready after {timeout:.0f}s\n{log.read_text(errors='replace')}")


@pytest.fixture(scope="module")
def imds_pod(tmp_path_factory):
    """A namespace with the overlay's redirect, the emulator and passport (IMDSv1 allowed)."""
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found: the imds-level tests need iproute2 and iptables (apt-get install iproute2 iptables)")
    if os.geteuid() != 0:
        pytest.fail("the imds-level tests need root to create a network namespace")
    rule, port = redirect_rule()
    name = f"passport-imds-{os.getpid()}"
    peer = f"{name}-peer"
    workdir = tmp_path_factory.mktemp("netns")
    procs: list[subprocess.Popen] = []
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "netns", "add", peer)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        sh("ip", "link", "add", "pv0", "netns", name, "type", "veth", "peer", "name", "pv1", "netns", peer)
        sh("ip", "-n", name, "link", "set", "pv0", "up")
        sh("ip", "-n", peer, "link", "set", "pv1", "up")
        sh("ip", "-n", name, "addr", "add", "169.254.0.1/16", "dev", "pv0")
        ns = Netns(name)
        applied = ns.run(*rule)
        assert applied.returncode == 0, f"the overlay's rule {rule}: {applied.stderr}"

        key = workdir / "signing-key.pem"
        issuer = f"http://127.0.0.1:{EMULATOR_PORT}"
        emu_log = workdir / "emulator.log"
        emulator = ns.popen(
            [str(passport_bin()), "emulator", "--listen", f"127.0.0.1:{EMULATOR_PORT}", "--signing-key", str(key)], emu_log
        )
        procs.append(emulator)
        wait_for(
            "emulator in the namespace",
            lambda: ns.get(f"{issuer}/.well-known/openid-configuration")[0] == 200,
            emulator,
            emu_log,
        )
        token = workdir / "token"
        mint_token(token, key, issuer, namespace="clients", service_account="legacy")
        serve_log = workdir / "passport.log"
        passport = ns.popen(
            [
                str(passport_bin()),
                "serve",
                "--role-arn",
                EMULATOR_ROLE_ARN,
                "--token-file",
                str(token),
                "--sts-endpoint",
                issuer,
                "--session-name",
                SESSION,
                "--listen",
                f"127.0.0.1:{port}",
                "--admin-listen",
                "127.0.0.1:9912",
                "--auth-token-file",
                str(workdir / "auth-token"),
                "--drain-delay",
                "0s",
                "--imds-allow-v1",
            ],
            serve_log,
        )
        procs.append(passport)
        wait_for("passport in the namespace", lambda: ns.get("http://127.0.0.1:9912/readyz")[0] == 200, passport, serve_log)
        # The redirect itself: a plain GET to 169.254.169.254 reaches passport.
        status, body = ns.get("http://169.254.169.254/latest/meta-data/iam/security-credentials/")
        assert (status, body.strip()) == (200, "passport-demo"), (status, body)
        yield ns, issuer, workdir
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        subprocess.run(["ip", "netns", "del", peer], capture_output=True)


def metric_200(ns: Netns) -> int:
    status, body = ns.get("http://127.0.0.1:9912/metrics")
    assert status == 200, body
    for line in body.splitlines():
        if line.startswith('passport_http_requests_total{status="200"}'):
            return int(line.split()[-1])
    raise AssertionError(body)


def bare_env(issuer: str, home: Path) -> dict:
    """No AWS variable but the region and the STS endpoint (1.x SDKs: passed in code)."""
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "LANG": "C.UTF-8"}
    env.update(
        {
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_STS": issuer,
            "AWS_JAVA_V1_DISABLE_DEPRECATION_ANNOUNCEMENT": "true",
            "CLIENT_READERS": str(READERS),
            "CLIENT_READS": str(READS),
        }
    )
    return env


def run_in(ns: Netns, label: str, cmd: list[str], env: dict) -> dict:
    done = subprocess.run(
        ["ip", "netns", "exec", ns.name, *cmd], env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else None
    context = f"{label} at level imds (169.254.169.254, IMDSv1): exit {done.returncode}, got {result or done.stdout!r}; stderr {done.stderr[-1500:]!r}"
    assert done.returncode == 0 and result and "error" not in result, context
    assert result["arn"] == ASSUMED, context
    assert result["reads"] == READERS * READS and result["distinct_keys"] == 1, context
    return result


@pytest.mark.parametrize("client", ["go-v1.15.78", "java-1.11.461"])
def test_2018_release_at_the_imds_level(imds_pod, go_bin, java_cp, tmp_path, client):  # noqa: F811
    ns, issuer, _ = imds_pod
    before = metric_200(ns)
    if client.startswith("go"):
        result = run_in(ns, "aws-sdk-go v1.15.78 (sdkclient-legacy)", [str(go_bin / "sdkclient-legacy")], bare_env(issuer, tmp_path))
        assert result["version"] == "1.15.78" and result["provider"] == "EC2RoleProvider", result
    else:
        result = run_in(
            ns, "aws-java-sdk 1.11.461 (sdk-v1-2018)", java_cmd(java_cp["sdk-v1-2018"]), bare_env(issuer, tmp_path)
        )
        assert result["version"] == "1.11.461", result
    # One credentials fetch for READERS x READS reads: the role listing and the role's
    # credentials, two 200s on passport's own counter.
    fetched = metric_200(ns) - before
    assert fetched == 2, f"{result['sdk']} {result['version']}: {fetched} IMDS requests answered 200, expected 2 (listing + credentials)"
    record(
        {
            "sdk": result["sdk"],
            "version": result["version"],
            "entry": result["entry"],
            "level": "imds (169.254.169.254 redirected, IMDSv1)",
            "provider": result["provider"],
            "result": "assumed-role ARN",
            "reads": result["reads"],
            "fetches": 1,
            "requests": {"200 answers (listing + credentials)": fetched},
        }
    )
