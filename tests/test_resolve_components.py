"""The 1:1 assignment solved per connected component is the assignment of the whole.

The whole problem is solved as it was before the split (scipy's sparse solver on every
source at once, a dummy target per source: bench/resolve_components.whole); with distinct weights the optimum is
unique, so both must give the same matching. With ties they must give the same total.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.resolve_components import whole
from kgalign.model import Candidate, Candidates, Decision
from kgalign.resolution.resolve import component_matching, component_solver, matching_by_component, resolve


def _problem(seed: int, n_sources: int, n_targets: int, per_source: int, ties: bool):
    rng = np.random.default_rng(seed)
    pairs = {(i, int(j)) for i in range(n_sources) for j in rng.choice(n_targets, size=rng.integers(1, per_source + 1), replace=False)}
    rows, cols = (np.asarray(side, dtype=np.int64) for side in zip(*sorted(pairs)))
    weights = rng.integers(1, 4, size=len(rows)).astype(np.float64) if ties else rng.random(len(rows)) + 0.01
    return rows, cols, weights


def _total(matched, rows, cols, weights) -> float:
    weight = {(int(r), int(c)): w for r, c, w in zip(rows, cols, weights)}
    return sum(weight[(i, int(j))] for i, j in enumerate(matched) if j >= 0)


@pytest.mark.parametrize("group", [1, 7, 200])
@pytest.mark.parametrize("seed", range(6))
def test_the_matching_by_component_is_the_matching_of_thewhole(seed, group, monkeypatch) -> None:
    import kgalign.resolution.resolve as module

    # Components solved one at a time, or side by side in groups of up to `group` sources.
    monkeypatch.setattr(module, "GROUP_SOURCES", group)
    # Sparse (many small components) and dense (a few large ones) problems.
    n_sources, n_targets, per_source = [(300, 900, 2), (300, 400, 3), (200, 150, 4)][seed % 3]
    rows, cols, weights = _problem(seed, n_sources, n_targets, per_source, ties=False)
    got = matching_by_component(rows, cols, weights, n_sources, n_targets)
    assert np.array_equal(got, whole(rows, cols, weights, n_sources, n_targets))
    taken = got[got >= 0]
    assert len(set(taken.tolist())) == len(taken)  # each target once


@pytest.mark.parametrize("seed", range(4))
def test_with_ties_the_total_weight_is_the_optimum(seed) -> None:
    rows, cols, weights = _problem(100 + seed, 250, 300, 3, ties=True)
    got = matching_by_component(rows, cols, weights, 250, 300)
    assert _total(got, rows, cols, weights) == pytest.approx(_total(whole(rows, cols, weights, 250, 300), rows, cols, weights))


def test_a_lone_edge_of_no_weight_stays_unmatched() -> None:
    rows, cols = np.array([0, 1, 2, 2]), np.array([0, 1, 2, 3])
    got = matching_by_component(rows, cols, np.array([0.0, 0.5, -0.2, 0.3]), 3, 4)
    assert got.tolist() == [-1, 1, 3]


def test_assignment_mode_gives_a_lost_source_its_next_candidate() -> None:
    """Two sources want t1; a's next choice is within the window: b keeps t1, a takes t2."""
    candidates = [
        Candidates("a", [Candidate("t1", 0.90, 0), Candidate("t2", 0.85, 1)], margin=0.05, mutual=False),
        Candidates("b", [Candidate("t1", 0.95, 0), Candidate("t3", 0.40, 1)], margin=0.55, mutual=True),
        Candidates("c", [Candidate("t4", 0.70, 0)], margin=0.70, mutual=True),
    ]
    decisions = [Decision(c.source, "match", c.items[0].iri, c.items[0].score) for c in candidates]
    links, conflicts = resolve(decisions, candidates, "assignment")
    assert [(link.left, link.right) for link in links] == [("a", "t2"), ("b", "t1"), ("c", "t4")]
    assert [(c.source, c.target) for c in conflicts] == [("a", "t1")]


def test_a_repeated_pair_counts_once_at_its_heaviest() -> None:
    rows, cols = np.array([0, 0, 1, 1]), np.array([0, 0, 0, 1])
    got = matching_by_component(rows, cols, np.array([0.9, 0.9, 0.8, 0.1]), 2, 2)
    assert got.tolist() == [0, 1]
    assert matching_by_component(np.array([], dtype=np.int64), np.array([], dtype=np.int64), np.array([]), 3, 2).tolist() == [-1, -1, -1]


class _Elsewhere:
    """A component solver that solves what it is given as another process would (each
    component alone, the calls in any order), or declines (``decline``)."""

    def __init__(self, decline: bool = False) -> None:
        self.decline = decline
        self.asked: list[int] = []

    def solve(self, components):
        self.asked.append(len(components))
        if self.decline:
            return None
        solved = {i: component_matching(*component) for i, component in reversed(list(enumerate(components)))}
        return [solved[i] for i in range(len(components))]


@pytest.mark.parametrize("decline", [False, True])
def test_components_solved_elsewhere_give_the_same_matching(monkeypatch, decline) -> None:
    import kgalign.resolution.resolve as module

    monkeypatch.setattr(module, "GROUP_SOURCES", 5)  # several groups
    rows, cols, weights = _problem(7, 300, 400, 3, ties=False)
    here = matching_by_component(rows, cols, weights, 300, 400)
    solver = _Elsewhere(decline)
    with component_solver(solver):
        assert np.array_equal(matching_by_component(rows, cols, weights, 300, 400), here)  # too small to ship
        assert solver.asked == []
        monkeypatch.setattr(module, "SHIP_FROM_EDGES", 1)
        assert np.array_equal(matching_by_component(rows, cols, weights, 300, 400), here)
    assert len(solver.asked) == 1 and solver.asked[0] > 1  # every group that needs the solver, at once
    assert np.array_equal(matching_by_component(rows, cols, weights, 300, 400), here)  # outside the context
    assert len(solver.asked) == 1


def test_an_edge_of_unknown_weight_is_never_chosen() -> None:
    rows, cols = np.array([0, 0, 1, 2, 2, 3, 3]), np.array([0, 1, 1, 2, 3, 2, 3])
    weights = np.array([np.nan, 0.4, np.nan, 0.9, 0.5, 0.8, np.nan])
    # s2-t3 and s3-t2 (1.3) outweigh s2-t2 alone (0.9); s1 has no edge of known weight.
    assert matching_by_component(rows, cols, weights, 4, 4).tolist() == [1, -1, 3, 2]
