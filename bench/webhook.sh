#!/usr/bin/env bash
# The webhook's load figure: admission reviews per second and p50/p99 latency at 64
# concurrent HTTPS connections, ServiceAccount lookups answered from memory (a warm
# cache). A benchmark, not a test: it prints figures and asserts only that every review
# got a 200. BENCH_SECONDS (default 10) sets the duration, BENCH_CONCURRENCY (64) the
# connections; PROFILE=release measures an
# optimised build (the default is the debug build test.sh uses, which is much slower).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
profile=()
[[ ${PROFILE:-debug} == release ]] && profile=(--release)
exec cargo test "${profile[@]}" --test webhook -- --ignored --nocapture bench_reviews_at_64_concurrent
