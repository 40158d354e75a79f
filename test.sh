#!/usr/bin/env bash
# Run the whole test suite: formatting, lints, the Rust tests, and the real-client tests
# (botocore/boto3, the AWS CLI, the AWS SDK for JavaScript, aws-config) against the debug
# binary with moto_server as STS. Needs: the Rust toolchain, Python with
# tests/clients/requirements.txt installed (moto_server and aws on PATH), Node >= 20, and
# for the real Kubernetes control plane Go >= 1.26, openssl and curl.
# docs/testing.md describes each piece and how to run it alone.
set -euo pipefail
cd "$(dirname "$0")"

started=$SECONDS
step() {
    printf '\n==> %s  (%ss)\n' "$*" "$((SECONDS - started))"
}

PYTHON=${PYTHON:-python3}
target_dir=${CARGO_TARGET_DIR:-target}
[[ $target_dir == /* ]] || target_dir=$PWD/$target_dir
export PASSPORT_BIN=${PASSPORT_BIN:-$target_dir/debug/passport}

# Fail early, with a hint, if the client tests' tools are missing.
missing=()
command -v node >/dev/null || missing+=("node (Node.js >= 20)")
command -v kubectl >/dev/null || missing+=("kubectl (with kustomize) for tests/k8s/check.sh")
# tests/k8s/control-plane builds etcd, kube-apiserver and kubectl from tests/k8s/controlplane-src.
command -v go >/dev/null || missing+=("go (>= 1.26) for tests/k8s/control-plane")
command -v openssl >/dev/null || missing+=("openssl for tests/k8s/control-plane")
command -v curl >/dev/null || missing+=("curl for tests/k8s/control-plane")
command -v moto_server >/dev/null || missing+=("moto_server (pip install -r tests/clients/requirements.txt)")
command -v aws >/dev/null || missing+=("aws (pip install -r tests/clients/requirements.txt)")
"$PYTHON" -c 'import boto3, pytest, yaml' 2>/dev/null || missing+=("boto3, pytest and PyYAML for $PYTHON (pip install -r tests/clients/requirements.txt)")
if ((${#missing[@]})); then
    printf 'test.sh: missing: %s\n' "${missing[@]}" >&2
    exit 1
fi

step cargo fmt --check
cargo fmt --check

step cargo clippy --all-targets --locked -- -D warnings
cargo clippy --all-targets --locked -- -D warnings

step cargo build --locked
cargo build --locked

step cargo test --locked
cargo test --locked

step pytest tests/clients
# pytest exits 5 when it collects nothing, which set -e turns into a failure.
"$PYTHON" -m pytest -q -p no:cacheprovider tests/clients

step node --test tests/clients/node/
if [[ ! -d tests/clients/node/node_modules ]]; then
    (cd tests/clients/node && npm ci --no-audit --no-fund)
fi
node_log=$(mktemp)
trap 'rm -f "$node_log"' EXIT
node --test --test-reporter=tap tests/clients/node/ | tee "$node_log"
# node --test finds nothing to run without failing: insist that something passed.
if ! grep -Eq '^# pass [1-9]' "$node_log"; then
    echo "test.sh: node --test ran no passing test" >&2
    exit 1
fi

step tests/k8s/check.sh
tests/k8s/check.sh

# --- real Kubernetes control plane (docs/testing.md, "Against a real API server") ---
# Builds etcd, kube-apiserver and kubectl once (cached outside the repo by a hash of
# tests/k8s/controlplane-src), then the pytest module starts them on loopback and stops them.
step tests/k8s/control-plane build
tests/k8s/control-plane build >/dev/null
step pytest tests/k8s/test_apiserver.py
"$PYTHON" -m pytest -q -p no:cacheprovider tests/k8s/test_apiserver.py
# --- end real control plane ---

printf "\n==> all passed in %ss\n" "$((SECONDS - started))"
