"""Helpers shared by the test modules that run kgalign's commands, in process or in their own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import pytest
from click.testing import CliRunner, Result


def absent(what: str) -> NoReturn:
    """Skip a test for want of ``what`` (a package, a program, the data beside the
    checkout); in CI (``CI`` set), which installs everything but a GPU, fail instead."""
    if os.environ.get("CI"):
        pytest.fail(f"{what}: CI installs it (.ci/run), so this test may not skip there")
    pytest.skip(what)


def require(module: str) -> ModuleType:
    """``module`` imported, or :func:`absent`."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        absent(f"{module} cannot be imported ({exc})")


def development_split(shared_data: Path, folder: str = "seu_srprs_fr_en") -> tuple[Path, list[tuple[str, str]], list[tuple[str, str]]]:
    """A DBP15K-layout benchmark converted (once, in the cache) and the development split
    of its train links as bench/ablation.py cuts it, where retrieval's defaults are
    chosen: the folder of the conversion, the first 30% of the links (seeds) and the
    rest (gold). The test split is never read."""
    from bench.ablation import dev_split
    from kgalign.evaluation.metrics import read_pairs
    from kgalign.io.importers.cached import convert_cached
    from kgalign.retrieval.embed import cache_root

    out = convert_cached("dbp15k", [shared_data / folder], cache_root() / "conversions" / f"dbp15k-{folder}").outdir
    seeds, gold = dev_split(read_pairs(out / "gold_train.tsv"), 0.3)
    return out, seeds, gold


#: Hides vllm from a Python process (``-c`` code run first): ``import vllm`` fails and
#: ``importlib.util.find_spec("vllm")`` is None, as where it is not installed.
WITHOUT_VLLM = "import sys; sys.modules['vllm'] = None\n"


#: ``kgalign`` as ``python -c`` code: the arguments after it are the command line.
MAIN = "import sys\nfrom kgalign.cli.main import main\nsys.exit(main(sys.argv[1:]))\n"

#: Runs ``kgalign`` with the warnings that kgalign's own calls cause turned into errors
#: (a deprecated transformers or torch call made by kgalign fails the run), every other
#: filter left as a user's Python has it.
STRICT_MAIN = (
    "import warnings\n"
    "for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):\n"
    "    warnings.filterwarnings('error', category=category, module=r'kgalign(\\.|$)')\n"
) + MAIN


def kgalign_process(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`kgalign ARGS...` in its own process, as a user runs it (under :data:`STRICT_MAIN`), in ``cwd``."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "COLUMNS")}
    return subprocess.run([sys.executable, "-c", STRICT_MAIN, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a server a test starts)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(process: Any, seconds: float = 30) -> None:
    """Stop a server a test started: terminate, then kill if it does not exit in ``seconds``."""
    import subprocess

    process.terminate()
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=seconds)


def cli(args: Sequence[object]) -> Result:
    """`kgalign --log-level warning ARGS...` in process (each arg passed as str); exceptions propagate."""
    from kgalign.cli.main import main

    return CliRunner().invoke(main, ["--log-level", "warning", *[str(a) for a in args]], catch_exceptions=False)


def run_persons(persons: Mapping[str, Path], outdir: Path, *options: str, env: Mapping[str, str] | None = None) -> Result:
    """`kgalign run LEFT RIGHT -o OUTDIR --no-gate OPTIONS...` on examples/persons, in process."""
    from kgalign.cli.main import main

    args = ["run", str(persons["left"]), str(persons["right"]), "-o", str(outdir), "--no-gate", *options]
    return CliRunner().invoke(main, args, env=dict(env) if env else None)


def read_rounds(outdir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The records of OUTDIR/votes.jsonl, and all their rounds in one list."""
    records = [json.loads(line) for line in (outdir / "votes.jsonl").read_text(encoding="utf-8").splitlines()]
    return records, [r for record in records for r in record["rounds"]]


def round_letters(round_record: Mapping[str, Any]) -> list[str]:
    """The letters a round could be answered with: one per option shown, plus 'none of these'."""
    return [chr(ord("A") + i) for i in range(len(round_record["order"]) + 1)]


class CountingEmbedder:
    """A real embedder that records the texts it was asked to encode, call by call."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.model_id, self.asked = inner, inner.model_id, []

    @property
    def seen(self) -> int:
        """How many texts it was asked to encode, over all calls."""
        return sum(len(texts) for texts in self.asked)

    def encode(self, texts: list[str]) -> Any:
        self.asked.append(list(texts))
        return self.inner.encode(texts)


def python_script(script: str, *args: str, tmpdir: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``script`` run by this Python in a child process with ``args``, its temporary files
    in ``tmpdir`` (``TMPDIR``); its exit status, stdout and stderr."""
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TMPDIR": str(tmpdir)},
    )


def relative_run(persons: dict[str, Path], project: Path, monkeypatch: Any) -> Path:
    """`kgalign run left.nt right.ttl --gold gold.tsv -o out` in ``project``, where the inputs are copied."""
    import shutil

    project.mkdir()
    for name in ("left", "right", "gold"):
        shutil.copy(persons[name], project / persons[name].name)
    monkeypatch.chdir(project)
    result = cli(["run", persons["left"].name, persons["right"].name, "--gold", persons["gold"].name, "-o", "out", "--quiet"])
    assert result.exit_code == 0, result.output
    return project / "out"
