"""`kgalign pairs`: the labelled-pairs protocol of DeepMatcher and Ditto (kgalign/io/pairs.py, kgalign/pairs.py).

Runs on real excerpts of the DeepMatcher Abt-Buy, WDC cameras and Beer pair files
(tests/data/pairs/README.txt says where each comes from), with the real MiniLM
embedder, a scripted judge and, once, the real bundled local judge.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import cli

from kgalign.errors import InputError, KgalignError
from kgalign.io.pairs import parse_record, read_pair_file, record_iri
from kgalign.judging.testing import ScriptedJudge, pick
from kgalign.pairs import PAIRS_OUTPUTS, ScoredPairs, _questions, choose_threshold, match_pairs, pairs_config

DATA = Path(__file__).resolve().parent / "data" / "pairs"
ABT_TEST = DATA / "abt_buy_test.txt"
ABT_VALID = DATA / "abt_buy_valid.txt"
ABT_CSV = DATA / "abt_buy_test.csv"
MAGELLAN = DATA / "magellan" / "test.csv"
WDC = DATA / "wdc_cameras_test.txt"
BEER = DATA / "beer_tiny.txt"


def _labels(path: Path) -> list[int]:
    """The labels of a text pair file, read here independently of the reader."""
    return [int(line.rsplit("\t", 1)[1]) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _triples(pairs) -> list[tuple[str, str, int]]:
    return [(p.left, p.right, p.label) for p in pairs.pairs]


# ----- the reader -----


def test_text_layout_is_read_in_order_with_profiles() -> None:
    pairs = read_pair_file(ABT_TEST)
    assert pairs.layout == "ditto" and len(pairs) == 44 and pairs.positives == 7
    assert [p.index for p in pairs.pairs] == list(range(44)) and [p.line for p in pairs.pairs] == list(range(1, 45))
    assert [p.label for p in pairs.pairs] == _labels(ABT_TEST)
    assert len(pairs.left) == 11 and len(pairs.right) == 44
    first = pairs.left[pairs.pairs[0].left]
    assert first.label == "sony pink cyber-shot 7.2 megapixel digital camera dscw120p"
    # The name is the label; the empty price is dropped.
    assert [name for name, _ in first.attributes] == ["description"]
    assert first.iri.startswith("urn:kgalign:pairs:left:") and len(first.iri.rsplit(":", 1)[1]) == 16
    right = pairs.right[pairs.pairs[0].right]
    assert right.label == "olympus fe-360 digital camera pink 226540" and right.attributes == [("description", "8 megapixel 16:9 3x optical zoom 4x digital zoom 2.5 ' color lcd"), ("price", "104.95")]
    # The same record text is the same entity: the first left record has three pairs (lines 1, 27, 42).
    assert [p.line for p in pairs.pairs if p.left == first.iri] == [1, 27, 42]


def test_wdc_titles_and_beer_records() -> None:
    wdc = read_pair_file(WDC)
    assert len(wdc) == 29 and wdc.positives == 10
    offer = wdc.left[wdc.pairs[0].left]
    assert offer.label == '"GoPro HDMI Cable"@en Cable AHDMC-301 - Filmtools"@en' and offer.attributes == []
    beer = read_pair_file(BEER)
    record = beer.left[beer.pairs[0].left]
    # No title or name attribute: the first value names the record.
    assert record.label == "Honey Basil Amber"
    assert record.attributes == [("Brew_Factory_Name", "Rude Hippo Brewing Company"), ("Style", "American Amber / Red Ale"), ("ABV", "7.40 %")]


def test_record_parsing_and_iris() -> None:
    assert parse_record("COL name VAL a  b COL price VAL ") == [("name", "a b"), ("price", "")]
    assert parse_record("COL Song Name VAL x COL y VAL") == [("Song Name", "x"), ("y", "")]
    assert parse_record("name: a") is None and parse_record("x COL name VAL a") is None
    # Whitespace does not change a record's identity; the side does.
    assert record_iri("left", [("name", "a b")]) == record_iri("left", parse_record("COL  name VAL   a b "))
    assert record_iri("left", [("name", "a")]) != record_iri("right", [("name", "a")])


@pytest.mark.parametrize("path", [ABT_CSV, MAGELLAN], ids=["prefixed-columns", "magellan-tables"])
def test_csv_layouts_read_as_the_text_they_were_derived_from(path: Path) -> None:
    text, table = read_pair_file(ABT_TEST), read_pair_file(path)
    assert table.layout == ("deepmatcher-csv" if path == ABT_CSV else "magellan-csv")
    assert _triples(table) == _triples(text)
    assert table.left == text.left and table.right == text.right
    assert [p.line for p in table.pairs] == list(range(2, 46))


def _error(path: Path) -> str:
    with pytest.raises(InputError) as caught:
        read_pair_file(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_bad_text_lines_name_file_and_line(tmp_path: Path) -> None:
    good = ABT_TEST.read_text(encoding="utf-8").splitlines()
    two = tmp_path / "two.txt"
    two.write_text("\n".join([good[0], good[1].rsplit("\t", 1)[0], good[2]]) + "\n", encoding="utf-8")
    assert _error(two) == f"{two}:2: expected 3 tab-separated fields (left, right, label), found 2"
    label = tmp_path / "label.txt"
    label.write_text("\n".join([good[0], "", good[1].rsplit("\t", 1)[0] + "\tyes"]) + "\n", encoding="utf-8")
    assert _error(label) == f"{label}:3: the label must be 0 or 1, found 'yes'"
    record = tmp_path / "record.txt"
    record.write_text("name a\tCOL name VAL b\t1\n", encoding="utf-8")
    assert _error(record).startswith(f"{record}:1: the left record is not 'COL attribute VAL value ...'")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n", encoding="utf-8")
    assert _error(empty) == f"{empty}: no labelled pairs (the file is empty)"
    assert _error(tmp_path / "missing.txt") == f"{tmp_path / 'missing.txt'}: no such file"


def test_bad_csv_files_name_file_and_line(tmp_path: Path) -> None:
    header, *rows = ABT_CSV.read_text(encoding="utf-8").splitlines()
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([header, rows[0], rows[1].replace(",0,", ",2,", 1)]) + "\n", encoding="utf-8")
    assert _error(bad) == f"{bad}:3: the label must be 0 or 1, found '2'"
    short = tmp_path / "short.csv"
    short.write_text("\n".join([header, "5,1,a,b"]) + "\n", encoding="utf-8")
    assert _error(short) == f"{short}:2: expected 8 cells as in the header (line 1), found 4"
    nolabel = tmp_path / "nolabel.csv"
    nolabel.write_text("id,ltable_name,rtable_name\n0,a,b\n", encoding="utf-8")
    assert _error(nolabel).startswith(f"{nolabel}:1: no 'label' column in the header")
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    assert _error(empty) == f"{empty}: no labelled pairs (the file is empty)"
    lonely = tmp_path / "lonely" / "test.csv"
    lonely.parent.mkdir()
    lonely.write_text((DATA / "magellan" / "test.csv").read_text(encoding="utf-8"), encoding="utf-8")
    assert "tableA.csv is missing" in _error(lonely)


def test_a_bad_line_fails_the_command_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("COL name VAL a\tCOL name VAL b\n", encoding="utf-8")
    result = cli(["pairs", bad, "--threshold", "0.5"])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"kgalign: error: {bad}:1: expected 3 tab-separated fields (left, right, label), found 2"


# ----- retrieval alone -----


def _read_predictions(path: Path) -> list[tuple[int, int, float]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        index, prediction, confidence = line.split("\t")
        assert len(confidence.split(".")[1]) == 4
        rows.append((int(index), int(prediction), float(confidence)))
    return rows


@pytest.fixture(scope="module")
def none_run(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("pairs") / "out"
    result = cli(["pairs", ABT_TEST, "--valid", ABT_VALID, "-o", out, "--quiet"])
    assert result.exit_code == 0, result.output
    return out, result.stdout


def test_judge_none_end_to_end(none_run) -> None:
    out, stdout = none_run
    assert sorted(p.name for p in out.iterdir()) == sorted(PAIRS_OUTPUTS)
    rows = _read_predictions(out / "predictions.tsv")
    labels = _labels(ABT_TEST)
    assert [r[0] for r in rows] == list(range(len(labels)))
    assert {r[1] for r in rows} <= {0, 1} and all(0.0 <= r[2] <= 1.0 for r in rows)
    # metrics.json agrees with a recount from predictions.tsv and the file's labels.
    metrics = json.loads((out / "metrics.json").read_text())
    tp = sum(1 for (_, p, _), y in zip(rows, labels) if p and y)
    predicted, positives = sum(r[1] for r in rows), sum(labels)
    assert (metrics["pairs"], metrics["positives"], metrics["predicted"], metrics["true_positives"]) == (44, positives, predicted, tp)
    assert metrics["precision"] == pytest.approx(tp / predicted, abs=1e-6)
    assert metrics["recall"] == pytest.approx(tp / positives, abs=1e-6)
    assert metrics["f1"] == pytest.approx(2 * tp / (predicted + positives), abs=1e-6)
    assert metrics["judge"] == "none" and metrics["asked"] == 0 and metrics["gated"] == 0 and metrics["questions"] == 11
    assert metrics["threshold_from"] == "valid" and -1 <= metrics["threshold"] <= 1
    # At most one match per left record: one decision per question in votes.jsonl.
    votes = [json.loads(line) for line in (out / "votes.jsonl").read_text().splitlines()]
    assert len(votes) == 11 and sorted(i for v in votes for i in v["pair_indices"]) == list(range(44))
    for vote in votes:
        won = [i for i in vote["pair_indices"] if rows[i][1]]
        assert len(won) == (vote["decision"] == "match")
        scores = [c["score"] for c in vote["candidates"]]
        assert scores == sorted(scores, reverse=True)
        if vote["decision"] == "match":
            assert vote["candidates"][0]["score"] >= metrics["threshold"] and rows[won[0]][2] == pytest.approx(vote["confidence"], abs=1e-4)
    lines = stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"precision={metrics['precision']:.4f}  recall={metrics['recall']:.4f}  f1={metrics['f1']:.4f}")


def test_the_test_files_labels_choose_nothing(none_run, tmp_path: Path) -> None:
    out, _ = none_run
    flipped = tmp_path / "flipped.txt"
    flipped.write_text(
        "".join(f"{line.rsplit(chr(9), 1)[0]}\t{1 - int(line.rsplit(chr(9), 1)[1])}\n" for line in ABT_TEST.read_text(encoding="utf-8").splitlines()),
        encoding="utf-8",
    )
    result = cli(["pairs", flipped, "--valid", ABT_VALID, "-o", tmp_path / "out", "--quiet"])
    assert result.exit_code == 0, result.output
    assert [r[:2] for r in _read_predictions(tmp_path / "out" / "predictions.tsv")] == [r[:2] for r in _read_predictions(out / "predictions.tsv")]
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["threshold"] == json.loads((out / "metrics.json").read_text())["threshold"]


def test_a_given_threshold_and_the_csv_layout_give_the_same_predictions(none_run, tmp_path: Path) -> None:
    out, _ = none_run
    threshold = json.loads((out / "metrics.json").read_text())["threshold"]
    result = match_pairs(ABT_CSV, threshold=threshold)
    assert [(p.index, p.prediction) for p in result.predictions] == [r[:2] for r in _read_predictions(out / "predictions.tsv")]
    assert result.metrics["threshold_from"] == "given" and result.metrics["layout"] == "deepmatcher-csv"


def test_judge_none_needs_a_threshold(tmp_path: Path) -> None:
    result = cli(["pairs", ABT_TEST])
    assert result.exit_code == 1 and result.stderr.strip() == (
        "kgalign: error: --judge none needs a threshold: give --valid FILE (a labelled pair file to choose it on) or --threshold X"
    )
    with pytest.raises(KgalignError, match="needs a threshold"):
        match_pairs(ABT_TEST)
    result = cli(["pairs", ABT_TEST, "--valid", ABT_VALID, "--threshold", "0.5"])
    assert result.exit_code == 2 and "not both" in result.stderr
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    result = cli(["pairs", ABT_TEST, "--threshold", "0.5", "-o", tmp_path / "busy"])
    assert result.exit_code == 1 and "directory holds other files (notes.txt)" in result.stderr


def _scored(file, by_index: list[float]) -> ScoredPairs:
    scores = {(p.left, p.right): s for p, s in zip(file.pairs, by_index)}
    return ScoredPairs(file, scores, *_questions(file, scores))


def test_threshold_is_the_best_f1_on_valid_lowest_on_a_tie(tmp_path: Path) -> None:
    file = read_pair_file(BEER)
    # Four questions: {0 (label 1)}, {1, 4}, {2 (label 1)}, {3, 5}; every other label 0.
    assert [p.label for p in file.pairs] == [1, 0, 1, 0, 0, 0]
    assert [len(c.items) for c in _scored(file, [0.5] * 6).candidates] == [1, 2, 1, 2]
    # Tops: q0 0.8 (right), q1 0.9 (wrong), q2 0.6 (right), q3 0.7 (wrong; pair 5 at 0.5 is not its top).
    # F1 at 0.9: 0; 0.8: 2/4; 0.7: 2/5; 0.6: 4/6.
    assert choose_threshold(_scored(file, [0.8, 0.9, 0.6, 0.7, 0.4, 0.5])) == (0.6, 4 / 6)
    # q0 and q2 tied at 0.8: 0.8 gives 4/5.
    assert choose_threshold(_scored(file, [0.8, 0.9, 0.8, 0.7, 0.4, 0.5])) == (0.8, 4 / 5)
    # 0.9 (q0 right: 2/3) and 0.6 (both right, two wrong: 4/6) tie: the lower wins.
    assert choose_threshold(_scored(file, [0.9, 0.8, 0.6, 0.7, 0.1, 0.2])) == (0.6, 2 / 3)
    # Scores tied within a question: the first pair in input order is the top.
    assert choose_threshold(_scored(file, [0.5] * 6)) == (0.5, 4 / 6)
    negatives = tmp_path / "negatives.txt"
    negatives.write_text("".join(line.rsplit("\t", 1)[0] + "\t0\n" for line in BEER.read_text(encoding="utf-8").splitlines()), encoding="utf-8")
    with pytest.raises(InputError, match="no pair is labelled 1"):
        choose_threshold(_scored(read_pair_file(negatives), [0.5] * 6))


# ----- a judge -----


def test_scripted_votes_decide_the_predictions(tmp_path: Path) -> None:
    file = read_pair_file(ABT_TEST)
    lefts = list(file.left)
    rights = {left: [p.right for p in file.pairs if p.left == left] for left in lefts}
    positive = {p.left: p.right for p in file.pairs if p.label}
    scoring = match_pairs(ABT_TEST, threshold=0.0)
    ranked = {c.source: [i.iri for i in c.items] for c in scoring.candidates}
    big = next(left for left in lefts if len(rights[left]) > 5)
    script = {left: pick(positive.get(left)) for left in lefts}  # the labelled match, or none of these
    wrong = next(left for left in lefts if left in positive and len(rights[left]) >= 2 and left != big)
    other = next(r for r in ranked[wrong][:5] if r != positive[wrong])
    script[wrong] = [pick(other), pick(positive[wrong]), pick(other)]  # 2 of 3 rounds: the wrong one
    split = next(left for left in lefts if len(rights[left]) >= 2 and left not in (big, wrong))
    script[split] = [pick(ranked[split][0]), pick(ranked[split][1]), None]  # no majority: uncertain
    script[big] = pick(ranked[big][-1])  # not shown (past --options 5): "none of these"
    judge = ScriptedJudge(script, logprob=0.0)
    result = match_pairs(ABT_TEST, config=pairs_config(cache_path=str(tmp_path / "cache.sqlite"), vote={"question": "choice"}), judge=judge)

    assert result.config.vote.gate is False
    assert sorted(set(judge.sources)) == sorted(lefts)  # every question asked, none gated
    assert all(len(q.options) <= 5 for q in judge.asked)
    decisions = {d.source: d for d in result.decisions}
    assert decisions[wrong].kind == "match" and decisions[wrong].target == other and len(decisions[wrong].rounds) == 3
    assert decisions[split].kind == "uncertain" and decisions[big].kind == "none"
    for p in result.predictions:
        pair = file.pairs[p.index]
        d = decisions[pair.left]
        assert p.prediction == int(d.kind == "match" and d.target == pair.right)
        assert 0.0 <= p.confidence <= 1.0
    for p in result.predictions:
        pair = file.pairs[p.index]
        if pair.left == wrong and pair.right == other:
            assert p.prediction == 1 and p.confidence == pytest.approx(2 / 3, abs=1e-6)
        elif pair.left == wrong and pair.right == positive[wrong]:
            assert p.prediction == 0 and p.confidence == pytest.approx(1 / 3, abs=1e-6)
    # The scripted judge finds every labelled match but the one it was told to miss, outside `big`.
    missed = {wrong} | ({big} if big in positive else set()) | ({split} if split in positive else set())
    assert result.metrics["true_positives"] == len(positive) - len(missed)
    assert result.metrics["predicted"] == len(positive) - len(missed - {wrong})
    assert result.metrics["asked"] == 11 and result.metrics["gated"] == 0 and result.metrics["capped_questions"] >= 1
    records = result.vote_records()
    assert len(records) == 11 and all(r["rounds"] for r in records)

    # Asked again with the same cache: every answer comes from it.
    again = ScriptedJudge(script, logprob=0.0)
    repeat = match_pairs(ABT_TEST, config=pairs_config(cache_path=str(tmp_path / "cache.sqlite"), vote={"question": "choice"}), judge=again)
    assert [(p.prediction, p.confidence) for p in repeat.predictions] == [(p.prediction, p.confidence) for p in result.predictions]
    assert again.asked == [] and repeat.metrics["llm_questions"] == 0 and repeat.metrics["cache_hits"] == result.metrics["llm_questions"] + result.metrics["cache_hits"]


def test_gate_on_accepts_clear_mutual_bests_without_asking() -> None:
    judge = ScriptedJudge(None)
    result = match_pairs(WDC, config=pairs_config(vote={"gate": True, "gate_margin": 0.05}), judge=judge)
    gated = {d.source for d in result.decisions if d.gated}
    assert gated and set(judge.sources).isdisjoint(gated)
    assert result.metrics["gated"] == len(gated) and result.metrics["asked"] == len(set(judge.sources))


def test_local_judge_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = cli(["pairs", BEER, "--judge", "local", "--question", "choice", "--rounds", "1", "-o", out, "--quiet"])
    assert result.exit_code == 0, result.output
    rows = _read_predictions(out / "predictions.tsv")
    assert [r[0] for r in rows] == list(range(6)) and {r[1] for r in rows} <= {0, 1} and all(0 <= r[2] <= 1 for r in rows)
    votes = [json.loads(line) for line in (out / "votes.jsonl").read_text().splitlines()]
    assert len(votes) == 4 and all(len(v["rounds"]) == 1 for v in votes)
    assert all(v["rounds"][0]["raw"] is not None for v in votes)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["judge"].startswith("local:") and metrics["asked"] == 4 and metrics["llm_questions"] == 4 and metrics["threshold"] is None
    assert (out / "judge-cache.sqlite").is_file()
    assert "threshold=none (the judge decides)" in result.stdout


# ----- the bias on "none of these", chosen on --valid -----


def _scored_script(*files: Path):
    """A judge that scores every letter: the labelled match -1.0, "none of these" -0.7 (so
    that unbiased it answers "none"), the first option of a question without a labelled
    match shown -1.6, the others -3."""
    from kgalign.judging.base import Answer

    positive = {p.left: p.right for f in files for p in read_pair_file(f).pairs if p.label}

    def script(question) -> Answer:
        match = positive.get(question.source.iri)
        shown = [o.iri for o in question.options]
        scores = {letter: -3.0 for letter in question.letters}
        scores[question.none_letter] = -0.7
        if match in shown:
            scores[question.letters[shown.index(match)]] = -1.0
        else:
            scores[question.letters[0]] = -1.6
        best = max(question.letters, key=lambda letter: scores[letter])
        return Answer(raw=best, choice=best, logprob=scores[best], scores=dict(scores), logprobs=dict(scores))

    return script


#: The pairs protocol asking multiple-choice questions: the bias on "none of these" is theirs.
CHOICE = pairs_config(vote={"question": "choice"})


def test_the_bias_on_none_of_these_is_the_best_on_valid_nearest_zero():
    """Unbiased, the judge answers "none" everywhere (F1 0). From -0.5 to -0.75 it picks
    every labelled match and nothing else; from -1.0 down, a wrong option where no match
    is shown too. So -0.5 is chosen, on the valid file only, and the test file is decided
    under it (as under the same bias given)."""
    from kgalign.pairs import NONE_BIASES

    assert -0.5 in NONE_BIASES and 0.0 in NONE_BIASES
    judge = ScriptedJudge(_scored_script(ABT_VALID, ABT_TEST), params={"scored": 1})
    result = match_pairs(ABT_TEST, valid=ABT_VALID, config=CHOICE, judge=judge, check=False)  # the bias alone (the check: below)
    m = result.metrics
    assert (m["none_bias"], m["none_bias_from"], m["none_bias_valid_f1_unbiased"]) == (-0.5, "valid", 0.0)
    assert m["none_bias_valid_f1"] > 0.5 and result.config.vote.none_bias == -0.5
    valid_questions = len(match_pairs(ABT_VALID, threshold=0.0).candidates)
    assert 0 < m["valid_llm_questions"] <= 3 * valid_questions  # each asked once, over every bias tried
    assert m["llm_questions"] == len(judge.asked) - m["valid_llm_questions"] > 0
    given = match_pairs(ABT_TEST, config=CHOICE, judge=ScriptedJudge(_scored_script(ABT_VALID, ABT_TEST), params={"scored": 1}), none_bias=-0.5)
    assert given.metrics["none_bias_from"] == "given"
    assert [p.prediction for p in given.predictions] == [p.prediction for p in result.predictions]
    assert m["true_positives"] > 0 and m["f1"] > 0
    unbiased = match_pairs(ABT_TEST, config=CHOICE, judge=ScriptedJudge(_scored_script(ABT_VALID, ABT_TEST), params={"scored": 1}), none_bias=0.0)
    assert unbiased.metrics["predicted"] == 0


def test_a_judge_without_letter_scores_gets_no_bias():
    judge = ScriptedJudge({}, default=None)
    result = match_pairs(ABT_TEST, valid=ABT_VALID, config=CHOICE, judge=judge)
    assert (result.metrics["none_bias"], result.metrics["none_bias_from"], result.metrics["valid_llm_questions"]) == (0.0, "config", 0)


def test_the_local_judge_s_bias_on_none_is_chosen_on_valid_and_reproduced_when_given(tmp_path: Path) -> None:
    from kgalign.pairs import NONE_BIASES

    tuned = cli(["pairs", ABT_TEST, "--valid", ABT_VALID, "--judge", "local", "--question", "choice", "--rounds", "1", "--no-judge-check", "-o", tmp_path / "tuned", "--quiet"])
    assert tuned.exit_code == 0, tuned.output
    m = json.loads((tmp_path / "tuned" / "metrics.json").read_text())
    assert m["none_bias_from"] == "valid" and m["none_bias"] in NONE_BIASES and m["valid_llm_questions"] > 0
    assert m["none_bias_valid_f1"] >= m["none_bias_valid_f1_unbiased"]
    assert f"none bias {m['none_bias']:+.2f} (chosen on" in tuned.stdout
    chosen = _read_predictions(tmp_path / "tuned" / "predictions.tsv")
    # Given, over the same answers (the folder's answer cache): the same predictions.
    given = cli(["pairs", ABT_TEST, "--judge", "local", "--question", "choice", "--rounds", "1", "--none-bias", str(m["none_bias"]), "-o", tmp_path / "tuned", "--force", "--quiet"])
    assert given.exit_code == 0, given.output
    assert _read_predictions(tmp_path / "tuned" / "predictions.tsv") == chosen
    m2 = json.loads((tmp_path / "tuned" / "metrics.json").read_text())
    assert m2["none_bias_from"] == "given" and m2["llm_questions"] == 0 and m2["asked"] > 0


def _says_the_labels(*files: Path) -> ScriptedJudge:
    """A pairwise judge that answers yes exactly to the pairs ``files`` label 1 (either order)."""
    labelled = {frozenset((p.left, p.right)) for f in files for p in read_pair_file(f).pairs if p.label}

    def script(question):
        same = frozenset((question.source.iri, question.options[0].iri)) in labelled
        return question.answers[question.letters[0]] if same else question.answers[question.none_letter]

    return ScriptedJudge(script, params={"labels": [str(f) for f in files]})


@pytest.mark.parametrize("test, valid", [(ABT_TEST, ABT_VALID), (BEER, BEER)], ids=["abt-buy", "beer"])
def test_a_judge_that_does_worse_than_retrieval_on_valid_is_not_asked(test: Path, valid: Path) -> None:
    """The judge check of `kgalign pairs`: a judge asked on --valid (to choose its threshold)
    whose best F1 there is below retrieval's is not asked about FILE, whose predictions
    are then --judge none's, confidences included; one that does as well is asked. On
    products (Abt-Buy) and beers (the tiny Beer file, its own valid file here)."""
    config = pairs_config(vote={"question": "pairwise"})
    retrieval = match_pairs(test, valid=valid)
    says_yes = ScriptedJudge({}, default="yes")  # every pair alike: its best F1 predicts them all
    result = match_pairs(test, valid=valid, config=config, judge=says_yes)
    m = result.metrics
    check = m["judge_check"]
    assert check["trusted"] is False and check["judge_valid_f1"] < check["retrieval_valid_f1"] == retrieval.metrics["valid_f1"]
    assert m["asked"] == 0 and m["llm_questions"] == 0 and len(says_yes.asked) == m["valid_llm_questions"] > 0
    assert [(p.prediction, p.confidence) for p in result.predictions] == [(p.prediction, p.confidence) for p in retrieval.predictions]
    unchecked = match_pairs(test, valid=valid, config=config, judge=ScriptedJudge({}, default="yes"), check=False)
    assert unchecked.metrics["judge_check"] is None and unchecked.metrics["asked"] == len(unchecked.candidates)
    # A judge that knows the labels does better than retrieval on valid: trusted and asked.
    knows = match_pairs(test, valid=valid, config=config, judge=_says_the_labels(test, valid))
    assert knows.metrics["judge_check"] == {"judge_valid_f1": 1.0, "retrieval_valid_f1": retrieval.metrics["valid_f1"], "trusted": True}
    assert knows.metrics["asked"] == len(knows.candidates) and knows.metrics["f1"] == 1.0 >= retrieval.metrics["f1"]


def test_the_judge_check_is_said_in_the_summary(tmp_path: Path) -> None:
    done = cli(["pairs", BEER, "--valid", BEER, "--judge", "local", "--rounds", "1", "-o", tmp_path / "out"])  # pairwise: the default question
    assert done.exit_code == 0, done.output
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    check = m["judge_check"]
    verdict = "trusted" if check["trusted"] else "not trusted: every question decided as with --judge none"
    assert f"check        on {BEER}: the judge's best F1 {check['judge_valid_f1']:.4f}, retrieval's {check['retrieval_valid_f1']:.4f}: {verdict}" in done.output
    assert (m["asked"] > 0) == check["trusted"]
