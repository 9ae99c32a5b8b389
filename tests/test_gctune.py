"""The garbage collector's thresholds during a run."""

from __future__ import annotations

import gc

import pytest

from kgalign.runtime.gctune import RELAXED_THRESHOLDS, relaxed_gc


def test_thresholds_are_raised_inside_and_restored_after_even_on_error() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError):
        with relaxed_gc():
            assert gc.get_threshold() == tuple(max(a, b) for a, b in zip(before, RELAXED_THRESHOLDS))
            with relaxed_gc():  # nested: unchanged, and the outer values survive its exit
                pass
            assert gc.get_threshold()[0] >= RELAXED_THRESHOLDS[0]
            raise RuntimeError("stop")
    assert gc.get_threshold() == before
    assert gc.isenabled()


def test_higher_thresholds_set_by_the_caller_are_kept() -> None:
    before = gc.get_threshold()
    gc.set_threshold(10 * RELAXED_THRESHOLDS[0], 5, 5)
    try:
        with relaxed_gc():
            assert gc.get_threshold() == (10 * RELAXED_THRESHOLDS[0], RELAXED_THRESHOLDS[1], RELAXED_THRESHOLDS[2])
    finally:
        gc.set_threshold(*before)

