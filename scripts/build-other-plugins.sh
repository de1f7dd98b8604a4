#!/usr/bin/env bash
# Builds the Python and JavaScript projections into WebAssembly components:
#   target/plugins/account-balance-py.wasm      from plugins/account-balance-py/app.py
#   target/plugins/account-balance-js.wasm      from plugins/account-balance-js/projection.js
#   target/test-plugins/raise-py.wasm           from tests/plugins/raise-py/app.py
#   target/test-plugins/raise-js.wasm           from tests/plugins/raise-js/projection.js
# after making sure the pinned toolchains are installed (setup-other-toolchains.sh).
# The Python ones implement prism:projection@0.2.0 (wit/0.2.0/), which the host keeps
# serving; the JavaScript ones the current wit/ (their batch comes packed in one buffer).
# Neither SDK emits events yet.
# Like scripts/build-plugins.sh, "target" is $CARGO_TARGET_DIR when the caller sets it.
#
# Runs from any directory. A component is rebuilt only when one of its inputs changed (its
# sources, the SDK, the WIT, the pinned tool versions): a second run with nothing changed
# takes about a second. Builds run one after another, to keep a 2-core machine usable.
# Components are built under target/other-build/ and copied in through a hidden temporary
# name, so the host, which watches target/plugins, never sees half a file; an unchanged
# component is left alone.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup-other-toolchains.sh"

componentize_py="$root/target/tools/py/bin/componentize-py"

# A hash of everything a component is built from; equal hash, same component.
inputs_hash() {
    {
        "$componentize_py" --version
        sha256sum "$root/guest-sdk/js/package-lock.json"
        find "$@" -type f \( -name '*.py' -o -name '*.js' -o -name '*.mjs' -o -name '*.wit' -o -name '*.json' \) \
            -not -path '*/node_modules/*' -not -path '*/__pycache__/*' -not -name 'test_*' -not -name '*.test.js' \
            -print0 | sort -z | xargs -0 sha256sum
    } | sha256sum | cut -d' ' -f1
}

target="$(cd "$root" && mkdir -p "${CARGO_TARGET_DIR:-target}" && cd "${CARGO_TARGET_DIR:-target}" && pwd)"
work="$root/target/other-build"
mkdir -p "$work/stamps"

# up_to_date OUT HASH: OUT exists and was built from inputs with this HASH.
up_to_date() {
    [[ -f "$1" && "$(cat "$work/stamps/$(basename "$1").inputs" 2>/dev/null || true)" == "$2" ]]
}

# put_in_place BUILT OUT HASH STARTED: move a fresh component into place and remember its inputs.
put_in_place() {
    local built="$1" out="$2" hash="$3" started="$4"
    local dir name
    dir="$(dirname "$out")"
    name="$(basename "$out")"
    mkdir -p "$dir"
    if ! cmp -s "$built" "$out"; then
        cp "$built" "$dir/.$name.tmp"
        mv -f "$dir/.$name.tmp" "$out"
    fi
    rm -f "$built"
    echo "$hash" >"$work/stamps/$(basename "$out").inputs"
    printf 'built %s (%s bytes) in %ss\n' "$out" "$(stat -c %s "$out")" "$((SECONDS - started))"
}

# build_py SRC_DIR OUT: the Python app module `app` in SRC_DIR, with the SDK.
build_py() {
    local src="$root/$1" out="$target/$2"
    local hash
    hash="$(inputs_hash "$src" "$root/guest-sdk/python/prism_projection" "$root/wit/0.2.0")"
    if up_to_date "$out" "$hash"; then
        echo "up to date: $out"
        return
    fi
    local started=$SECONDS
    # Stage only what runs in the component: the app (not its tests) and the SDK package.
    local name stage
    name="$(basename "$out" .wasm)"
    stage="$work/$name-stage"
    rm -rf "$stage"
    mkdir -p "$stage"
    (cd "$src" && find . -name '*.py' -not -name 'test_*' -not -path '*/__pycache__/*' \
        -exec cp --parents {} "$stage/" \;)
    cp -r "$root/guest-sdk/python/prism_projection" "$stage/"
    find "$stage" -name '__pycache__' -prune -exec rm -rf {} +
    "$componentize_py" --quiet -d "$root/wit/0.2.0" -w projector componentize app -p "$stage" -o "$work/$name.wasm"
    put_in_place "$work/$name.wasm" "$out" "$hash" "$started"
}

# build_js MODULE OUT: the ES module whose default export is a defineProjection(...).
build_js() {
    local module="$root/$1" out="$target/$2"
    local hash
    hash="$(inputs_hash "$(dirname "$module")" "$root/guest-sdk/js/src" "$root/guest-sdk/js/build.mjs" "$root/wit/projection.wit")"
    if up_to_date "$out" "$hash"; then
        echo "up to date: $out"
        return
    fi
    local started=$SECONDS name
    name="$(basename "$out" .wasm)"
    node "$root/guest-sdk/js/build.mjs" "$module" "$work/$name.wasm" --wit "$root/wit/projection.wit" >/dev/null
    put_in_place "$work/$name.wasm" "$out" "$hash" "$started"
}

build_py plugins/account-balance-py plugins/account-balance-py.wasm
build_js plugins/account-balance-js/projection.js plugins/account-balance-js.wasm
build_py tests/plugins/raise-py test-plugins/raise-py.wasm
build_js tests/plugins/raise-js/projection.js test-plugins/raise-js.wasm
