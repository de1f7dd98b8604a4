#!/usr/bin/env bash
# Installs the browser the dashboard's tests drive: Debian's chromium and
# chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver, the same
# version), and the DejaVu fonts its screenshots are drawn with. Idempotent,
# and prints nothing when all are in place. Reaches only Debian's package
# archive.
set -euo pipefail

need=()
for pkg in chromium chromium-driver fonts-dejavu-core; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
    echo "setup-browser: installing ${need[*]}"
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends \
        "${need[@]}" >/dev/null
fi

for tool in /usr/bin/chromium /usr/bin/chromedriver; do
    [ -x "$tool" ] || { echo "setup-browser: $tool is missing after the install" >&2; exit 1; }
done
