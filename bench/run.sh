#!/usr/bin/env bash
# Side-by-side benchmark: passport vs nginx (1 worker) vs a minimal hyper server, loaded by
# wrk and `passport loadtest`, servers on core 0 and load on core 1. See BENCHMARKS.md.
#
#   bench/run.sh              # full run (~12 minutes on 2 cores), table on stdout
#   DURATION=2 REPEATS=1 CONNS=1,64 bench/run.sh   # quick look
#   SMOKE=1 bench/run.sh      # CI: correctness only, no timing assertions (~1 minute)
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v nginx >/dev/null || need+=(nginx)
command -v wrk >/dev/null || need+=(wrk)
command -v taskset >/dev/null || need+=(util-linux)
command -v pgrep >/dev/null || need+=(procps)
if ((${#need[@]})); then
  echo "installing ${need[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
fi
cargo build --release --bin passport --example hyper_baseline >&2

if [[ $(nproc) -lt 2 ]]; then
  export SERVER_CORE=0 LOAD_CORE=0
  echo "warning: one CPU; server and load share it" >&2
fi
if [[ "${SMOKE:-0}" == 1 ]]; then
  export DURATION=1 REPEATS=1 CONNS=1,64
fi

WORK=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [[ -f "$WORK/nginx.pid" ]] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/ngx-tmp"
# A JWT-shaped web-identity token (the fake STS accepts any).
printf '%s' "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YmVuY2g6YmVuY2gifQ.c2lnbmF0dXJl" >"$WORK/jwt"
taskset -c "${LOAD_CORE:-1}" python3 bench/fake_sts.py 19913 &
pids+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/19913) 2>/dev/null && break; sleep 0.05; done

python3 bench/bench.py "$WORK" | tee "${OUT:-/dev/null}"
