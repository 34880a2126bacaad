#!/usr/bin/env bash
# Headless Chromium for the UI browser test (tests/integration/airflow/test_ui_monitor.py),
# driven by the dev extra's `playwright` with executable_path=/usr/bin/chromium
# (`playwright install` is not used: its browser downloads are not reachable everywhere).
#
# Installs it with apt-get only where that can work (as root, or with password-less sudo);
# otherwise it says why and how, and still succeeds: nothing but that one test needs a
# browser, and the test skips without one (under CI=true it fails instead, so CI cannot
# pass without running it).
set -uo pipefail

browser=${FATE_CHROMIUM:-/usr/bin/chromium}  # overridable for the script's own test
report() { echo "    browser: $*"; }

if [ -x "$browser" ]; then
    report "$browser is installed"
    exit 0
fi
how="install Debian's chromium as root (apt-get install chromium) to run the UI test"
if ! command -v apt-get >/dev/null 2>&1; then
    report "not installed and no apt-get here; $how"
    exit 0
fi
if [ "$(id -u)" = 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
else
    report "not installed, and installing it needs root; the UI test will skip. To run it: $how"
    exit 0
fi
report "installing Debian chromium with apt-get"
if "${sudo[@]}" apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
        --no-install-recommends chromium >/dev/null; then
    report "$browser installed"
else
    report "apt-get could not install chromium; the UI test will skip. To run it: $how"
fi
exit 0
