#!/usr/bin/env bash
# The main job: build Prism and the example plugins (components and view
# files), start the server with them (embedded RocksDB in target/demo/data),
# append a few events and show the views answering. The server keeps running
# until Ctrl-C; with DEMO_EXIT=1 it stops after the demonstration.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

"$root/scripts/setup.sh"
"$root/scripts/build-plugins.sh"
cargo build -p prism

demo="$root/target/demo"
rm -rf "$demo/data"
mkdir -p "$demo/plugins"
cp "$root"/target/plugins/*.wasm "$demo/plugins/"
cp "$root"/plugins/views/*.view.yaml "$demo/plugins/"

listen="${PRISM_LISTEN:-127.0.0.1:7070}"
base="http://$listen"
"$root/target/debug/prism" serve --data "$demo/data" --cache "$demo/cache" --plugins "$demo/plugins" --listen "$listen" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT

for _ in $(seq 1 300); do
    curl -sf "$base/healthz" >/dev/null 2>&1 && break
    sleep 0.2
done

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
show() { echo "\$ curl $*"; curl -s "$@"; echo; }

# A first start compiles every component (the Python and JavaScript ones take
# a while); later runs load them from the compile cache, kept beside the data.
say "Plugins in $demo/plugins (waiting until each is live; the first start compiles them):"
for _ in $(seq 1 1200); do
    states=$(curl -s "$base/plugins" | python3 -c 'import json,sys; print(" ".join(sorted(p["name"] + "=" + p["state"] for p in json.load(sys.stdin)["plugins"])))')
    printf '\r  %s ' "$states"
    case " $states " in
        *=loading*|*=replaying*) sleep 0.5 ;;
        *) break ;;
    esac
done
echo
curl -s "$base/plugins" | python3 -c 'import json,sys; [print("  %-22s %s" % (p["name"], p["state"])) for p in json.load(sys.stdin)["plugins"]]'

say "Appending events to account-1 and account-2:"
show -s -X POST "$base/streams/account-1/events" -H 'content-type: application/json' \
    -d '{"events":[{"type":"AccountOpened","data":{"owner":"Ann"}},{"type":"Deposited","data":{"amount":100}},{"type":"Withdrawn","data":{"amount":30}}]}'
last=$(curl -s -X POST "$base/streams/account-2/events" -H 'content-type: application/json' \
    -d '{"events":[{"type":"AccountOpened","data":{"owner":"Bob"}},{"type":"Deposited","data":{"amount":5}}]}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["last_position"])')
echo "(account-2 appended up to position $last)"

say "Reading the views (waiting until they reflect position $last):"
show -s "$base/views/account-balance/account-1?min_position=$last"
show -s -i "$base/views/account-balance/account-2?min_position=$last"
for p in account-balance-py account-balance-js; do
    if [ -f "$demo/plugins/$p.wasm" ]; then
        show -s "$base/views/$p/account-1?min_position=$last&timeout_ms=30000"
    fi
done

say "Products by stock level (a query over the declared by-stock index) and a named query:"
curl -s -X POST "$base/streams/product-a1/events" -H 'content-type: application/json' \
    -d '{"events":[{"type":"ProductAdded","data":{"sku":"a1","name":"Anvil","stock":3}}]}' >/dev/null
last=$(curl -s -X POST "$base/streams/product-b2/events" -H 'content-type: application/json' \
    -d '{"events":[{"type":"ProductAdded","data":{"sku":"b2","name":"Bucket","stock":40}}]}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["last_position"])')
show -s "$base/views/product-stock/_find?index=by-stock&stock.lt=10&min_position=$last"
show -s "$base/views/product-stock/_query/low-stock?below=10&min_position=$last"

say "View files (plugins/views/*.view.yaml: no code to compile) answering from the same log:"
show -s "$base/views/account-balances/account-1?min_position=$last"
show -s "$base/views/products-by-stock/_find?index=by-stock&stock.lt=10&min_position=$last"
post() {
    curl -s -X POST "$base/streams/$1/events" -H 'content-type: application/json' -d "$2" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["last_position"])'
}
post customer-c1 '{"events":[{"type":"CustomerRegistered","data":{"customer_id":"c1","name":"Ann"}}]}' >/dev/null
post order-o1 '{"events":[{"type":"OrderPlaced","data":{"order_id":"o1","customer_id":"c1","total":250}}]}' >/dev/null
post order-o2 '{"events":[{"type":"OrderPlaced","data":{"order_id":"o2","customer_id":"c1","total":90}}]}' >/dev/null
last=$(post customer-c1 '{"events":[{"type":"CustomerRenamed","data":{"customer_id":"c1","name":"Ann Lee"}}]}')
echo "(customer c1 renamed at position $last: the join renames her in every order)"
show -s "$base/views/customer-orders/_find?index=by-customer&customer_id.eq=c1&min_position=$last"
post shop-1 '{"events":[{"type":"ProductSold","data":{"sku":"a1","quantity":2,"amount":3000}}]}' >/dev/null
last=$(post shop-2 '{"events":[{"type":"ProductSold","data":{"sku":"a1","quantity":1,"amount":1500}}]}')
show -s "$base/views/revenue-by-day?min_position=$last"

say "Prism is serving on $base (data in $demo/data, plugins in $demo/plugins)."
echo "Dashboard: $base/ui"
if [ "${DEMO_EXIT:-0}" = "1" ]; then
    exit 0
fi
echo "Drop a .wasm or a .view.yaml into $demo/plugins to add or replace a projection. Ctrl-C stops the server."
wait $server
