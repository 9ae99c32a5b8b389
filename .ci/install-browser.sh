#!/usr/bin/env bash
# Install Debian's chromium and chromium-driver for tests/test_report.py (headless browser tests).
set -euo pipefail
"$(dirname "$0")/apt-install.sh" "chromium chromium-driver" /usr/bin/chromium /usr/bin/chromedriver
/usr/bin/chromium --version >/dev/null
/usr/bin/chromedriver --version >/dev/null
