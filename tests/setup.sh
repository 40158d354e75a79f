#!/usr/bin/env bash
# Install everything ./test.sh needs beyond the toolchains (Rust, Python 3.11, Node >= 20,
# Go 1.26, JDK 17 + Maven), from pinned files only, idempotently. ./test.sh runs it first;
# on a warm machine every step is a quick check. Prints the time of each step.
#
#   .venv/                    Python client tools: tests/clients/requirements.txt + constraints.txt
#   tests/clients/node/       npm ci from package-lock.json
#   Go module cache           go mod download in tests/clients/go, go-legacy and go-probe (go.sum)
#   ~/.m2 (or MAVEN_REPO)     Maven dependencies and plugins of tests/clients/java (exact versions)
#   $PASSPORT_TOOLS/bin       helm (go install helm.sh/helm/v4/cmd/helm@HELM_VERSION) and, only
#                             if kubectl is absent, kustomize (go install ...kustomize/v5@KUSTOMIZE_VERSION)
#
# Each step records a stamp (the sha256 of its pinned inputs) and is skipped while the
# stamp matches and its output exists. PASSPORT_TOOLS defaults to ~/.cache/passport-tools.
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=v4.3.2
KUSTOMIZE_VERSION=v5.8.2
tools=${PASSPORT_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/passport-tools}
mkdir -p "$tools/bin" "$tools/stamps"

t0=$SECONDS
timed() {  # timed NAME COMMAND...: run, then print how long it took
    local name=$1 start=$SECONDS
    shift
    "$@"
    printf 'setup: %-28s %4ss\n' "$name" "$((SECONDS - start))"
}
fresh() {  # fresh NAME HASH: true if the stamp for NAME already says HASH
    [[ "$(cat "$tools/stamps/$1" 2>/dev/null)" == "$2" ]]
}
stamp() { echo "$2" > "$tools/stamps/$1"; }
hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }
need() {
    command -v "$1" >/dev/null || { echo "setup: $1 not found: $2" >&2; exit 1; }
}

need python3 "Python 3.11"
need node "Node.js >= 20"
need npm "npm (comes with Node.js)"
need go "Go 1.26 (the Go client matrix, helm, kustomize)"
need java "JDK 17 (the Java client matrix)"
need mvn "Maven 3 (the Java client matrix)"

python_venv() {
    local h
    h=$(hash_of tests/clients/requirements.txt tests/clients/constraints.txt)
    if [[ -x .venv/bin/python ]] && fresh venv "$h-$PWD"; then return; fi
    [[ -x .venv/bin/python ]] || python3 -m venv .venv
    .venv/bin/python -m pip install -q --disable-pip-version-check \
        -r tests/clients/requirements.txt -c tests/clients/constraints.txt
    stamp venv "$h-$PWD"
}

node_modules() {
    local h
    h=$(hash_of tests/clients/node/package-lock.json)
    if [[ -d tests/clients/node/node_modules ]] && fresh npm "$h-$PWD"; then return; fi
    (cd tests/clients/node && npm ci --no-audit --no-fund --loglevel=error)
    stamp npm "$h-$PWD"
}

go_modules() {
    local m
    for m in tests/clients/go tests/clients/go-legacy tests/clients/go-probe; do
        (cd "$m" && go mod download && go mod verify >/dev/null)
    done
}

maven_deps() {
    local h
    h=$(hash_of tests/clients/java/pom.xml tests/clients/java/*/pom.xml)
    local repo=${MAVEN_REPO:-$HOME/.m2/repository}
    if fresh maven "$h" && [[ -d $repo/software/amazon/awssdk/bom/2.59.1 && -d $repo/com/amazonaws/aws-java-sdk-core/1.11.461 ]]; then
        return
    fi
    # go-offline misses some plugin dependencies; `package` online fetches the rest. After
    # this, the tests build with `mvn -o`.
    (cd tests/clients/java && mvn -B -q -Dstyle.color=never dependency:go-offline package -DskipTests)
    stamp maven "$h"
}

go_tool() {  # go_tool NAME PACKAGE@VERSION
    local name=$1 pkg=$2
    if [[ -x "$tools/bin/$name" ]] && fresh "$name" "$pkg"; then return; fi
    GOBIN="$tools/bin" nice -n 10 go install "$pkg"
    stamp "$name" "$pkg"
}

timed "python venv (.venv)" python_venv
timed "npm ci (tests/clients/node)" node_modules
timed "go mod download" go_modules
timed "maven dependencies" maven_deps
timed "helm $HELM_VERSION" go_tool helm "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
if command -v kubectl >/dev/null; then
    echo "setup: kubectl found, kustomize not needed"
else
    timed "kustomize $KUSTOMIZE_VERSION" go_tool kustomize "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
fi
printf 'setup: done in %ss\n' "$((SECONDS - t0))"
