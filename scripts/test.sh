#!/usr/bin/env bash
# The test command: install what is missing, build every plugin component,
# then run every test (host unit tests, the end-to-end suite against the real
# server, the Rust SDK and plugin tests, the API fuzzer, the Python and
# JavaScript SDK tests).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# A fresh checkout gains nothing from incremental builds, and their caches
# would double the disk the build takes.
export CARGO_INCREMENTAL=0

"$root/scripts/setup.sh"
"$root/scripts/build-plugins.sh"

# Two cores: run test binaries one at a time, the tests inside in parallel.
cargo test --workspace -- --test-threads=4

# The API against its own OpenAPI document, fuzzed (a few minutes at most).
"$root/scripts/test-openapi.sh"

if [ -x "$root/scripts/test-other-sdks.sh" ]; then
    "$root/scripts/test-other-sdks.sh"
fi
