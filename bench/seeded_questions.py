"""Does a graph source's training question set ask what a seeded run asks? (``seed_share``)

    python -m bench.seeded_questions [--recipe examples/recipes/pairwise-cpu.toml] \\
        [--source dbp15k --source srprs] [--seed-share 0.3] [--adapter pairwise] [--sources 150]

For each graph source of the recipe, its record-pair questions are built twice from its
training links alone: as the recipe builds them by default (candidates retrieved over
every entity, no seed links) and with ``seed_share`` (that share of the links as seed
links, the others asked among themselves, as ``kgalign run --seed-links
--only-gold-entities`` asks about a test split). Mining and attribute pairs are off, so
both sets hold each asked source's match and its hardest non-matches.

The same held-out sources are compared: those of the default set's validation split
(never trained on by an adapter trained on that recipe) that the seeded set asks too, at
most ``--sources`` of them. The script prints, per source and kind of set, the share of
non-matches the two sets share, and the judge's ROC AUC, best F1 and mean probability of
yes on the non-matches, answered in float32 by SmolLM2 with ``--adapter``. No test split
is read.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

DEFAULT_RECIPE = Path(__file__).resolve().parent.parent / "examples" / "recipes" / "pairwise-cpu.toml"


def _questions(recipe: Any, name: str, seed_share: float, embedder: Any) -> tuple[list[Any], set[str]]:
    """The source's questions (train and validation), record pairs only."""
    from kgalign.finetune.recipe import recipe_data

    source = next(s for s in recipe.sources if s.name == name)
    source = replace(source, options={**source.options, "seed_share": seed_share}, cap=None)
    one = replace(recipe, sources=(source,), questions=replace(recipe.questions, mine=False, attribute_pairs=0))
    data = recipe_data(one, embedder=embedder)
    return data.train + data.val, {e.source for e in data.val}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", type=Path, default=DEFAULT_RECIPE, help="the recipe whose graph sources are compared")
    parser.add_argument("--source", action="append", help="a graph source of the recipe (repeatable; default: every graphs or dbp15k source)")
    parser.add_argument("--seed-share", type=float, default=0.3, help="the share of the links given as seed links")
    parser.add_argument("--adapter", default="pairwise", help="adapter folder, or a shipped adapter's name, on the bundled SmolLM2")
    parser.add_argument("--sources", type=int, default=150, help="held-out sources compared per recipe source, at most")
    parser.add_argument("--out", type=Path, help="also write the figures here (JSON)")
    args = parser.parse_args(argv)

    import torch

    from bench.pairwise_threshold import figures, load_judge, yes_answers
    from kgalign.finetune.recipe import load_recipe, recipe_embedder

    torch.set_num_threads(2)
    started = time.monotonic()
    recipe = load_recipe(args.recipe)
    names = args.source or [s.name for s in recipe.sources if s.kind in ("graphs", "dbp15k")]
    embedder = recipe_embedder("cpu")
    judge = load_judge(adapter=args.adapter)
    report: dict[str, Any] = {"recipe": str(args.recipe), "adapter": args.adapter, "seed_share": args.seed_share, "sources": {}}
    for name in names:
        plain, held_out = _questions(recipe, name, 0.0, embedder)
        seeded, _ = _questions(recipe, name, args.seed_share, embedder)
        asked = sorted(held_out & {e.source for e in seeded})[: args.sources]
        chosen = set(asked)
        sets = {"default": [e for e in plain if e.source in chosen], "seeded": [e for e in seeded if e.source in chosen]}

        def negatives(examples: list[Any]) -> set[tuple[str, str]]:
            return {(e.source, e.question.options[0].iri) for e in examples if e.answer != e.question.letters[0]}

        shared = negatives(sets["default"]) & negatives(sets["seeded"])
        row: dict[str, Any] = {"held_out_sources": len(asked), "non_matches_shared": round(len(shared) / max(1, len(negatives(sets["seeded"]))), 3)}
        for kind, examples in sets.items():
            answered = yes_answers(judge, examples)
            probabilities, labels = [p for _, p, _ in answered], [label for _, _, label in answered]
            no = [p for p, label in zip(probabilities, labels) if not label]
            row[kind] = {**figures(probabilities, labels), "mean_yes_on_non_matches": round(sum(no) / max(1, len(no)), 3)}
        report["sources"][name] = row
        print(json.dumps({name: row}), flush=True)
    report["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps({"seconds": report["seconds"]}))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
