"""What a newcomer sees: the quickstart's output (quiet by default, one summary block),
-v for the stage log, -q for the result line, --log-file, and a judged run free of
library warnings. The commands run as a user runs them: in their own process."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from helpers import kgalign_process

ROOT = Path(__file__).resolve().parents[1]

def kgalign(*args: object) -> subprocess.CompletedProcess[str]:
    return kgalign_process(*args, cwd=ROOT)


def quickstart(persons: dict[str, Path], outdir: Path, *options: str) -> subprocess.CompletedProcess[str]:
    done = kgalign("run", persons["left"], persons["right"], "-o", outdir, "--gold", persons["gold"], *options)
    assert done.returncode == 0, done.stderr
    return done


def test_the_quickstart_prints_one_summary_block(persons, tmp_path: Path) -> None:
    done = quickstart(persons, tmp_path / "out")
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) <= 15, lines
    assert done.stderr == ""  # no stage log, no warning, no library noise
    out = done.stdout.splitlines()
    assert out[0] == "kgalign run: 60 entities left, 60 entities right, 1 class pair aligned"
    assert out[1].split()[:2] == ["decisions", "60"] and "matched" in out[1] and "without a match" in out[1]
    assert any(line.split()[0] == "cardinality" and "1:1" in line for line in out[1:])
    assert any(line.split()[0] == "time" and "peak memory" in line for line in out[1:])
    assert f"kgalign inspect {tmp_path / 'out' / 'votes.jsonl'}" in done.stdout and f"kgalign report {tmp_path / 'out'}" in done.stdout
    # The result lines scripts read come last, as before.
    assert out[-2].startswith("52 links from 60 x 60 entities") and out[-1].startswith("precision=0.9615")


def test_verbose_gives_the_stage_log_and_quiet_the_result_lines(persons, tmp_path: Path) -> None:
    verbose = quickstart(persons, tmp_path / "v", "-v")
    for stage in ("load", "select", "retrieve", "resolve", "fuse", "write"):
        assert f"stage {stage} done in" in verbose.stderr
    assert "cascade:" in verbose.stderr and verbose.stdout.startswith("kgalign run:")
    # The group takes it too, before the command.
    group = kgalign("-v", "run", persons["left"], persons["right"], "-o", tmp_path / "g")
    assert group.returncode == 0 and "stage load done in" in group.stderr

    quiet = quickstart(persons, tmp_path / "q", "-q")
    assert quiet.stderr == ""
    assert [line.split()[0] for line in quiet.stdout.splitlines()] == ["52", "precision=0.9615"]


def test_log_file_keeps_the_stage_log_and_the_summary(persons, tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    done = quickstart(persons, tmp_path / "out", "--log-file", log)
    assert done.stderr == ""  # the terminal stays quiet
    text = log.read_text(encoding="utf-8")
    assert "stage load done in" in text and "kgalign run: 60 entities left" in text and "52 links from 60 x 60" in text
    # A log file that cannot be written is a usage error before any work.
    bad = kgalign("run", persons["left"], persons["right"], "-o", tmp_path / "bad", "--log-file", tmp_path / "missing" / "x.log")
    assert bad.returncode == 2 and "cannot write the log file" in bad.stderr and not (tmp_path / "bad").exists()


def test_a_warning_still_reaches_the_terminal(persons, tmp_path: Path) -> None:
    """Quiet by default is not silent: a warning the user must read is shown (here: a
    --attributes name that neither graph has, given with one that exists)."""
    done = kgalign(
        "run", persons["left"], persons["right"], "-o", tmp_path / "out", "--attributes", "http://example.org/nowhere", "--attributes", "name"
    )
    assert done.returncode == 0, done.stderr
    assert "WARNING" in done.stderr and "nowhere" in done.stderr


@pytest.mark.timeout(900)
def test_a_judged_run_prints_no_library_warning(persons, tmp_path: Path) -> None:
    """The shipped local judge on the bundled example: kgalign's own calls raise no
    deprecation or future warning (an error under STRICT_MAIN), and the user sees no
    library output at all: no warning, no "Loading weights" bar."""
    done = quickstart(persons, tmp_path / "out", "--judge", "local", "--options", "2", "--rounds", "2")
    assert "Warning" not in done.stderr and "Loading" not in done.stderr, done.stderr
    assert done.stderr == ""
    out = done.stdout.splitlines()
    judge = next(line for line in out if line.split()[0] == "judge")
    assert "questions asked" in judge
    assert out[-1].startswith("precision=")


def test_the_bars_come_back_without_a_warning(monkeypatch) -> None:
    """Where HF_HUB_DISABLE_PROGRESS_BARS is set (kgalign's commands set it), giving
    transformers its bar back, after a quiet load or after a quiet command in the same
    process, says nothing: the hub warned each time (128 warnings in the suite)."""
    import importlib
    import warnings

    from transformers.utils import logging as hf_logging

    from kgalign.runtime.quiet_loading import loading_quietly

    hub_tqdm = importlib.import_module("huggingface_hub.utils.tqdm")  # the module, not the class of its name
    monkeypatch.setattr(hub_tqdm, "HF_HUB_DISABLE_PROGRESS_BARS", True)
    before = hf_logging.is_progress_bar_enabled()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf_logging.enable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with loading_quietly():
                assert not hf_logging.is_progress_bar_enabled()
        assert hf_logging.is_progress_bar_enabled()
        # A command after a quiet one in the same process gives the bars back, as quietly.
        from kgalign.cli import console

        earlier = console.current()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                console.update(quiet=True)
                assert not hf_logging.is_progress_bar_enabled()
                console.update(quiet=False)
                assert hf_logging.is_progress_bar_enabled()
            finally:
                console.configure(earlier)
    finally:
        if not before:
            hf_logging.disable_progress_bar()
