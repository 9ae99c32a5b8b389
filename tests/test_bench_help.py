"""Every option of every bench/ script explains itself in --help."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if "add_argument" in p.read_text())


def _options(path: Path) -> list[tuple[str, bool]]:
    """(option name, has help) for every ``add_argument`` call in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument":
            name = next((a.value for a in node.args if isinstance(a, ast.Constant)), "?")
            helped = any(k.arg == "help" and not (isinstance(k.value, ast.Constant) and not k.value.value) for k in node.keywords)
            found.append((name, helped))
    return found


def test_the_scan_finds_the_scripts() -> None:
    names = {p.name for p in SCRIPTS}
    assert {"table.py", "peers.py", "head_to_head.py", "injection.py", "large.py"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_option_has_help(script: Path) -> None:
    options = _options(script)
    assert options, script
    assert [name for name, helped in options if not helped] == []
