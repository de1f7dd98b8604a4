#!/usr/bin/env bash
# Installs the pinned toolchains that build Python and JavaScript projections:
#   - componentize-py, at the version guest-sdk/python/pyproject.toml pins, into a
#     project-local venv, target/tools/py (never committed);
#   - componentize-js and jco into guest-sdk/js/node_modules with `npm ci`, exactly as
#     guest-sdk/js/package-lock.json pins them.
# Idempotent, and a no-op taking well under a second when both are already in place.
# Needs python3 (with venv) and node >= 20 with npm; reaches only PyPI and the npm registry.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Pinned once, in the Python SDK's packaging metadata (its `build` extra).
COMPONENTIZE_PY_VERSION="$(sed -n 's/.*"componentize-py==\([^"]*\)".*/\1/p' "$root/guest-sdk/python/pyproject.toml")"
venv="$root/target/tools/py"
js="$root/guest-sdk/js"

need() {
    command -v "$1" >/dev/null 2>&1 || { echo "setup-other-toolchains: $1 is required ($2)" >&2; exit 1; }
}
need python3 "Python 3.10 or newer with the venv module"
need node "Node.js 20 or newer"
need npm "npm, which comes with Node.js"

# componentize-py: reinstall only when missing or at another version.
if [[ "$("$venv/bin/componentize-py" --version 2>/dev/null || true)" != "componentize-py $COMPONENTIZE_PY_VERSION" ]]; then
    echo "setup-other-toolchains: installing componentize-py $COMPONENTIZE_PY_VERSION into ${venv#"$root"/}"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        "componentize-py==$COMPONENTIZE_PY_VERSION"
fi

# componentize-js and jco: `npm ci` again only when the lockfile changed since the last one.
lock_sum="$(sha256sum "$js/package-lock.json" | cut -d' ' -f1)"
stamp="$js/node_modules/.prism-lock-sha256"
if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$lock_sum" ]]; then
    echo "setup-other-toolchains: npm ci in guest-sdk/js"
    (cd "$js" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$lock_sum" >"$stamp"
fi
