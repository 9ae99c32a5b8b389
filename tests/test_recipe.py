"""Training recipes over many datasets (``kgalign finetune --recipe``).

The loader refuses every mistake in one line naming the file and the setting; a recipe
of a graph pair (the persons example, with gold links) and two labelled pair files
(Abt-Buy and Beer excerpts) builds questions exactly as a run and ``kgalign pairs`` ask
them, capped and weighted per source, validation taken from every source in turn; and
a short real training run from the command line reports each source's accuracy.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from helpers import absent, cli

from kgalign.config import AlignConfig, RetrievalConfig
from kgalign.errors import ConfigError
from kgalign.finetune import DataConfig, gold_data
from kgalign.finetune.recipe import load_recipe, pairs_data, recipe_data
from kgalign.finetune.train import METADATA_FILE

pytestmark = pytest.mark.timeout(900)

PAIRS = Path(__file__).parent / "data" / "pairs"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _recipe_text(persons: dict[str, Path]) -> str:
    return f"""
[questions]
question = "choice"
options = 3
permutations = 2

[train]
max_steps = 2
batch_size = 2
max_val = 6
eval_every = 0
lora_layers = 2
warmup_steps = 0

[[source]]
name = "persons"
kind = "graphs"
left = "{persons['left']}"
right = "{persons['right']}"
links = "{persons['gold']}"
attributes = ["given_name", "surname"]
cap = 6

[[source]]
name = "abt-buy"
kind = "pairs"
file = "{PAIRS / 'abt_buy_test.txt'}"
valid = "{PAIRS / 'abt_buy_valid.txt'}"
weight = 1.5

