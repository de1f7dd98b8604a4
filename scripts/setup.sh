#!/usr/bin/env bash
# Install what building and testing Prism needs, idempotently: Debian
# packages (system RocksDB and clang for its bindings), the wasm32-wasip2
# Rust target, nats-server for the cluster tests, Chromium for the
# dashboard's browser tests, schemathesis for the API fuzzer, and the
# Python/JavaScript component toolchains.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

need=()
for pkg in librocksdb-dev clang libclang-dev pkg-config; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
    echo "setup: installing ${need[*]}"
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The build binds against /usr/include/rocksdb/c.h and leaves finding the
# library to the linker's default search path (see .cargo/config.toml): make
# sure that path leads to the library packaged with that header, on whatever
# architecture this is.
packaged="$(dpkg -L librocksdb-dev | grep '/librocksdb\.so$')"
found="$(cc -print-file-name=librocksdb.so)"
if [ -e /usr/lib/librocksdb.so ] || [ "$(readlink -f "$found")" != "$(readlink -f "$packaged")" ]; then
    echo "setup: the linker would not use librocksdb-dev's $packaged (it finds $found)" >&2
    exit 1
fi

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    echo "setup: adding the wasm32-wasip2 target"
    rustup target add wasm32-wasip2
fi

"$root/scripts/setup-nats.sh"
"$root/scripts/setup-browser.sh"
"$root/scripts/setup-schemathesis.sh"

if [ -x "$root/scripts/setup-other-toolchains.sh" ]; then
    "$root/scripts/setup-other-toolchains.sh"
fi
