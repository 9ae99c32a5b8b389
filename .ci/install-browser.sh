#!/usr/bin/env bash
# Install Debian's chromium and chromium-driver for tests/test_report.py (headless browser tests).
# Idempotent and quiet: does nothing when both are already installed. Needs root (or sudo).
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
/usr/bin/chromium --version >/dev/null
/usr/bin/chromedriver --version >/dev/null
