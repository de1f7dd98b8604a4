#!/usr/bin/env bash
# Runs the unit tests of the Python and JavaScript SDKs and of their plugins, natively:
# plain `python3 -m unittest` and `node --test`, no WebAssembly and no installs needed.
# Runnable from any directory.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# No bytecode caches in the source tree.
export PYTHONDONTWRITEBYTECODE=1

echo "== Python SDK and plugins"
(cd "$root/guest-sdk/python" && python3 -m unittest discover -s tests)
for dir in plugins/account-balance-py tests/plugins/raise-py; do
    (cd "$root/$dir" && python3 -m unittest)
done

echo "== JavaScript SDK and plugins"
cd "$root"
node --test guest-sdk/js/test/ plugins/account-balance-js/ tests/plugins/raise-js/
