"""AnyMatch's training-data recipe for the pairwise judge (kgalign.finetune.mining): the
cheap model's threshold, the hard positives mined first and the ratio of non-matches,
the attribute pairs and their labels, on real excerpts (Abt-Buy product pairs and the
persons graphs), and the recipe settings that turn them on."""

from __future__ import annotations

from pathlib import Path

import pytest

from kgalign.errors import ConfigError
from kgalign.finetune import DataConfig
from kgalign.finetune.mining import attribute_examples, cheap_threshold, mine, same_value
from kgalign.finetune.recipe import load_recipe, pairs_data, recipe_data

PAIRS = Path(__file__).parent / "data" / "pairs"
PAIRWISE = DataConfig(question="pairwise", options=5, negatives=2, permutations=1, none_share=0.0)


@pytest.fixture(scope="module")
def abt(embedder):
    return pairs_data(PAIRS / "abt_buy_test.txt", PAIRWISE, PAIRS / "abt_buy_valid.txt", embedder=embedder)


def test_the_cheap_models_threshold_is_the_best_f1_on_the_pairs() -> None:
    pairs = [(0.9, True), (0.8, False), (0.7, True), (0.4, False), (0.3, True)]
    # Cutting at 0.7 finds 2 of 3 with 1 wrong (F1 0.667); at 0.3, 3 of 3 with 2 wrong (0.75).
    assert cheap_threshold(pairs) == 0.3
    assert cheap_threshold([(0.9, True), (0.2, False)]) == 0.9
    assert cheap_threshold([(0.5, False)]) == float("inf")


def test_attribute_pairs_are_labelled_as_anymatch_labels_them() -> None:
    assert same_value("12.99", "12,99", False) and not same_value("12.99", "13", True)  # numbers: equal or not
    assert same_value("Sony Bravia", "sony bravia kdl-40", False)  # one contains the other
    assert same_value("black", "silver", True) and not same_value("black", "silver", False)  # else the records' label


def _by_source(examples):
    grouped = {}
    for example in examples:
        grouped.setdefault(example.source, []).append(example)
    return grouped


def test_mining_keeps_the_positives_retrieval_gets_wrong_first(abt) -> None:
    by_source = _by_source(abt.train)
    scores = abt.scores
    assert scores and all(source in {s for s, _ in scores} for source in by_source)
    threshold = cheap_threshold([(scores.get((e.source, e.option_iri), float("-inf")), e.target is not None) for e in abt.train])

    def missed(source: str) -> bool:
        best = max((score, iri) for (s, iri), score in scores.items() if s == source)
        return any(e.target is not None and not (best[1] == e.option_iri and scores[(source, e.option_iri)] >= threshold) for e in by_source[source])

    hard = {s for s in by_source if missed(s)}
    with_match = {s for s, examples in by_source.items() if any(e.target is not None for e in examples)}
    assert hard and hard < with_match  # some matches retrieval ranks first and scores well, some not
    kept, counts = mine(by_source, scores, positives=len(hard), negatives=2, seed=0)
    # Every hard source is taken before an easy one; the positives stop at the cap (whole sources).
    assert hard <= set(kept) and counts["mined_hard_sources"] == len(hard)
    assert counts["mined_pairs_match"] == sum(1 for s in kept for e in kept[s] if e.target is not None)
    everything, all_counts = mine(by_source, scores, positives=0, negatives=0, seed=0)
    assert set(everything) == set(by_source) and all_counts["mined_sources"] == len(by_source)
    # Non-matches: sources without a match only until twice the matches are reached.
    few, few_counts = mine(by_source, scores, positives=1, negatives=1, seed=0)
    without = [s for s in few if s not in with_match]
    assert not without or few_counts["mined_pairs_no_match"] - sum(1 for e in few[without[-1]] if e.target is None) < few_counts["mined_pairs_match"]
    assert mine(by_source, scores, positives=1, negatives=1, seed=0)[0].keys() == few.keys()


def test_attribute_pairs_are_one_field_each_balanced_per_field(abt) -> None:
    examples, counts = attribute_examples(_by_source(abt.train), per_attribute=1000, seed=0)
    assert examples and counts["attribute_pairs"] == len(examples)
    per_field: dict[str, list[bool]] = {}
    for example in examples:
        question = example.question
        assert question.pairwise and len(question.source.attributes) == 1 and len(question.options[0].attributes) == 1
        (key, left), (other, right) = question.source.attributes[0], question.options[0].attributes[0]
        assert key == other
        # Equal or contained values are "same" whatever the records' label; other values follow it.
        if same_value(left, right, False):
            assert example.answer == "A"
        per_field.setdefault(key, []).append(example.answer == "A")
    assert "name" in per_field
    for labels in per_field.values():
        assert labels.count(True) == labels.count(False)  # balanced: as many "same" as "not the same"
    capped, _ = attribute_examples(_by_source(abt.train), per_attribute=2, seed=0)
    assert len(capped) <= 2 * len(per_field)


def test_a_recipe_mines_and_adds_attribute_pairs_on_a_graph_and_on_pairs(persons, tmp_path: Path, embedder) -> None:
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(
        f"""
[questions]
question = "pairwise"
mine = true
positives = 4
attribute_pairs = 20
permutations = 1

[[source]]
name = "persons"
kind = "graphs"
left = "{persons["left"]}"
right = "{persons["right"]}"
links = "{persons["gold"]}"

[[source]]
name = "abt-buy"
kind = "pairs"
file = "{PAIRS / "abt_buy_test.txt"}"
valid = "{PAIRS / "abt_buy_valid.txt"}"
""",
        encoding="utf-8",
    )
    data = recipe_data(load_recipe(recipe), embedder=embedder)
    for name in ("persons", "abt-buy"):
        counts = data.inputs["sources"][name]["counts"]
        assert counts["mined_pairs_match"] >= 4 and counts["mined_pairs_no_match"] > 0 and counts["attribute_pairs"] > 0
        train = [e for e in data.train if e.group == name]
        records = [e for e in train if "#" not in e.option_iri]
        assert sum(1 for e in records if e.target is not None) == counts["mined_pairs_match"]
        assert len(train) == len(records) + counts["attribute_pairs"]
    # Validation stays the record pairs.
    assert data.val and all("#" not in e.option_iri for e in data.val)


def test_mining_settings_are_checked(tmp_path: Path) -> None:
    (tmp_path / "beer.txt").write_bytes((PAIRS / "beer_tiny.txt").read_bytes())
    for settings, message in (
        ('question = "choice"\nmine = true', "are for pairwise questions"),
        ('question = "pairwise"\npositives = -1', "questions.positives must be a whole number"),
        ('question = "pairwise"\nmine = "yes"', "questions.mine must be true or false"),
    ):
        recipe = tmp_path / "recipe.toml"
        recipe.write_text(f"[questions]\n{settings}\n[[source]]\nkind = 'pairs'\nfile = 'beer.txt'\n", encoding="utf-8")
        with pytest.raises(ConfigError, match=message):
            load_recipe(recipe)
