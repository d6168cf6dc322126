#!/usr/bin/env bash
# Install Java 17 for the local-Spark tests (tests/test_engines.py), from Debian packages only.
#
#   .ci/install-java.sh
#
# Idempotent: does nothing when `java` is already there. As root, installs Debian's
# openjdk-17-jre-headless with apt-get. A user who cannot install it gets one line saying how,
# and the Spark tests then skip with that reason (under CI=true they fail instead: CI is root).
set -euo pipefail

say() { printf 'install-java: %s\n' "$*"; }

if command -v java >/dev/null 2>&1; then
    say "Java already installed: $(java -version 2>&1 | head -n 1)"
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "no Java and cannot install it here; the Spark tests will skip (as root: apt-get install -y openjdk-17-jre-headless)"
    exit 0
fi
say "installing Debian package: openjdk-17-jre-headless"
export DEBIAN_FRONTEND=noninteractive
apt-get update
# The JRE's post-install step wants this man-page folder on slim images.
mkdir -p /usr/share/man/man1
apt-get install -y --no-install-recommends openjdk-17-jre-headless
say "installed: $(java -version 2>&1 | head -n 1)"
