"""Every entry of tests/corpus/bad_inputs/manifest.toml through the real CLI.

An error must be exactly one line on stderr that names the file, exit code 1, no
traceback, and no output file (nor temporary file) left in OUTDIR. Inputs that must
run do, with their warning and check. See tests/corpus/bad_inputs/README.md.

Also here: a crash or an interrupt while the outputs are written leaves none of them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import kgalign.outputs
from click.testing import CliRunner, Result
from helpers import MAIN

from kgalign.cli.main import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CORPUS = Path(__file__).resolve().parent / "corpus" / "bad_inputs"
CASES: list[dict[str, Any]] = tomllib.loads((CORPUS / "manifest.toml").read_text(encoding="utf-8"))["case"]
OUTPUT_FILES = set(kgalign.outputs.OUTPUT_FILES)
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _invoke(args: list[str]) -> Result:
    # A wide console keeps each log record on one line (rich wraps at 80 columns otherwise).
    return CliRunner(env={"COLUMNS": "400"}).invoke(main, ["--log-level", "warning", *args])


def _places(tmp_path: Path) -> dict[str, str]:
    persons = EXAMPLES / "persons"
    return {
        "corpus": str(CORPUS),
        "examples": str(EXAMPLES),
        "left": str(persons / "left.nt"),
        "right": str(persons / "right.ttl"),
        "gold": str(persons / "gold.tsv"),
        "tmp": str(tmp_path),
        "out": str(tmp_path / "out"),
    }


def _setup(kind: str | None, places: dict[str, str]) -> None:
    tmp, out, left = Path(places["tmp"]), Path(places["out"]), Path(places["left"])
    if kind is None:
        return
    if kind == "directory_as_input":
        (tmp / "graph.ttl").mkdir()
    elif kind == "unreadable_input":
        shutil.copy(left, tmp / "unreadable.nt")
        (tmp / "unreadable.nt").chmod(0)
    elif kind == "path_with_spaces":
        shutil.copy(left, tmp / "my graph (copy).nt")
    elif kind == "symlink_to_left":
        (tmp / "alias.nt").symlink_to(left)
    elif kind == "hardlink_to_left":
        try:
            os.link(left, tmp / "hardlink.nt")
        except OSError as exc:  # another file system than the checkout's
            pytest.skip(f"cannot hard-link into {tmp}: {exc}")
    elif kind == "foreign_file_in_out":
        out.mkdir()
        (out / "notes.txt").write_text("mine\n")
    elif kind == "out_under_regular_file":
        (tmp / "file").write_text("a regular file\n")
        places["out"] = str(tmp / "file" / "out")
    elif kind == "out_is_a_file":
        out.write_text("a regular file\n")
    elif kind == "out_not_writable":
        out.mkdir()
        out.chmod(0o555)
    else:
        raise AssertionError(f"unknown setup {kind!r}")


def _expand(text: str, places: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: places[m.group(1)], text)


def _no_traceback(result: Result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.stdout + result.stderr


def _no_outputs(out: Path, allowed: set[str]) -> None:
    if not out.is_dir():
        return
    left = {p.name for p in out.iterdir()} - allowed
    assert not left & OUTPUT_FILES, f"partial output in {out}: {sorted(left)}"
    assert not [name for name in left if name.endswith(".tmp")], f"temporary files in {out}: {sorted(left)}"
    assert not left, f"unexpected files in {out}: {sorted(left)}"


def _check(check: str, out: Path) -> None:
    name, _, value = check.partition("=")
    if name == "entities_left":
        assert json.loads((out / "run.json").read_text())["counts"]["entities_left"] == int(value)
    elif name == "gold_pairs_not_in_graphs":
        assert json.loads((out / "metrics.json").read_text())["gold_pairs_not_in_graphs"] == int(value)
    elif name == "prompts_clipped":
        records = [json.loads(line) for line in (out / "votes.jsonl").read_text().splitlines()]
        prompts = [r["prompt"] for r in records if r["prompt"]]
        assert prompts, "no question was asked"
        assert max(len(p) for p in prompts) < 4000, max(len(p) for p in prompts)
    elif name == "foreign_file_kept":
        assert (out / "notes.txt").read_text() == "mine\n"
    else:
        raise AssertionError(f"unknown check {check!r}")


def test_every_corpus_file_has_a_case() -> None:
    named = " ".join(" ".join(case["args"]) for case in CASES)
    files = {p.name for p in CORPUS.iterdir()} - {"README.md", "manifest.toml"}
    assert {f for f in files if f"{{corpus}}/{f}" not in named} == set()
    assert len({case["name"] for case in CASES}) == len(CASES)


@dataclass
class _Ran:
    """A command's outcome in its own process, read as a CliRunner result is."""

    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None = None


