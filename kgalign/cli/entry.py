"""The ``kgalign`` console script's entry point.

Importing :mod:`kgalign.cli.main` builds every command's options, a good part of a
second. This module imports nothing of kgalign's before its ``try``, so a Ctrl-C at any
moment of that start exits 130 with one line, never a traceback.
"""

from __future__ import annotations

import sys


def main(args: list[str] | None = None) -> None:
    """Run ``kgalign`` with ``args`` (default: the command line)."""
    try:
        from kgalign.cli.main import main as group
    except KeyboardInterrupt:
        sys.stderr.write("kgalign: interrupted\n")
        sys.exit(130)
    group(args)
