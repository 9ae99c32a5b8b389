"""bench/head_to_head.py: the round order and the figures it reports from the runs' walls.

Running the peers needs their own venv (bench/peers-setup.sh), so the runs themselves are
not made here; tests/test_bench_table.py runs the kgalign command the script shares.
"""

from __future__ import annotations

import pytest

from bench import head_to_head


@pytest.fixture(scope="module")
def h2h():
    return head_to_head


def _run(system: str, round_: int, wall: float | None, f1: float = 0.9, dataset: str = "D") -> dict:
    return {"dataset": dataset, "system": system, "round": round_, "wall_s": wall, "f1": f1}


def test_round_order_alternates_who_runs_first(h2h):
    assert h2h._round_order(["a", "b"], 0) == ["kgalign", "a", "b"]
    assert h2h._round_order(["a", "b"], 1) == ["b", "a", "kgalign"]
    assert h2h._round_order(["a", "b"], 2) == ["kgalign", "a", "b"]


def test_summarise_medians_and_paired_ratios(h2h):
    runs = [
        _run("kgalign", 0, 10.0, 0.98), _run("splink", 0, 20.0, 0.07),
        _run("kgalign", 1, 12.0, 0.98), _run("splink", 1, 18.0, 0.07),
        _run("kgalign", 2, 20.0, 0.98), _run("splink", 2, 22.0, 0.07),
        # Another dataset, where the peer ran one round only (settled) and one kgalign run failed.
        _run("kgalign", 0, 2.0, dataset="E"), _run("pyjedai", 0, 20.0, dataset="E"), _run("kgalign", 1, None, dataset="E"),
    ]
    rows = {(r["dataset"], r["peer"]): r for r in h2h.summarise(runs)}
    assert set(rows) == {("D", "splink"), ("E", "pyjedai")}
    d = rows[("D", "splink")]
    assert d["rounds"] == 3 and d["kgalign_rounds"] == 3
    assert d["kgalign_median_s"] == 12.0 and d["peer_median_s"] == 20.0
    assert d["kgalign_range_s"] == [10.0, 20.0] and d["peer_range_s"] == [18.0, 22.0]
    assert d["ratio_of_medians"] == pytest.approx(20.0 / 12.0)
    # Per-round ratios pair each peer run with kgalign's run of the same round.
    assert d["paired_ratio_range"] == pytest.approx([22.0 / 20.0, 2.0])
    assert d["kgalign_f1"] == [0.98] and d["peer_f1"] == [0.07]
    e = rows[("E", "pyjedai")]
    assert e["rounds"] == 1 and e["kgalign_rounds"] == 1  # the failed run does not count
    assert e["ratio_of_medians"] == pytest.approx(10.0)


def test_summarise_skips_a_peer_without_kgalign_runs(h2h):
    assert h2h.summarise([_run("splink", 0, 5.0), _run("kgalign", 0, None)]) == []


def test_markdown_shows_each_comparison(h2h):
    runs = [_run("kgalign", 0, 10.0, 0.986), _run("splink", 0, 23.0, 0.067), _run("kgalign", 1, 11.0, 0.986), _run("splink", 1, 21.0, 0.067)]
    meta = {"command": "python -m bench.head_to_head", "generated": "now", "machine": "cpu", "commit": "abc", "settled": 3.0,
            "failed": ["D / splink-1to1 round 2: exit 1"]}
    text = h2h.markdown(h2h.summarise(runs), meta)
    row = next(line for line in text.splitlines() if line.startswith("| D | splink |"))
    assert "10.5 s (10.0-11.0)" in row and "22.0 s (21.0-23.0)" in row
    assert "2.10x" in row and "1.91x to 2.30x" in row and "0.986 / 0.067" in row
    assert "D / splink-1to1 round 2: exit 1" in text
