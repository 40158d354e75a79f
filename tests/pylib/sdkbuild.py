"""Building the Go and Java client programs: one place for tests/clients and tests/legacy.

Plain functions, no pytest fixtures and no import of either suite's conftest (both suites
have a module named `conftest`); both import it from this directory (see passport_harness).
Python 3.7-compatible, like passport_harness: tests/legacy runs under 3.7. Both builds
are offline: `./test.sh` downloads the Go modules and resolves the Maven dependencies first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CLIENTS_DIR = Path(__file__).resolve().parents[1] / "clients"
GO_DIR = CLIENTS_DIR / "go"
GO_LEGACY_DIR = CLIENTS_DIR / "go-legacy"
#: The probe code both Go modules share (a `replace` to this directory in their go.mod).
GO_PROBE_DIR = CLIENTS_DIR / "go-probe"
JAVA_DIR = CLIENTS_DIR / "java"
JAVA_MODULES = ("sdk-v2", "sdk-v1", "sdk-v1-2018")
BUILD_TIMEOUT = 900


def _build(argv: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT, stdin=subprocess.DEVNULL
    )


def go_build(module: Path, out: Path) -> None:
    """`go build ./cmd/...` of one module into `out`, offline (GOPROXY=off)."""
    go = shutil.which("go")
    if go is None:
        pytest.fail("go is not on PATH: install Go 1.26 (./test.sh needs it for the Go clients)")
    env = dict(os.environ, GOPROXY="off", GOFLAGS="-mod=readonly -buildvcs=false", CGO_ENABLED="0")
    done = _build([go, "build", "-o", str(out) + "/", "./cmd/..."], module, env)
    assert done.returncode == 0, (
        f"go build in {module} failed (modules missing? run `go mod download` there first):\n{done.stderr}"
    )


def java_classpaths() -> dict[str, str]:
    """Each Java module's runtime classpath, after an offline `mvn package`."""
    mvn, java = shutil.which("mvn"), shutil.which("java")
    if mvn is None or java is None:
        pytest.fail("mvn and java must be on PATH (JDK 17 + Maven) for the Java clients")
    done = _build([mvn, "-B", "-o", "-q", "-Dstyle.color=never", "package", "-DskipTests"], JAVA_DIR)
    assert done.returncode == 0, (
        "mvn -o package failed (dependencies not resolved? ./test.sh runs "
        f"`mvn dependency:go-offline package` online first):\n{done.stdout[-4000:]}{done.stderr[-2000:]}"
    )
    paths = {}
    for module in JAVA_MODULES:
        target = JAVA_DIR / module / "target"
        paths[module] = f"{target / 'classes'}:{(target / 'classpath.txt').read_text().strip()}"
    return paths


def java_cmd(cp: str, *args: str, props: dict | None = None) -> list[str]:
    return ["java", *(f"-D{k}={v}" for k, v in (props or {}).items()), "-cp", cp, "passport.clients.Main", *args]
