#!/usr/bin/env bash
# Retakes the README's picture of the dashboard, docs/dashboard.png: the
# overview test starts a real server with the example plugins, replays and
# rebuilds one of them under a steady stream of appends, and photographs the
# page in headless Chromium while the rebuild is under way.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

"$root/scripts/setup.sh"
"$root/scripts/build-plugins.sh"
cargo test -p prism --test e2e -- --exact \
    dashboard::the_overview_shows_every_plugin_and_a_replay_until_it_is_live
mkdir -p docs
cp target/ui-screenshots/overview.png docs/dashboard.png
echo "docs/dashboard.png updated"
