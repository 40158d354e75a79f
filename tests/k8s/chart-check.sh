#!/usr/bin/env bash
# Offline checks for the Helm chart (charts/passport), the sibling of check.sh for k8s/:
#   - helm lint --strict;
#   - helm template renders, for the default values and for a digest-pinned variant;
#   - the rendering is a fixed point of `passport inject` (the sidecar is what inject adds);
#   - kubernetes-validate --strict against 1.29 and 1.33, and checkov (.checkov.yaml);
#   - drift: the passport sidecar container, its volume, the application's passport
#     environment and mounts, and the pod security context in the chart's Deployment and Job
#     equal those of k8s/base and k8s/examples/check-job, rendered by kustomize.
#
# Needs helm (PATH, or $PASSPORT_TOOLS/bin as ./test.sh installs it), kubectl or kustomize,
# python3. Shares check.sh's virtualenv (kubernetes-validate, checkov; PyYAML comes with them).
#
#   tests/k8s/chart-check.sh
set -euo pipefail

# helm and (where kubectl is absent) kustomize, as tests/setup.sh installs them.
tools=${PASSPORT_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/passport-tools}
export PATH="$tools/bin:$PATH"
# shellcheck source=tests/k8s/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
chart=charts/passport

step "tools"
command -v helm >/dev/null || fail "helm not found (./test.sh installs it: go install helm.sh/helm/v4/cmd/helm@v4.3.2)"
helm version --short
k8s_tools

step "helm lint --strict"
helm lint --strict "$chart" || fail "helm lint"

step "helm template"
mkdir -p "$work/chart"
helm template passport "$chart" > "$work/chart/default.yaml" || fail "helm template (defaults)"
helm template passport "$chart" --set image.digest=sha256:0000000000000000000000000000000000000000000000000000000000000000 \
  --set passport.imds=false > "$work/chart/digest-no-imds.yaml" || fail "helm template (digest, no IMDS)"
grep -q 'image: ghcr.io/passport-dev/passport@sha256:0000' "$work/chart/digest-no-imds.yaml" || fail "image.digest is not used"
if grep -q AWS_EC2_METADATA_SERVICE_ENDPOINT "$work/chart/digest-no-imds.yaml"; then fail "passport.imds=false still sets the IMDS endpoint"; fi
helm template passport "$chart" --set passport.imds=true --set passport.cpuLimit=250m > "$work/chart/imds-cpu.yaml" || fail "helm template (IMDS, CPU limit)"
grep -q 'cpu: 250m' "$work/chart/imds-cpu.yaml" || fail "passport.cpuLimit is not used"
# --- webhook (issue 16): rendered in both certificate modes, then validated and checked
# with the rest (kubernetes-validate warns, without failing, that it has no schema for
# cert-manager's Issuer and Certificate). Not part of the inject fixed point below: the
# webhook's own Deployment is not injected.
for mode in cert-manager self-managed; do
  helm template passport "$chart" --namespace passport-system --set webhook.enabled=true \
    --set webhook.certificates=$mode > "$work/chart/webhook-$mode.yaml" || fail "helm template (webhook, $mode)"
  helm lint --strict "$chart" --set webhook.enabled=true --set webhook.certificates=$mode >/dev/null || fail "helm lint (webhook, $mode)"
done
"$venv/bin/python" - "$work"/chart/webhook-*.yaml <<'PY' || fail "webhook configuration"
import sys
import yaml
for path in sys.argv[1:]:
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    (mwc,) = [d for d in docs if d["kind"] == "MutatingWebhookConfiguration"]
    (hook,) = mwc["webhooks"]
    assert hook["failurePolicy"] == "Fail", hook
    assert hook["reinvocationPolicy"] == "IfNeeded" and hook["sideEffects"] == "None", hook
    assert hook["timeoutSeconds"] <= 5 and hook["admissionReviewVersions"] == ["v1"], hook
    assert hook["objectSelector"] == {"matchLabels": {"passport.dev/inject": "true"}}, hook
    assert {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]} in hook["namespaceSelector"]["matchExpressions"], hook
    (deploy,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "passport-webhook"]
    assert deploy["spec"]["replicas"] == 2
    assert any(d["kind"] == "PodDisruptionBudget" for d in docs)
    (role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    sa_rules = [r for r in role["rules"] if "serviceaccounts" in r["resources"]]
    assert sa_rules == [{"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get", "list", "watch"]}], role
    print(f"   {path.rsplit('/', 1)[-1]}: webhook configuration as required")
PY
if helm template passport "$chart" --set webhook.enabled=true --set webhook.timeoutSeconds=10 >/dev/null 2>&1; then
  fail "webhook.timeoutSeconds=10 rendered"
