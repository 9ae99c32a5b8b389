#!/usr/bin/env bash
# Install Debian packages unless the programs they provide are there already:
#   .ci/apt-install.sh "PACKAGE..." PROGRAM...
# Idempotent and quiet; needs root (or sudo). Used by install-browser.sh and install-virtuoso.sh.
set -euo pipefail
packages=$1
shift
missing=0
for program in "$@"; do
    [ -x "$program" ] || missing=1
done
if [ "$missing" -eq 0 ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086  # a list of package names
$SUDO apt-get install -y -qq $packages >/dev/null
for program in "$@"; do
    test -x "$program"
done
