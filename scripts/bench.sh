#!/usr/bin/env bash
# The benchmark suite: release builds, every figure in one run, written to
# BENCHMARKS.md. `--quick` for a smoke run; `--only NAME` (append, load,
# replay, live, query, swap, memory, log_read_memory, scaling, index_replay,
# find, bulk_get, cluster, deploys, feed, import, hostile, emit_replay,
# outbox_replay, view_replay) for one figure,
# written to target/BENCHMARKS-partial.md. PRISM_BENCH_BINARY=PATH runs the
# process-level figures (memory, log_read_memory) against another build.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

"$root/scripts/setup.sh"
if ! command -v wrk >/dev/null 2>&1; then
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq wrk >/dev/null
fi
"$root/scripts/build-plugins.sh"
cargo build --release -p prism
cargo bench -p prism --bench suite -- "$@"