fi
# --- end webhook
for f in "$work"/chart/*.yaml; do
  echo "   $(basename "$f"): $(grep '^kind:' "$f" | awk '{print $2}' | sort | uniq -c | awk '{printf "%s %s, ", $1, $2}')"
done

step "the chart's rendering is a fixed point of passport inject"
# template -> inject flags it must be a fixed point under (the check Job's sidecar is not
# startup-gated, so `check` can report a passport that never gets credentials).
for spec in "app.yaml:" "check-job.yaml:--no-startup-gate" "app.yaml:--cpu-limit 100m|--set passport.cpuLimit=100m" \
            "app.yaml:--imds|--set passport.imds=true" \
            "app.yaml:--chain-role-arn arn:aws:iam::444455556666:role/reader --extra-role reports=arn:aws:iam::111122223333:role/reports --extra-role audit=arn:aws:iam::444455556666:role/audit,chain --container-role app=reports|--set passport.chainRoleArn=arn:aws:iam::444455556666:role/reader --set passport.extraRoles[0].name=reports --set passport.extraRoles[0].roleArn=arn:aws:iam::111122223333:role/reports --set passport.extraRoles[1].name=audit --set passport.extraRoles[1].roleArn=arn:aws:iam::444455556666:role/audit --set passport.extraRoles[1].chain=true --set app.role=reports"; do
  template=${spec%%:*}; rest=${spec#*:}; flags=${rest%%|*}; set_flags=""
  [[ "$rest" == *"|"* ]] && set_flags=${rest#*|}
  # shellcheck disable=SC2086
  helm template passport "$chart" --show-only "templates/$template" $set_flags > "$work/one.yaml" || fail "helm template $template $set_flags"
  # shellcheck disable=SC2086
  "$bin" inject $flags "$work/one.yaml" > "$work/fixed.yaml" || fail "inject $flags on $template"
  diff -u "$work/one.yaml" "$work/fixed.yaml" || fail "$template ($set_flags) differs from \`passport inject $flags\`: the sidecar spec drifted"
  echo "   $template ${set_flags:-(defaults)}: fixed point of inject ${flags:-(no flags)}"
done
# Bad role values fail the rendering with a message, not a broken manifest.
if helm template passport "$chart" --set 'passport.extraRoles[0].name=Bad' --set 'passport.extraRoles[0].roleArn=arn:aws:iam::111122223333:role/r' >/dev/null 2>&1; then
  fail "an extra role named Bad rendered"
fi
if helm template passport "$chart" --set app.role=nobody >/dev/null 2>&1; then
  fail "app.role naming no extra role rendered"
fi
for bad in "passport.extraRoles[0].name=default,passport.extraRoles[0].roleArn=arn:aws:iam::111122223333:role/r" \
           "passport.extraRoles[0].name=r,passport.extraRoles[0].roleArn=not-an-arn" \
           "passport.extraRoles[0].name=r,passport.extraRoles[0].roleArn=arn:aws:iam::111122223333:role/r,passport.extraRoles[1].name=r,passport.extraRoles[1].roleArn=arn:aws:iam::111122223333:role/s"; do
  if helm template passport "$chart" --set "$bad" >/dev/null 2>&1; then fail "rendered extra roles that serve refuses: $bad"; fi
done
if helm template passport "$chart" --set webhook.enabled=true --set region= >/dev/null 2>&1; then
  fail "the webhook rendered without a region"
fi
grep -q 'PASSPORT_DISABLE_IMDS' "$work/chart/default.yaml" || fail "IMDS must be off by default"
if grep -q 'fsGroup' "$work/chart/default.yaml"; then fail "the chart must not set fsGroup"; fi

step "kubernetes-validate --strict against ${versions[*]}"
for v in "${versions[@]}"; do
  "${kv[@]}" -k "$v" "$work"/chart/*.yaml || fail "chart against $v"
  echo "   $v: ok"
done

step "checkov (skips and reasons: .checkov.yaml)"
"$venv/bin/checkov" --config-file .checkov.yaml --skip-download -d "$work/chart" > "$work/checkov.txt" 2>&1 || {
  cat "$work/checkov.txt"; fail "checkov"; }
grep -E 'Passed checks|Failed checks' "$work/checkov.txt" | sed 's/^/   /'

step "drift: chart vs kustomize (sidecar, volume, application env and mounts, pod securityContext)"
render_kustomize k8s/base > "$work/base.yaml" || fail "k8s/base does not render"
render_kustomize k8s/examples/check-job > "$work/check-job.yaml" || fail "k8s/examples/check-job does not render"
"$venv/bin/python" - "$work/chart/default.yaml" "$work/base.yaml" "$work/check-job.yaml" <<'PY' || fail "the chart and kustomize drifted (above)"
import json, sys
import yaml

chart, base, job = ([d for d in yaml.safe_load_all(open(p)) if d] for p in sys.argv[1:4])

def pod(docs, kind):
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]["spec"]["template"]["spec"]

def parts(spec, app):
    (sidecar,) = [c for c in spec["initContainers"] if c["name"] == "passport"]
    (container,) = [c for c in spec["containers"] if c["name"] == app]
    return {
        "passport sidecar container": sidecar,
        "passport-auth volume": [v for v in spec["volumes"] if v["name"] == "passport-auth"],
        f"{app} env": container.get("env"),
        f"{app} volumeMounts": container.get("volumeMounts"),
        "pod securityContext": spec.get("securityContext"),
        "serviceAccount token automount": spec.get("automountServiceAccountToken"),
    }

problems = 0
for what, kind, app, ours, theirs in (
    ("Deployment", "Deployment", "app", chart, base),
    ("Job", "Job", "check", chart, job),
):
    mine, kust = parts(pod(ours, kind), app), parts(pod(theirs, kind), app)
    for key in mine:
        if mine[key] != kust[key]:
            problems += 1
            print(f"DRIFT in the {what}'s {key}:\n  chart:     {json.dumps(mine[key], sort_keys=True)}\n  kustomize: {json.dumps(kust[key], sort_keys=True)}")
        else:
            print(f"   {what}: {key} identical")
sys.exit(1 if problems else 0)
PY

echo "chart checks: all passed"