[[source]]
name = "beer"
kind = "pairs"
file = "beer_tiny.txt"
"""


def _persons_recipe(persons: dict[str, Path], tmp_path: Path) -> Path:
    """The recipe of :func:`_recipe_text`, written in ``tmp_path`` beside its Beer excerpt."""
    (tmp_path / "beer_tiny.txt").write_bytes((PAIRS / "beer_tiny.txt").read_bytes())
    return _write(tmp_path, _recipe_text(persons))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[trian]\nmax_steps = 1\n", "unknown section 'trian'"),
        ("[train]\ninit_adapter = 'cross-domain'\n[[source]]\nkind='pairs'\nfile='beer_tiny.txt'\n", "unknown setting 'train.init_adapter'"),
        ("[train]\nmax_step = 1\n[[source]]\nkind='pairs'\nfile='beer_tiny.txt'\n", "unknown setting 'train.max_step'; did you mean 'train.max_steps'?"),
        ("[questions]\noptions = 40\n[[source]]\nkind='pairs'\nfile='beer_tiny.txt'\n", "questions.options must be an integer from 1 to 20"),
        ("[train]\nmax_steps = 1\n", "at least one [[source]]"),
        ("[[source]]\nkind = 'tables'\n", "kind must be one of graphs, dbp15k, pairs, votes"),
        ("[[source]]\nkind = 'pairs'\nfile = 'missing.txt'\n", "file"),
        ("[[source]]\nkind = 'pairs'\nfile = 'beer_tiny.txt'\ncap = 0\n", "cap must be a positive integer"),
        ("[[source]]\nkind = 'pairs'\nfile = 'beer_tiny.txt'\nlinks = 'beer_tiny.txt'\n", "unknown setting"),
        ("[[source]]\nkind = 'graphs'\nleft = 'beer_tiny.txt'\nright = 'beer_tiny.txt'\n", "needs links"),
        ("[[source]]\nkind = 'graphs'\nleft = 'beer_tiny.txt'\nright = 'beer_tiny.txt'\nlinks = 'beer_tiny.txt'\nseed_share = 1.5\n", "seed_share must be a number from 0 to 0.9"),
        ("[[source]]\nkind = 'pairs'\nfile = 'beer_tiny.txt'\nseed_share = 0.3\n", "unknown setting 'source 'pairs-1'.seed_share'"),
        ("[[source]]\nname='a'\nkind = 'pairs'\nfile = 'beer_tiny.txt'\n[[source]]\nname='a'\nkind = 'pairs'\nfile = 'beer_tiny.txt'\n", "two sources are named 'a'"),
        ("[[source]\n", "not valid TOML"),
    ],
)
def test_recipe_mistakes_are_one_line_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "beer_tiny.txt").write_bytes((PAIRS / "beer_tiny.txt").read_bytes())
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_recipe(path)
    assert str(path) in str(caught.value) and message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.fixture(scope="module")
def recipe(persons, tmp_path_factory):
    folder = tmp_path_factory.mktemp("recipe")
    (folder / "beer_tiny.txt").write_bytes((PAIRS / "beer_tiny.txt").read_bytes())
    return load_recipe(_write(folder, _recipe_text(persons)))


@pytest.fixture(scope="module")
def data(recipe, embedder):
    return recipe_data(recipe, embedder=embedder)


def test_recipe_reads_relative_paths_and_its_settings(recipe) -> None:
    assert [s.name for s in recipe.sources] == ["persons", "abt-buy", "beer"]
    assert recipe.sources[2].options["file"] == str(recipe.path.parent / "beer_tiny.txt")
    assert recipe.questions.options == 3 and recipe.train["max_steps"] == 2


def test_graph_source_questions_are_the_gold_recipe_questions(data, persons, embedder) -> None:
    config = DataConfig(question="choice", options=3, permutations=2)
    align_config = AlignConfig(judge="none", attributes=("given_name", "surname"), retrieval=RetrievalConfig(k=10))
    gold = gold_data(persons["left"], persons["right"], persons["gold"], config, align_config, embedder=embedder)
    ours = [e for e in data.train if e.group == "persons"]
    # Capped to 6 questions: whole source entities (2 orders each), in the gold recipe's order.
    assert len(ours) == 6
    assert {(e.question.messages()[-1]["content"], e.answer) for e in ours} <= {(e.question.messages()[-1]["content"], e.answer) for e in gold.train}
    assert len({e.source for e in ours}) == 3


def test_pair_sources_ask_as_kgalign_pairs_asks(data, embedder) -> None:
    from kgalign.io.pairs import read_pair_file

    abt = [e for e in data.train if e.group == "abt-buy"]
    plain = pairs_data(PAIRS / "abt_buy_test.txt", DataConfig(question="choice", options=3, permutations=2, none_share=0.0), PAIRS / "abt_buy_valid.txt", embedder=embedder)
    # weight 1.5: every question once, and half of them once more.
    assert len(abt) == len(plain.train) + round(len(plain.train) * 0.5)
    file = read_pair_file(PAIRS / "abt_buy_test.txt")
    labels = {(p.left, p.right): p.label for p in file.pairs}
    for example in abt:
        shown = example.order
        assert all((example.source, right) in labels for right in shown)  # options are the file's pairs only
        if example.target is None:
            assert not any(labels[(example.source, right)] for right in shown)
            assert example.answer == example.question.none_letter
        else:
            assert labels[(example.source, example.target)] == 1
    # Validation from the valid file, and every source represented at the head of the list.
    assert {e.group for e in data.val[:3]} == {"persons", "abt-buy", "beer"}
    assert data.inputs["sources"]["abt-buy"]["val_questions"] == len(plain.val)


def test_recipe_training_reports_each_source(persons, small_lm: Path, tmp_path: Path) -> None:
    path = _persons_recipe(persons, tmp_path)
    out = tmp_path / "adapter"
    result = cli(["finetune", "--recipe", path, "-o", out, "--threads", "1", "--max-steps", "1", "--model", small_lm])
    assert result.exit_code == 0, result.output
    for name in ("persons", "abt-buy", "beer"):
        assert f"source {name}: validation accuracy" in result.output
    meta = json.loads((out / METADATA_FILE).read_text())
    assert meta["steps"] == 1  # the command line overrides the recipe's max_steps
    assert meta["train"]["batch_size"] == 2 and meta["train"]["lora_layers"] == 2  # the recipe's [train]
    assert set(meta["after"]["accuracy_by_source"]) == {"persons", "abt-buy", "beer"}
    assert meta["data"]["inputs"]["sources"]["persons"]["cap"] == 6
    assert (out / "adapter_model.safetensors").is_file()


def test_recipe_excludes_single_source_arguments(persons, tmp_path: Path) -> None:
    path = _persons_recipe(persons, tmp_path)
    result = cli(["finetune", persons["left"], persons["right"], "--recipe", path, "-o", tmp_path / "a"])
    assert result.exit_code == 2 and "--recipe names its own sources" in result.output


def test_without_leaves_a_source_out(recipe) -> None:
    assert [s.name for s in recipe.without(["beer"]).sources] == ["persons", "abt-buy"]
    with pytest.raises(ConfigError, match="no source named 'wine'"):
        recipe.without(["wine"])
    with pytest.raises(ConfigError, match="leaves no source"):
        recipe.without(["persons", "abt-buy", "beer"])


@pytest.mark.parametrize("name", ["cross-domain", "pairwise", "pairwise-cpu"])
def test_the_shipped_recipes_read_only_training_splits(name: str) -> None:
    path = Path(__file__).resolve().parent.parent / "examples" / "recipes" / f"{name}.toml"
    text = path.read_text(encoding="utf-8")
    assert "test.txt" not in text and "gold_test" not in text and "leipzig" not in text and "oaei" not in text
    data_root = path.parent.parent.parent.parent / "shared" / "data"
    if not data_root.is_dir():
        absent(f"{data_root}: the benchmarks are not beside this checkout")
    recipe = load_recipe(path)
    assert {s.name for s in recipe.sources} >= {"dbp15k", "abt-buy", "beer"}
    assert all(Path(s.options.get("file", "train.txt")).name in ("train.txt",) for s in recipe.sources)


def test_saved_questions_read_back_as_built(data, tmp_path: Path) -> None:
    from kgalign.finetune.store import load_questions, save_questions

    path = save_questions(data, tmp_path / "q.jsonl.gz", {"max_steps": 2, "batch_size": 2})
    back, train = load_questions(path)
    assert back.train == data.train and back.val == data.val  # every question, answer, source and group
    assert back.fingerprint() == data.fingerprint() and back.config == data.config
    # The fingerprint is kept per training list: another list is digested again.
    assert replace(data, train=data.train[:-1]).fingerprint() != data.fingerprint() == data.fingerprint()
    assert [e.question.messages() for e in back.train] == [e.question.messages() for e in data.train]
    assert train == {"max_steps": 2, "batch_size": 2}
    assert back.inputs["sources"] == data.inputs["sources"] and back.inputs["questions_file"] == str(path)


def test_a_damaged_question_file_stops_in_one_line(data, tmp_path: Path) -> None:
    import gzip

    from kgalign.errors import InputError
    from kgalign.finetune.store import load_questions, save_questions

    path = save_questions(data, tmp_path / "q.jsonl.gz")
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    cases = {
        "truncated": ("\n".join(lines[:-1]) + "\n", "differ from those written"),
        "bad-json": ("\n".join([*lines[:3], "{oops", *lines[4:]]) + "\n", ":4: not valid JSON"),
        "bad-answer": ("\n".join([*lines[:-1], lines[-1].replace('"answer": "', '"answer": "Z', 1)]) + "\n", "is not one of the question's letters"),
        "not-ours": ('{"format": "something"}\n', ":1: not a kgalign question file"),
    }
    for name, (text, message) in cases.items():
        bad = tmp_path / f"{name}.jsonl.gz"
        bad.write_bytes(gzip.compress(text.encode()))
        with pytest.raises(InputError) as caught:
            load_questions(bad)
        assert str(bad) in str(caught.value) and message in str(caught.value), name
        assert "\n" not in str(caught.value)
    plain = tmp_path / "plain.txt"
    plain.write_text("not gzip")
    with pytest.raises(InputError, match="not a readable question file"):
        load_questions(plain)


def test_questions_built_here_train_elsewhere(persons, small_lm: Path, tmp_path: Path) -> None:
    path = _persons_recipe(persons, tmp_path)
    saved = tmp_path / "q.jsonl.gz"
    built = cli(["finetune", "--recipe", path, "--save-questions", saved, "--quiet"])
    assert built.exit_code == 0, built.output
    assert f"-> {saved}" in built.output and saved.is_file()
    assert not (tmp_path / "adapter").exists()
    out = tmp_path / "adapter"
    result = cli(["finetune", "--questions", saved, "-o", out, "--threads", "1", "--quiet", "--max-steps", "1", "--model", small_lm])
    assert result.exit_code == 0, result.output
    meta = json.loads((out / METADATA_FILE).read_text())
    assert meta["steps"] == 1 and meta["train"]["batch_size"] == 2 and meta["train"]["lora_layers"] == 2  # the recipe's [train]
    assert set(meta["after"]["accuracy_by_source"]) == {"persons", "abt-buy", "beer"}
    assert meta["data"]["inputs"]["questions_file"] == str(saved)
    refused = cli(["finetune", "--questions", saved, "--recipe", path, "-o", tmp_path / "b"])
    assert refused.exit_code == 2 and "--questions is a built question set" in refused.output
    no_output = cli(["finetune", "--recipe", path])
    assert no_output.exit_code == 2 and "give -o ADAPTER_DIR" in no_output.output


def test_max_none_share_rebalances_a_pair_source(persons, tmp_path: Path, embedder) -> None:
    (tmp_path / "beer_tiny.txt").write_bytes((PAIRS / "beer_tiny.txt").read_bytes())
    base = _recipe_text(persons)
    plain = recipe_data(load_recipe(_write(tmp_path, base)), embedder=embedder)
    text = base.replace("weight = 1.5\n", "weight = 1.5\nmax_none_share = 0.2\n")
    text = text.replace('file = "beer_tiny.txt"\n', 'file = "beer_tiny.txt"\nmax_none_share = 0.0\n')
    rebalanced = recipe_data(load_recipe(_write(tmp_path, text)), embedder=embedder)

    def share(examples: list, group: str) -> tuple[int, int]:
        mine = [e for e in examples if e.group == group]
        return sum(1 for e in mine if e.target is None), len(mine)

    for part in ("train", "val"):  # validation too, so that the best step is chosen on the same mix
        none, total = share(getattr(plain, part), "abt-buy")
        assert none / total > 0.2  # the file as built: more "none" than the cap (else the test shows nothing)
        kept_none, kept = share(getattr(rebalanced, part), "abt-buy")
        assert 0 < kept_none and kept_none / kept <= 0.2
        answered = [{e.source for e in getattr(r, part) if e.group == "abt-buy" and e.target is not None} for r in (plain, rebalanced)]
        assert answered[0] == answered[1]  # every answered source kept (the weight's extra copies are drawn anew)
        # Whole source entities: every order of a kept "none" source stays.
        sources = {e.source for e in getattr(rebalanced, part) if e.group == "abt-buy" and e.target is None}
        assert kept_none == sum(1 for e in getattr(plain, part) if e.group == "abt-buy" and e.source in sources)
    assert share(plain.train, "beer")[0] > 0 and share(rebalanced.train, "beer")[0] == 0
    # Other sources untouched: the same questions (the recipe's shuffle of all sources moves them).
    def persons_questions(data: Any) -> list:
        return sorted((repr(e.question), e.target or "") for e in data.train if e.group == "persons")

    assert persons_questions(rebalanced) == persons_questions(plain)
    sources = rebalanced.inputs["sources"]
    assert sources["abt-buy"]["max_none_share"] == 0.2 and sources["persons"]["max_none_share"] is None
    assert 0 < sources["abt-buy"]["none_answers"] <= share(rebalanced.train, "abt-buy")[0]  # before the weight's copies
    # With a cap too, the share holds for the questions kept (the cap takes the first ones).
    capped = recipe_data(load_recipe(_write(tmp_path, text.replace("max_none_share = 0.2\n", "max_none_share = 0.2\ncap = 9\n"))), embedder=embedder)
    counts = capped.inputs["sources"]["abt-buy"]
    assert 0 < counts["train_questions"] <= 9 and counts["none_answers"] <= 0.2 * counts["train_questions"]
    # Seeded: the same questions again.
    again = recipe_data(load_recipe(_write(tmp_path, text)), embedder=embedder)
    assert again.fingerprint() == rebalanced.fingerprint()
    bad = _write(tmp_path, base.replace("weight = 1.5\n", "weight = 1.5\nmax_none_share = 1.5\n"))
    with pytest.raises(ConfigError, match="max_none_share must be a number from 0 to 1"):
        load_recipe(bad)


def test_training_can_start_from_an_adapter(persons, small_lm: Path, tmp_path: Path) -> None:
    """On SmolLM2 cut to two layers (conftest's ``small_lm``): the mechanics of starting from an adapter."""
    from safetensors.numpy import load_file

    path = _persons_recipe(persons, tmp_path)
    saved = tmp_path / "q.jsonl.gz"
    assert cli(["finetune", "--recipe", path, "--save-questions", saved, "--quiet"]).exit_code == 0
    first = tmp_path / "first"
    # Seed 1: its LoRA weights start elsewhere than those of a fresh seed-0 run below.
    result = cli(["finetune", "--questions", saved, "-o", first, "--threads", "1", "--quiet", "--max-steps", "2", "--seed", "1", "--model", small_lm])
    assert result.exit_code == 0, result.output
    second = tmp_path / "second"
    args = ["finetune", "--questions", saved, "-o", second, "--threads", "1", "--quiet", "--max-steps", "0", "--model", small_lm]
    result = cli([*args, "--init-adapter", first])
    assert result.exit_code == 0, result.output
    meta = json.loads((second / METADATA_FILE).read_text())
    first_meta = json.loads((first / METADATA_FILE).read_text())
    # No step taken: the adapter saved is the one started from, and it scores as it did.
    assert meta["train"]["init_adapter"] == str(first)
    assert meta["before"]["accuracy_raw"] == pytest.approx(first_meta["after"]["accuracy_raw"], abs=1e-6)
    a, b = load_file(str(first / "adapter_model.safetensors")), load_file(str(second / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    fresh = cli([*args, "--force", "-o", tmp_path / "fresh"])
    assert fresh.exit_code == 0
    c = load_file(str(tmp_path / "fresh" / "adapter_model.safetensors"))
    assert any((a[k] != c[k]).any() for k in a)  # fresh LoRA weights differ
    missing = cli([*args, "--force", "--init-adapter", tmp_path / "nowhere"])
    assert missing.exit_code != 0 and "adapter folder not found" in missing.output
    # An adapter inside ADAPTER_DIR would be emptied with it before being read: refused, kept.
    inside = cli([*args, "--force", "--init-adapter", second / "best"])
    assert inside.exit_code == 1 and "lies in ADAPTER_DIR" in inside.output
    assert (second / "best" / "adapter_model.safetensors").is_file()
    resumed = cli([*args, "--resume", "--init-adapter", first])
    assert resumed.exit_code == 2 and "give one of them" in resumed.output


def _seeded_run_candidates(left: Path, right: Path, labels: dict, asked: set[str], folder: Path, embedder) -> dict[str, list[str]]:
    """The candidates `kgalign run LEFT RIGHT --seed-links SEEDS --test-gold ASKED
    --only-gold-entities` finds, the seeds being the labels not asked."""
    from kgalign.pipeline import prepare

    seeds = tuple(sorted((s, t) for s, t in labels.items() if s not in asked))
    test_gold = folder / "asked.tsv"
    test_gold.write_text("".join(f"{s}\t{labels[s]}\n" for s in sorted(asked)), encoding="utf-8")
    config = AlignConfig(judge="none", seed_links=seeds, test_gold=str(test_gold), only_gold_entities=True, retrieval=RetrievalConfig(k=10))
    return {c.source: [item.iri for item in c.items] for c in prepare(left, right, config, embedder).candidates}


@pytest.mark.parametrize("kind", ["graphs", "dbp15k"])
def test_seed_share_asks_as_a_seeded_run_asks(kind: str, persons, tmp_path: Path, monkeypatch, embedder) -> None:
    """`seed_share`: that share of a graph source's links are seed links and ask nothing;
    the others are asked among the candidates a run given those seeds finds for them, on
    the persons example (a graphs source) and a DBP15K excerpt (its train split)."""
    from kgalign.finetune.data import gold_labels

    monkeypatch.setenv("KGALIGN_CACHE", str(tmp_path / "cache"))
    if kind == "graphs":
        source = f'kind = "graphs"\nleft = "{persons["left"]}"\nright = "{persons["right"]}"\nlinks = "{persons["gold"]}"'
    else:
        source = f'kind = "dbp15k"\nfolder = "{Path(__file__).parent / "data" / "dbp15k_mini" / "dbp_fr_en"}"'
    text = "[questions]\noptions = 3\npermutations = 1\nnone_share = 0.0\n\n[[source]]\nname = \"g\"\n" + source + "\nseed_share = 0.3\n"
    recipe = load_recipe(_write(tmp_path, text))
    data = recipe_data(recipe, embedder=embedder)
    if kind == "graphs":
        left, right, links = persons["left"], persons["right"], persons["gold"]
    else:
        converted = tmp_path / "cache" / "conversions" / "dbp15k-dbp_fr_en"
        left, right, links = converted / "left.ttl", converted / "right.ttl", converted / "gold_train.tsv"
    labels, _ = gold_labels(links)
    examples = data.train + data.val
    asked = {e.source for e in examples}
    counts = data.inputs["sources"]["g"]["counts"]
    assert counts["seed_links"] == round(0.3 * len(labels)) == len(labels) - len(asked) >= 4
    candidates = _seeded_run_candidates(left, right, labels, asked, tmp_path, embedder)
    for example in examples:
        shown = {option.iri for option in example.question.options}
        assert shown - {labels[example.source]} <= set(candidates[example.source][:3]), example.source
    # Without seed_share the same sources are asked among every entity, the seeds' too.
    unseeded = recipe_data(load_recipe(_write(tmp_path, text.replace("seed_share = 0.3", "seed_share = 0"))), embedder=embedder)
    seed_rights = {t for s, t in labels.items() if s not in asked}
    assert "seed_links" not in unseeded.inputs["sources"]["g"]["counts"]
    assert any(option.iri in seed_rights for e in unseeded.train + unseeded.val for option in e.question.options)
