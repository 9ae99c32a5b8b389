#!/usr/bin/env bash
# Install Debian's Virtuoso server binaries (virtuoso-t, isql-vt) for tests/test_sparql.py,
# which starts its own server on 127.0.0.1 with a fresh database. No system service is set up.
# Idempotent and quiet: does nothing when both are already installed. Needs root (or sudo).
set -euo pipefail
if [ -x /usr/bin/virtuoso-t ] && [ -x /usr/bin/isql-vt ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq virtuoso-opensource-7-bin >/dev/null
test -x /usr/bin/virtuoso-t && test -x /usr/bin/isql-vt
