"""`align()` with the real shipped embedder: what its result holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from kgalign.config import AlignConfig
from kgalign.pipeline import align, prepare
from kgalign.result import Prepared


def test_result_holds_the_prepared_stages_and_keeps_the_old_names(persons: dict[str, Path], embedder, tmp_path: Path) -> None:
    config = AlignConfig(judge="none")
    result = align(persons["left"], persons["right"], config, embedder=embedder)

    assert isinstance(result.prepared, Prepared)
    prepared = result.prepared
    for name in ("left_graph", "right_graph", "left_table", "right_table", "left_profiles", "right_profiles", "candidates"):
        assert getattr(result, name) is getattr(prepared, name), name
        with pytest.raises(AttributeError):
            setattr(result, name, None)
    assert len(result.left_table) == result.counts["entities_left"] == 60
    assert sum(len(c.items) for c in result.candidates) == result.counts["candidates"]

    # The same stages run alone give the same candidates.
    alone = prepare(persons["left"], persons["right"], AlignConfig(judge="none"), embedder)
    assert [(c.source, [i.iri for i in c.items]) for c in alone.candidates] == [
        (c.source, [i.iri for i in c.items]) for c in prepared.candidates
    ]
    # Saving reads the profiles and candidates through the result.
    paths = result.save(tmp_path / "out")
    assert len(paths["votes.jsonl"].read_text(encoding="utf-8").splitlines()) == len(prepared.candidates)
