# Shared by tests/k8s/check.sh and tests/k8s/chart-check.sh (sourced, not run): the repo
# root as working directory, a scratch directory, the pinned validation tools in a
# virtualenv reused while tests/k8s/requirements.txt is unchanged, a kustomize renderer
# and the passport binary.

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
venv=${PASSPORT_K8S_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/passport-k8s-venv}
versions=(1.29.0 1.33.0)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step() { printf '== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

# kubectl's built-in kustomize, or the standalone one tests/setup.sh installs.
if command -v kubectl >/dev/null; then
  render_kustomize() { kubectl kustomize "$1"; }
elif command -v kustomize >/dev/null; then
  render_kustomize() { kustomize build "$1"; }
else
  fail "neither kubectl nor kustomize found (tests/setup.sh installs kustomize)"
fi

# kubernetes-validate and checkov, pinned.
k8s_tools() {
  local stamp="$venv/.requirements.sha256" want
  want=$(sha256sum tests/k8s/requirements.txt | cut -d' ' -f1)
  if [[ ! -x "$venv/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/k8s/requirements.txt
    echo "$want" > "$stamp"
  fi
  kv=("$venv/bin/kubernetes-validate" --strict --quiet)
  if [[ -z "${PASSPORT_BIN:-}" ]]; then
    cargo build --quiet --bin passport
    PASSPORT_BIN=target/debug/passport
  fi
  bin=$PASSPORT_BIN
}
