#!/usr/bin/env bash
# Install Debian's Virtuoso server binaries (virtuoso-t, isql-vt) for tests/test_sparql.py,
# which starts its own server on 127.0.0.1 with a fresh database. No system service is set up.
set -euo pipefail
"$(dirname "$0")/apt-install.sh" virtuoso-opensource-7-bin /usr/bin/virtuoso-t /usr/bin/isql-vt
