#!/usr/bin/env bash
# The API fuzzer: schemathesis generates requests from GET /openapi.json —
# valid ones, which the server must accept, and invalid ones, which it must
# refuse — and checks every answer against the document (status codes,
# media types, bodies, headers, authentication). It runs against the real
# debug binary on a loopback port with a throwaway data directory and the
# account-balance component and a view file installed, in two passes:
#   1. a server without tokens (the document declares no security);
#   2. a server with tokens, the fuzzer holding a token with every scope
#      (it also sends requests without one, and with a wrong one);
# and a third, short pass against the second server with no token at all,
# where every guarded route must answer 401 as documented.
# Any failure fails the script. Settings the fuzzer needs beyond its
# defaults, and why, are in tests/openapi/schemathesis.toml.
#
# Environment: FUZZ_SEED (default 1), FUZZ_EXAMPLES (default 30, the most
# test cases per operation), FUZZ_TIME_LIMIT (seconds per pass, default 120).
# Only 127.0.0.1 is ever contacted.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_INCREMENTAL=0

seed="${FUZZ_SEED:-1}"
examples="${FUZZ_EXAMPLES:-30}"
time_limit="${FUZZ_TIME_LIMIT:-120}"

"$root/scripts/setup-schemathesis.sh"
st="$root/target/tools/schemathesis/bin/schemathesis"

cargo build --quiet -p prism --bin prism
prism="$root/target/debug/prism"
component="$root/target/plugins/account-balance.wasm"
[ -f "$component" ] || "$root/scripts/build-plugins.sh"

mkdir -p "$root/target/tmp"
work="$(mktemp -d "$root/target/tmp/openapi.XXXXXX")"
server_pid=""

stop_server() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
cleanup() {
    stop_server
    rm -rf "$work"
}
trap cleanup EXIT

# start_server DIR [ARGS...]: a server on a free loopback port, its data and
# plugins under DIR (run from DIR, so that no prism.toml of the caller's
# applies), compiled components cached for the next; sets server_pid and base.
start_server() {
    local dir="$1"
    shift
    mkdir -p "$dir/plugins"
    cp "$component" "$dir/plugins/account-balance.wasm"
    cp "$root/plugins/views/account-balances.view.yaml" "$dir/plugins/"
    (cd "$dir" && exec env -u PRISM_TOKENS -u PRISM_CONFIG -u PRISM_LOG_URL \
        "$prism" serve --data "$dir/data" --cache "$work/cache" --plugins "$dir/plugins" \
        --listen 127.0.0.1:0 "$@" \
        >"$dir/server.out" 2>"$dir/server.log") &
    server_pid=$!
    base=""
    for _ in $(seq 1 300); do
        base="$(sed -n 's|^prism listening on \(http://127\.0\.0\.1:[0-9]*\)$|\1|p' "$dir/server.out")"
        [ -n "$base" ] && break
        kill -0 "$server_pid" 2>/dev/null || { cat "$dir/server.log" >&2; exit 1; }
        sleep 0.1
    done
    [ -n "$base" ] || { echo "test-openapi: the server did not start" >&2; exit 1; }
}

# seed_data [CURL-ARGS...]: wait until both plugins are live, then append a
# few events so that the views have documents to read.
seed_data() {
    local states=""
    for _ in $(seq 1 600); do
        states="$(curl -sf "$@" "$base/plugins" | python3 -c \
            'import json,sys; print(" ".join(sorted(p["state"] for p in json.load(sys.stdin)["plugins"])))' || true)"
        [ "$states" = "live live" ] && break
        sleep 0.2
    done
    [ "$states" = "live live" ] || { echo "test-openapi: plugins not live: $states" >&2; exit 1; }
    for account in 1 2; do
        curl -sf "$@" -X POST "$base/streams/account-$account/events" -H 'content-type: application/json' \
            -d '{"events":[{"type":"AccountOpened","data":{"owner":"ann"}},{"type":"Deposited","data":{"amount":100}}]}' \
            >/dev/null
    done
}

failed=0
# fuzz NAME [SCHEMATHESIS-ARGS...]: one pass against $base; the summary is
# printed, the whole report only when it fails.
fuzz() {
    local name="$1"
    shift
    echo "test-openapi: $name"
    local out="$work/$name.txt"
    set +e
    (cd "$work" && timeout "$time_limit" "$st" --config-file "$root/tests/openapi/schemathesis.toml" \
        run "$base/openapi.json" --checks all --max-examples "$examples" --seed "$seed" \
        --workers 1 --no-color "$@" >"$out" 2>&1)
    local status=$?
    set -e
    if [ "$status" -eq 0 ]; then
        sed -n '/= SUMMARY =/,$p' "$out"
    else
        cat "$out"
        [ "$status" -eq 124 ] && echo "test-openapi: $name took longer than ${time_limit}s"
        echo "test-openapi: $name FAILED"
        failed=1
    fi
}

start_server "$work/open"
seed_data
fuzz "without-tokens"
stop_server

token="fuzz-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
start_server "$work/guarded" --tokens "$token=read+write+admin"
seed_data -H "Authorization: Bearer $token"
fuzz "with-tokens" --header "Authorization: Bearer $token"
fuzz "with-tokens-no-token" --max-examples 5 --phases examples,coverage,fuzzing
stop_server

exit "$failed"
