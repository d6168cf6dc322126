#!/usr/bin/env bash
# Install what the browser test (tests/browser/) needs, from Debian packages only.
#
#   .ci/install-browser.sh
#
# Idempotent: does nothing when /usr/bin/chromium is already there. Otherwise, as root, installs
# Debian's `chromium` and `chromium-driver` with apt-get (no Playwright browser download, ever:
# the test drives /usr/bin/chromium through the `playwright` Python package, which comes with
# the project's test extras). Prints what it did; exits non-zero when Chromium is still missing.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

say() { printf 'install-browser: %s\n' "$*"; }

if [ -x "$CHROMIUM" ]; then
    say "Chromium already installed: $("$CHROMIUM" --version 2>/dev/null | grep -i chromium || echo "$CHROMIUM")"
else
    # Without a way to install it, say so in one line and let the browser tests skip (they fail
    # instead under CI=true, where this runs as root and installs Chromium).
    if [ "$(id -u)" -ne 0 ]; then
        say "no Chromium and not root: the browser tests will skip (as root: apt-get install -y --no-install-recommends chromium chromium-driver)"
        exit 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        say "no Chromium and no apt-get: the browser tests will skip (they expect Debian's chromium package)"
        exit 0
    fi
    say "installing Debian packages: chromium chromium-driver"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends chromium chromium-driver
    if [ ! -x "$CHROMIUM" ]; then
        say "apt-get finished but $CHROMIUM is still missing"
        exit 1
    fi
    say "installed: $("$CHROMIUM" --version 2>/dev/null | grep -i chromium || echo "$CHROMIUM")"
fi

# The Python driver is a test dependency (pyproject test extras); only report on it here.
PYTHON="${PYTHON:-$(dirname "$0")/../.venv/bin/python}"
if [ -x "$PYTHON" ]; then
    if "$PYTHON" -c 'import playwright' >/dev/null 2>&1; then
        say "playwright Python package present ($("$PYTHON" -m pip show playwright 2>/dev/null | awk '/^Version:/{print $2}'))"
    else
        say "playwright Python package missing in $PYTHON: pip install 'playwright>=1.45' (never run 'playwright install')"
    fi
fi
