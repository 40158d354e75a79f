"""What every Python suite that runs the passport binary shares: tests/clients,
tests/legacy and tests/k8s/test_apiserver.py.

The suites put this directory on sys.path (their conftest, or the test module itself) and
import it by name; no suite imports another suite's conftest. tests/legacy runs under
Python 3.7 (its own venv, for the 2018 botocore), so this module stays 3.7-compatible:
no walrus, no `X | Y` outside annotations, no newer stdlib.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Variables that would let an SDK find credentials somewhere other than passport, or send
#: its STS call elsewhere: a client's environment never inherits them from the harness.
#: (A superset of the binary's own list in src/env.rs, which `exec` removes: this one also
#: holds the container endpoint variables and the endpoint overrides the harness sets.)
SHADOWING = (
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
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_STS",
)

EXIT_TIMEOUT = 5.0


def passport_bin() -> Path:
    """The binary under test: PASSPORT_BIN (relative to the repository), default
    target/debug/passport. Fails the test when it is missing."""
    path = Path(os.environ.get("PASSPORT_BIN", "target/debug/passport"))
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not path.is_file():
        pytest.fail(f"passport binary not found at {path}: run `cargo build` first or set PASSPORT_BIN")
    return path


def free_ports(n: int) -> list[int]:
    """n distinct free loopback ports (all held open together, so none repeats)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_port() -> int:
    return free_ports(1)[0]


def wait_until(what: str, check, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None):
    """Poll `check` (process start-up only) until true; fail if `proc` exits first or the
    deadline passes, with `log` in the message. OSError from `check` counts as not yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            text = log.read_text(errors="replace") if log else ""
            pytest.fail(f"{what}: process exited with {proc.returncode} while starting\n{text}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.05)
    text = log.read_text(errors="replace") if log else ""
    pytest.fail(f"{what}: not ready after {timeout:.0f}s\n{text}")


def stop(proc: subprocess.Popen, timeout: float = EXIT_TIMEOUT) -> int | None:
    """SIGTERM, wait; SIGKILL if it hangs. Returns the exit code, None if it had to be killed."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def stop_cleanly(what: str, proc: subprocess.Popen, log: Path, timeout: float = EXIT_TIMEOUT) -> None:
    """stop(), asserting that `what` exited 0 within `timeout` of SIGTERM (its log if not)."""
    code = stop(proc, timeout)
    assert code == 0, (
        f"{what} should exit 0 within {timeout}s of SIGTERM, got {code}\n" + log.read_text(errors="replace")
    )
