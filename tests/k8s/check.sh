#!/usr/bin/env bash
# Offline checks for the Kubernetes packaging: every k8s/ kustomization renders, is a fixed
# point of `passport inject` (one source of truth for the sidecar spec), validates against
# the Kubernetes 1.29 and 1.33 schemas (and 1.27 rejects native sidecars, as it must), and
# passes checkov; `passport inject` output validates too; hadolint passes the Dockerfile.
#
# Self-contained: installs the pinned PyPI tools (tests/k8s/requirements.txt) into a
# virtualenv, reused while the pins are unchanged. Needs cargo, python3 and kubectl (for
# `kubectl kustomize`) or else kustomize (tests/setup.sh installs it when kubectl is absent).
# Exits non-zero on the first failing step.
#
#   tests/k8s/check.sh
#   PASSPORT_K8S_VENV=/path/to/venv PASSPORT_BIN=target/debug/passport tests/k8s/check.sh
set -euo pipefail

# shellcheck source=tests/k8s/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

step "tools"
k8s_tools

# kustomization dir -> flags under which its rendering must be a fixed point of inject.
declare -A inject_flags=(
  [base]=""
  [overlays/oidc-generic]="--role-arn arn:aws:iam::111122223333:role/passport-app --region us-east-1"
  [overlays/legacy-sidecar]="--no-native-sidecar"
  [overlays/imds-redirect]="--compat imds"
  [overlays/token-env]="--compat token-env --no-secret"
  [overlays/relative-uri]="--compat relative-uri"
  [examples/aws-cli-deployment]=""
  [examples/check-job]="--no-startup-gate"
)
dirs=$(find k8s -name kustomization.yaml -not -path 'k8s/components/*' -printf '%h\n' | sed 's|^k8s/||' | sort)
for d in $dirs; do
  [[ -v "inject_flags[$d]" ]] || fail "k8s/$d: new kustomization, add it to inject_flags in $0"
done

step "kustomize build"
mkdir -p "$work/rendered" "$work/injected"
for d in $dirs; do
  out="$work/rendered/${d//\//-}.yaml"
  render_kustomize "k8s/$d" > "$out" || fail "k8s/$d does not render"
  echo "   k8s/$d: $(grep -c '^kind:' "$out") objects"
done

step "rendered manifests are fixed points of passport inject"
for d in $dirs; do
  out="$work/rendered/${d//\//-}.yaml"
  # shellcheck disable=SC2086
  "$bin" inject ${inject_flags[$d]} "$out" > "$work/fixed.yaml" || fail "inject on k8s/$d"
  diff -u "$out" "$work/fixed.yaml" || fail "k8s/$d differs from \`passport inject ${inject_flags[$d]}\`: the sidecar spec drifted"
done

# --- component pairs (issue 17): every pair of k8s/components renders on k8s/base and is
# a fixed point of inject with both components' flags. legacy-sidecar goes last (it moves the
# container the others patch). The compatibility levels are alternatives (inject takes one
# --compat): such a pair is rendered and validated, but has no inject equivalent.
declare -A component_flags=(
  [oidc-generic]="--role-arn arn:aws:iam::111122223333:role/passport-app --region us-east-1"
  [legacy-sidecar]="--no-native-sidecar"
  [imds]="--compat imds"
  [token-env]="--compat token-env --no-secret"
  [relative-uri]="--compat relative-uri"
  [cpu-limit]="--cpu-limit 100m"
  [roles]="--chain-role-arn arn:aws:iam::444455556666:role/reader --extra-role reports=arn:aws:iam::111122223333:role/reports --extra-role audit=arn:aws:iam::444455556666:role/audit,chain"
)
levels=" imds token-env relative-uri "
components=$(find k8s/components -mindepth 2 -maxdepth 2 -name kustomization.yaml -printf '%h\n' | xargs -n1 basename | sort)
for c in $components; do
  [[ -v "component_flags[$c]" ]] || fail "k8s/components/$c: new component, add it to component_flags in $0"
done
step "every pair of components: renders, and is a fixed point of inject"
mkdir -p "$work/pairs" "$work/pair-rendered"
pairs=0
for a in $components; do
  for b in $components; do
    [[ "$a" < "$b" ]] || continue
    first=$a; second=$b
    if [[ $first == legacy-sidecar ]]; then first=$b; second=$a; fi
    dir="$work/pairs/$first+$second"; mkdir -p "$dir"
    rel=$(realpath --relative-to="$dir" "$root/k8s")
    printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [%s/base]\ncomponents: [%s/components/%s, %s/components/%s]\n' \
      "$rel" "$rel" "$first" "$rel" "$second" > "$dir/kustomization.yaml"
    out="$work/pair-rendered/$first+$second.yaml"
    render_kustomize "$dir" > "$out" || fail "components $first + $second do not render"
    pairs=$((pairs + 1))
    if [[ $levels == *" $first "* && $levels == *" $second "* ]]; then
      echo "   $first + $second: rendered (two compatibility levels: alternatives, no inject equivalent)"
      continue
    fi
    # shellcheck disable=SC2086
    "$bin" inject ${component_flags[$first]} ${component_flags[$second]} "$out" > "$work/fixed.yaml" 2>/dev/null || fail "inject on $first + $second"
    diff -u "$out" "$work/fixed.yaml" || fail "components $first + $second differ from \`passport inject ${component_flags[$first]} ${component_flags[$second]}\`"
    echo "   $first + $second: fixed point of inject"
  done