def _invoke_without_override(args: list[str]) -> _Ran:
    """The command in its own process, without root's power to read and write whatever
    the permissions say (the capabilities DAC_OVERRIDE and DAC_READ_SEARCH taken out of
    its bounding set by util-linux's setpriv): root still owns the files, and their
    permissions now hold for it as for their owner."""
    command = [shutil.which("setpriv") or "setpriv", "--bounding-set", "-dac_override,-dac_read_search", sys.executable, "-c", MAIN]
    done = subprocess.run([*command, "--log-level", "warning", *args], capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "400"})
    return _Ran(done.returncode, done.stdout, done.stderr)


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_corpus_case(case: dict[str, Any], tmp_path: Path) -> None:
    places = _places(tmp_path)
    _setup(case.get("setup"), places)
    out = Path(places["out"])
    before = {p.name for p in out.iterdir()} if out.is_dir() else set()
    args = [_expand(arg, places) for arg in case["args"]]
    try:
        # Root reads and writes regardless of permissions, unless it gives that up.
        result = _invoke_without_override(args) if case.get("as_owner") and IS_ROOT else _invoke(args)
    finally:
        if case.get("setup") == "out_not_writable":
            out.chmod(0o755)
    _no_traceback(result)
    assert result.exit_code == case["exit"], f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    if case["exit"] != 0:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, f"expected one line on stderr, got: {result.stderr!r}"
        line = lines[0]
        assert line.startswith("kgalign: error: "), line
        assert re.search(case["error"], line), f"{case['error']!r} not in {line!r}"
        assert _expand(case["names"], places) in line, line
        assert result.stdout == "", result.stdout
        _no_outputs(out, before)
        return
    produced = {p.name for p in out.iterdir()}
    assert produced >= OUTPUT_FILES - {"metrics.json"}, produced
    assert not [name for name in produced if name.endswith(".tmp")]
    if "warning" in case:
        assert any(re.search(case["warning"], line) for line in result.stderr.splitlines()), result.stderr
    if "check" in case:
        _check(case["check"], out)


# --- a failure while writing leaves no partial output ------------------------------------


def _fail_after_two_files(exc: BaseException):
    """A stand-in for write_alignment, the third writer: fused.ttl and links.ttl exist by then."""

    def write_alignment(*args: Any, **kwargs: Any) -> None:
        raise exc

    return write_alignment


@pytest.mark.parametrize(
    ("exc", "exit_code"),
    [(RuntimeError("simulated crash"), None), (KeyboardInterrupt(), 130), (OSError(28, "No space left on device"), 1)],
    ids=["crash", "interrupt", "disk-full"],
)
def test_failure_while_writing_leaves_no_partial_output(
    exc: BaseException, exit_code: int | None, tmp_path: Path, persons, monkeypatch
) -> None:
    import kgalign.result

    monkeypatch.setattr(kgalign.result, "write_alignment", _fail_after_two_files(exc))
    out = tmp_path / "out"
    result = _invoke(["run", str(persons["left"]), str(persons["right"]), "-o", str(out), "--judge", "none", "--quiet"])
    assert result.exit_code != 0
    if exit_code is not None:
        assert result.exit_code == exit_code
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    if isinstance(exc, OSError):
        assert "cannot write the outputs (No space left on device)" in result.stderr
    assert not out.exists() or not list(out.iterdir()), sorted(p.name for p in out.iterdir())


def test_failed_rerun_keeps_the_earlier_outputs(tmp_path: Path, persons, monkeypatch) -> None:
    import kgalign.result

    out = tmp_path / "out"
    args = ["run", str(persons["left"]), str(persons["right"]), "-o", str(out), "--judge", "none", "--quiet"]
    assert _invoke([*args, "--gold", str(persons["gold"])]).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(before) == OUTPUT_FILES
    monkeypatch.setattr(kgalign.result, "write_alignment", _fail_after_two_files(RuntimeError("simulated crash")))
    assert _invoke(args).exit_code != 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    monkeypatch.undo()
    # A successful rerun without gold replaces every file and drops the stale metrics.json.
    assert _invoke(args).exit_code == 0
    assert {p.name for p in out.iterdir()} == OUTPUT_FILES - {"metrics.json"}
