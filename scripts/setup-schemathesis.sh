#!/usr/bin/env bash
# Installs the pinned API fuzzer, schemathesis, into a project-local venv,
# target/tools/schemathesis (never committed); scripts/test-openapi.sh runs it.
# Idempotent, and prints nothing when that version is already in place.
# Needs python3 (with venv); reaches only PyPI.
set -euo pipefail

SCHEMATHESIS_VERSION=4.32.5

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/target/tools/schemathesis"

command -v python3 >/dev/null 2>&1 ||
    { echo "setup-schemathesis: python3 is required (Python 3.10 or newer with the venv module)" >&2; exit 1; }

# Reinstall only when missing or at another version.
if [[ "$("$venv/bin/schemathesis" --version 2>/dev/null || true)" != "schemathesis, version $SCHEMATHESIS_VERSION" ]]; then
    echo "setup-schemathesis: installing schemathesis $SCHEMATHESIS_VERSION into ${venv#"$root"/}"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        "schemathesis==$SCHEMATHESIS_VERSION"
fi