done
(( pairs > 0 )) || fail "no component pairs"
# --- end component pairs ---

step "safe defaults in the rendered base (issue 17)"
grep -q 'name: PASSPORT_DISABLE_IMDS' "$work/rendered/base.yaml" || fail "IMDS must be off in the base"
if grep -q 'AWS_EC2_METADATA_SERVICE_ENDPOINT' "$work/rendered/base.yaml"; then fail "the base points the app at IMDS"; fi
if grep -rq 'fsGroup' "$work/rendered"; then fail "no manifest may set fsGroup (it re-groups every volume)"; fi
grep -q 'eks.amazonaws.com/token-expiration: "3600"' "$work/rendered/base.yaml" || fail "the base ServiceAccount lacks eks.amazonaws.com/token-expiration"
grep -q 'name: aws-iam-token' "$work/rendered/overlays-oidc-generic.yaml" || fail "oidc-generic's token volume must be aws-iam-token"
echo "   IMDS off, no fsGroup, token-expiration 3600, aws-iam-token"

step "passport inject output for every fixture"
for f in tests/fixtures/inject/*/input.yaml; do
  case_dir=$(dirname "$f"); name=$(basename "$case_dir")
  [[ -f "$case_dir/expected.exit" ]] && continue
  args=()
  [[ -f "$case_dir/args" ]] && mapfile -t args < "$case_dir/args"
  "$bin" inject "${args[@]}" "$f" > "$work/injected/$name.yaml" || fail "inject $name"
done
"$bin" inject "$work/rendered/base.yaml" > "$work/injected/base-again.yaml"

step "kubernetes-validate --strict against ${versions[*]}"
for v in "${versions[@]}"; do
  "${kv[@]}" -k "$v" "$work"/rendered/*.yaml || fail "rendered manifests against $v"
  "${kv[@]}" -k "$v" "$work"/pair-rendered/*.yaml || fail "component pairs against $v"
  # The unknown-kind fixture (an Argo Rollout, a CRD "Job") has no schema: kubernetes-validate
  # only warns about it, hence --no-warn; every built-in kind is still validated.
  "${kv[@]}" --no-warn -k "$v" "$work"/injected/*.yaml || fail "inject output against $v"
  echo "   $v: ok"
done

step "1.27 schemas reject native sidecars (restartPolicy on an init container)"
if "${kv[@]}" -k 1.27.0 "$work/rendered/base.yaml" > "$work/127.txt" 2>&1; then
  fail "1.27 accepted restartPolicy on initContainers: the schema check is not strict"
fi
grep -q "'restartPolicy' was unexpected" "$work/127.txt" || { cat "$work/127.txt"; fail "1.27 failed for another reason"; }
"${kv[@]}" -k 1.27.0 "$work/rendered/overlays-legacy-sidecar.yaml" || fail "legacy-sidecar must validate on 1.27"
echo "   1.27 rejects the base and accepts legacy-sidecar, as expected"

step "checkov (skips and reasons: .checkov.yaml)"
cp "$work"/pair-rendered/*.yaml "$work/rendered/"
"$venv/bin/checkov" --config-file .checkov.yaml --skip-download -d "$work/rendered" > "$work/checkov.txt" 2>&1 || {
  cat "$work/checkov.txt"; fail "checkov"; }
grep -E 'Passed checks|Failed checks' "$work/checkov.txt" | sed 's/^/   /'

step "hadolint Dockerfile"
"$venv/bin/hadolint" Dockerfile || fail "hadolint"
# What hadolint does not check (issue 17): both base images pinned by digest, a builder on
# the build machine's platform cross-compiling for amd64 and arm64, labels from build args.
grep -Eq '^ARG RUST_IMAGE=[^ ]+@sha256:[0-9a-f]{64}$' Dockerfile || fail "Dockerfile: RUST_IMAGE not pinned by digest"
grep -Eq '^ARG RUNTIME_IMAGE=[^ ]+@sha256:[0-9a-f]{64}$' Dockerfile || fail "Dockerfile: RUNTIME_IMAGE not pinned by digest"
grep -q 'FROM --platform=$BUILDPLATFORM' Dockerfile || fail "Dockerfile: the builder must run on \$BUILDPLATFORM"
grep -q 'amd64) echo x86_64-unknown-linux-gnu' Dockerfile && grep -q 'arm64) echo aarch64-unknown-linux-gnu' Dockerfile \
  || fail "Dockerfile: TARGETARCH amd64 and arm64 must map to Rust targets"
for label in version revision created; do
  grep -Eq "org.opencontainers.image.$label=\"\\\$\{[A-Z]+\}\"" Dockerfile || fail "Dockerfile: label $label must come from a build arg"
done
echo "   digests pinned, cross-compiling builder (amd64, arm64), labels from build args"

echo "k8s checks: all passed"
