#!/usr/bin/env bash
# Prism on a cluster, on this machine: a 3-node NATS JetStream cluster (the
# replicated event log, R3) and 3 Prism nodes on loopback ports. Installs
# the example plugins through node 1 (they reach every node), appends events
# through node 1, reads the views through nodes 2 and 3, and prints which
# node answered each read. Keeps running until Ctrl-C; with DEMO_EXIT=1 it
# stops after the demonstration. Everything lives under target/cluster-demo.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

"$root/scripts/setup.sh"
"$root/scripts/build-plugins.sh" >/dev/null
cargo build -p prism

nats="$root/target/tools/nats/bin/nats-server"
work="$root/target/cluster-demo"
rm -rf "$work"
mkdir -p "$work"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

routes="nats://127.0.0.1:16221,nats://127.0.0.1:16222,nats://127.0.0.1:16223"
for i in 1 2 3; do
    "$nats" -js -sd "$work/nats-$i" -n "nats-$i" -a 127.0.0.1 -p "1422$i" -m "1822$i" \
        --cluster_name prism --cluster "nats://127.0.0.1:1622$i" --routes "$routes" \
        >"$work/nats-$i.log" 2>&1 &
    pids+=($!)
done
for i in 1 2 3; do
    for _ in $(seq 1 150); do
        curl -sf "http://127.0.0.1:1822$i/healthz?js-enabled-only=true" >/dev/null 2>&1 && break
        sleep 0.2
    done
done

log_url="nats://127.0.0.1:14221,nats://127.0.0.1:14222,nats://127.0.0.1:14223"
for i in 1 2 3; do
    mkdir -p "$work/node-$i/plugins"
    "$root/target/debug/prism" serve --data "$work/node-$i/data" --plugins "$work/node-$i/plugins" \
        --listen "127.0.0.1:1707$i" --log-url "$log_url" --node "node-$i" \
        >"$work/node-$i.out" 2>"$work/node-$i.log" &
    pids+=($!)
done
for i in 1 2 3; do
    for _ in $(seq 1 300); do
        curl -sf "http://127.0.0.1:1707$i/healthz" >/dev/null 2>&1 && break
        sleep 0.2
    done
done

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
node1="http://127.0.0.1:17071"

say "Installing the example plugins through node 1:"
for plugin in account-balance order-summary product-stock; do
    curl -s -o /dev/null -w "  PUT /plugins/$plugin -> %{http_code} (Prism-Node: node-1)\n" \
        -X PUT --data-binary "@$root/target/plugins/$plugin.wasm" "$node1/plugins/$plugin"
done

say "Appending through node 1:"
answer=$(curl -s -X POST "$node1/streams/account-1/events" -H 'content-type: application/json' \
    -d '{"events":[{"type":"AccountOpened","data":{"owner":"Ann"}},{"type":"Deposited","data":{"amount":100}},{"type":"Withdrawn","data":{"amount":30}}]}')
echo "  $answer"
last=$(echo "$answer" | python3 -c 'import json,sys; print(json.load(sys.stdin)["last_position"])')

say "Reading through every node, each waiting until its view reflects position $last:"
for i in 1 2 3; do
    url="http://127.0.0.1:1707$i/views/account-balance/account-1?min_position=$last&timeout_ms=30000"
    curl -s -D "$work/headers" -o "$work/body" "$url"
    node=$(grep -i '^prism-node:' "$work/headers" | tr -d '\r' | cut -d' ' -f2)
    position=$(grep -i '^prism-position:' "$work/headers" | tr -d '\r' | cut -d' ' -f2)
    echo "  node-$i answered (Prism-Node: $node, Prism-Position: $position): $(cat "$work/body")"
done

say "The cluster as node 3 sees it (GET /cluster):"
sleep 3
curl -s "http://127.0.0.1:17073/cluster" | python3 -c '
import json, sys
c = json.load(sys.stdin)
for n in c["nodes"]:
    plugins = ", ".join("%s %s@%s" % (p["name"], p["state"], p["position"]) for p in n["plugins"])
    print("  %-7s %-22s head %-4s %s" % (n["node"], n["url"], n["head"], plugins))
'

say "3 NATS servers (client ports 14221-14223) and 3 Prism nodes (http://127.0.0.1:17071-17073) are running; logs in $work."
if [ "${DEMO_EXIT:-0}" = "1" ]; then
    exit 0
fi
echo "Ctrl-C stops them all."
wait
