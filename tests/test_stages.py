"""Each pipeline stage is logged as done, or as failed when an error leaves it (kgalign/runtime/stages.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from kgalign.errors import InputError
from kgalign.runtime.stages import StageTimer


def _stage_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "kgalign.runtime.stages"]


def test_a_stage_an_error_leaves_is_logged_as_failed_not_done(caplog: pytest.LogCaptureFixture) -> None:
    timer = StageTimer()
    with caplog.at_level(logging.INFO, logger="kgalign.runtime.stages"):
        with timer.stage("first"):
            pass
        with pytest.raises(ValueError, match="broken"), timer.stage("second"):
            raise ValueError("broken")
    lines = _stage_lines(caplog)
    assert any(line.startswith("stage first done in ") for line in lines), lines
    assert any(line.startswith("stage second failed after ") for line in lines), lines
    assert not any(line.startswith("stage second done") for line in lines), lines
    assert set(timer.stages) == {"first", "second"}  # the failed stage's time is still counted


def test_a_run_whose_input_cannot_be_read_logs_its_load_stage_as_failed(persons: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from kgalign.config import AlignConfig
    from kgalign.pipeline import align

    bad = tmp_path / "bad.ttl"
    bad.write_text("@prefix ex: <http://example.org/> .\nex:a ex:b .\n")
    with caplog.at_level(logging.INFO, logger="kgalign.runtime.stages"), pytest.raises(InputError):
        align(bad, persons["right"], AlignConfig())
    lines = _stage_lines(caplog)
    assert any(line.startswith("stage load failed after ") for line in lines), lines
    assert not any(" done in " in line for line in lines), lines
