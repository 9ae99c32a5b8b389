"""Benchmark `kgalign run --since OLD` against a full run on the same final inputs.

    python -m bench.incremental [--data ../shared/data] [--work DIR] [--datasets dbp15k,abt-buy,restaurants]
                                [--seed 0] [--added 0.1] [--edited 0.01] [--judge "local"]
                                [--out bench/results] [--stem incremental]

Each dataset's two graphs (converted as bench/table.py does) are split by entity, with
a seed: the base holds 90% of each side's entities; the final inputs hold the base
plus the other 10%, with 1% of the base entities changed (one literal value edited)
and 1% removed (the issue's split; `--added` and `--edited` give other shares). Three
runs of the real command in child processes, with the options of bench/table.py's
protocol:

1. base: the base inputs, into OLD;
2. since: the final inputs with --since OLD, into NEW;
3. full: the final inputs into a fresh folder (an empty judge answer cache), as a user
   without --since would run them.

The since and full runs each start from the sentence-vector cache the base run left
(a copy each), so that neither is given the vectors the other computed.

Reported per dataset and judge: the share of source entities whose links in NEW equal
those of the full run, F1 of both, wall time of both and their ratio, LLM questions of
both, the texts each run embedded, the seconds of each stage, and what changes.jsonl
lists. DBP15K and Abt-Buy run with --judge none (what the
tables report); Restaurants with --judge local --no-gate (every source asked, where
reusing the judge's answers is what --since is for) and --class Restaurant (see
CLASSES). `--judge` gives every dataset the same judge options instead (for instance
"local": the shipped cross-domain adapter, asked about contested sources only). Writes
OUT/STEM.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyoxigraph as ox

from bench import table
from kgalign.incremental.since import ASKED_REASONS, SINCE_FILE, STATISTICS_REASONS

ROOT = Path(__file__).resolve().parent.parent
JUDGES = {"dbp15k": ["--judge", "none"], "abt-buy": ["--judge", "none"], "restaurants": ["--judge", "local", "--question", "choice", "--no-gate"]}
# Restaurants by class: without it, an address whose restaurant is held out has no one
# pointing to it and becomes an entity of its own in the base version.
RESTAURANT = "http://www.okkam.org/ontology_restaurant{}.owl#Restaurant"
CLASSES = {"restaurants": ["--class", RESTAURANT.format(1), "--class", RESTAURANT.format(2)]}
STAGES = ("load", "select", "cardinality", "embed", "retrieve", "keep", "judge", "resolve", "fuse", "since", "write")


def _part(count: int, share: float) -> int:
    return int(count * share + 1e-9)


def split(source: Path, base: Path, final: Path, rng: random.Random, classes: list[str] | None = None, added: float = 0.1, edited: float = 0.01) -> dict[str, int]:
    """Write the base and final versions of one graph (see the module text): the final
    version adds a share ``added`` of the entities to the base, changes a share ``edited``
    of the base's and removes as many; return the counts."""
    triples = [ox.Triple(q.subject, q.predicate, q.object) for q in ox.parse(path=str(source))]
    by_subject: dict[Any, list[ox.Triple]] = defaultdict(list)
    for triple in triples:
        by_subject[triple.subject].append(triple)
    # The entities kgalign aligns (an address folded into its restaurant is not one: it
    # stays with the graph, as a record's sub-node does when the record is edited).
    from kgalign.io.entities import load_entities

    _, entity_table = load_entities(source, "split", classes=classes)
    entities = sorted((ox.NamedNode(iri) for iri in entity_table.entities), key=str)
    rng.shuffle(entities)
    held = set(entities[: _part(len(entities), added)])
    rest = entities[len(held) :]
    changed = set(rest[: max(1, _part(len(rest), edited))])
    removed = set(rest[len(changed) : len(changed) + len(changed)])
    base_triples = [t for t in triples if t.subject not in held]
    final_triples = []
    edited: set[Any] = set()
    for t in triples:
        if t.subject in removed:
            continue
        if t.subject in changed and t.subject not in edited and isinstance(t.object, ox.Literal):
            t = ox.Triple(t.subject, t.predicate, ox.Literal(t.object.value + " (revised)", language=t.object.language))
            edited.add(t.subject)
        final_triples.append(t)
    ox.serialize(base_triples, output=str(base), format=ox.RdfFormat.N_TRIPLES)
    ox.serialize(final_triples, output=str(final), format=ox.RdfFormat.N_TRIPLES)
    return {"entities": len(entities), "added": len(held), "changed": len(changed), "removed": len(removed)}


def links_by_source(outdir: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    with (outdir / "links.ttl").open("rb") as handle:
        for quad in ox.parse(handle, format=ox.RdfFormat.TURTLE):
            found[quad.subject.value].add(quad.object.value)
    return found


def bench(
    key: str, data: Path, work: Path, seed: int, judge: list[str] | None = None, added: float = 0.1, edited: float = 0.01, keep: list[float] | None = None
) -> dict[str, Any]:
    dataset = {d.key: d for d in table.DATASETS}[key]
    inputs = dataset.prepare(data, work)
    folder = work / "incremental" / key
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    counts = {}
    for side, path in (("left", inputs.left), ("right", inputs.right)):
        classes = CLASSES.get(key, [])[1::2] or None
        counts[side] = split(path, folder / f"{side}-base.nt", folder / f"{side}-final.nt", rng, classes, added, edited)
    judge = judge or JUDGES[key]
    args = [*inputs.args, *judge, *CLASSES.get(key, [])]
    base = table.RunInputs(folder / "left-base.nt", folder / "right-base.nt", [a for a in args], inputs.golds)
    final = table.RunInputs(folder / "left-final.nt", folder / "right-final.nt", args, inputs.golds)
    old, new, full = folder / "old", folder / "new", folder / "full"
    # Each run's vector cache as the user's would be: the base run starts empty; the
    # since and full runs each start from what the base run left (neither gets the
    # other's new vectors). The converted judge model is shared.
    cache, after_base = folder / "vector-cache", folder / "vectors-after-base"
    records = {}
    fresh_cache(cache, None)
    records["base"] = run(base, old, [], cache)
    shutil.rmtree(after_base, ignore_errors=True)
    shutil.copytree(cache / "vectors", after_base) if (cache / "vectors").is_dir() else after_base.mkdir()
    fresh_cache(cache, after_base)
    records["since"] = run(final, new, ["--since", str(old)], cache)
    fresh_cache(cache, after_base)
    records["full"] = run(final, full, [], cache)
    kept = []
    for value in keep or []:
        outdir = folder / f"kept-{value:g}"
        fresh_cache(cache, after_base)
        record = run(final, outdir, ["--since", str(old), "--keep-earlier", str(value)], cache)
        share, differing, _ = equal_links(outdir, full)
        kept.append(
            {
                "keep_earlier": value,
                "kept": json.loads((outdir / "run.json").read_text())["counts"]["kept"],
                "equal_links_share": share,
                "differing_sources_all": differing,
                "f1": record["f1"],
                "wall_s": record["wall_s"],
                "speedup": round(records["full"]["wall_s"] / record["wall_s"], 2),
                "llm_questions": record["llm_questions"],
                "stages": record["stages"],
            }
        )
    share, differing, sources = equal_links(new, full)
    since = json.loads((new / "run.json").read_text())["since"]
    moved = statistics_only(old, new, full)
    return {
        "dataset": dataset.title,
        "judge": " ".join(judge),
        "split": counts,
        "sources_with_links": sources,
        "equal_links_share": share,
        "differing_sources": differing[:20],
        "f1": {name: records[name]["f1"] for name in records},
        "wall_s": {name: records[name]["wall_s"] for name in records},
        "llm_questions": {name: records[name]["llm_questions"] for name in records},
        "vectors_computed": {name: records[name]["vectors_computed"] for name in records},
        "stages": {name: records[name]["stages"] for name in records},
        "speedup": round(records["full"]["wall_s"] / records["since"]["wall_s"], 2),
        "since": since,
        "statistics_only": moved,
        "kept": kept,
    }


def equal_links(outdir: Path, full: Path) -> tuple[float, list[str], int]:
    """The share of sources (with a link in either folder) linked alike in both, the
    others, and how many sources have a link in either."""
    mine, theirs = links_by_source(outdir), links_by_source(full)
    sources = set(mine) | set(theirs)
    differing = sorted(s for s in sources if mine.get(s, set()) != theirs.get(s, set()))
    return (round(1 - len(differing) / len(sources), 6) if sources else 1.0), differing, len(sources)


#: The reasons of ``judge_asked`` that no change of the source or of an option explains.
STATISTICS_ONLY = STATISTICS_REASONS


def _votes(outdir: Path) -> dict[str, dict[str, Any]]:
    from kgalign.review.votes import read_votes

    return {record["source"]: record for record in read_votes(outdir / "votes.jsonl")}


def statistics_only(old: Path, new: Path, full: Path) -> dict[str, int]:
    """What keeping the earlier decisions of the sources asked again for the statistics
    alone (:data:`STATISTICS_ONLY`) would have saved and cost: those sources, the
    update's LLM questions about them, and how many of them the full run decided
    otherwise than the earlier run (another kind or target), or linked otherwise (the
    target after resolution; a link resolution would move elsewhere is not counted)."""
    asked = set()
    with (new / SINCE_FILE).open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if record["change"] == "judge_asked" and record["reason"] in STATISTICS_ONLY:
                asked.add(record["left"])
    if not asked:
        return {"sources": 0, "questions": 0, "decided_otherwise": 0, "linked_otherwise": 0}
    before, now, after = _votes(old), _votes(new), _votes(full)
    sources = sorted(s for s in asked if s in before and s in after)
    otherwise = {s for s in sources if (before[s]["decision"], before[s]["target"]) != (after[s]["decision"], after[s]["target"])}
    options = json.loads((old / "run.json").read_text())["config"]["vote"]["options"]
    shifts: dict[str, list[float]] = {"otherwise": [], "alike": []}
    for s in sources:
        shifts["otherwise" if s in otherwise else "alike"].append(score_shift(before[s]["candidates"], now[s]["candidates"], options))
    confident = [s for s in sources if before[s]["confidence"] >= CONFIDENT]
    return {
        "sources": len(sources),
        "questions": sum(1 for s in sources for r in now[s]["rounds"] if not r.get("cached")),
        "decided_otherwise": len(otherwise),
        "linked_otherwise": sum(1 for s in sources if before[s]["linked"] != after[s]["linked"]),
        "confident": len(confident),
        "confident_decided_otherwise": len(otherwise.intersection(confident)),
        "score_shift": {kind: sorted(values) for kind, values in shifts.items()},
    }


#: The earlier confidence statistics_only splits the sources at.
CONFIDENT = 0.5


def score_shift(before: list[dict[str, Any]], now: list[dict[str, Any]], options: int) -> float:
    """The largest change of a retrieval score among the options shown before or now
    (the first ``options`` candidates) that both runs retrieved (0.0 where none)."""
    earlier, later = ({c["iri"]: float(c["score"]) for c in items} for items in (before, now))
    shown = {c["iri"] for c in before[:options]} | {c["iri"] for c in now[:options]}
    return round(max((abs(later[iri] - earlier[iri]) for iri in shown if iri in earlier and iri in later), default=0.0), 6)


def fresh_cache(cache: Path, vectors: Path | None) -> None:
    """``cache`` as a KGALIGN_CACHE holding ``vectors`` (or none) and the shared converted models."""
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    shared = Path(os.environ.get("KGALIGN_CACHE") or Path.home() / ".cache" / "kgalign") / "models"
    if shared.is_dir():
        (cache / "models").symlink_to(shared.resolve())
    if vectors is not None:
        shutil.copytree(vectors, cache / "vectors")


def run(inputs: table.RunInputs, outdir: Path, extra: list[str], cache: Path) -> dict[str, Any]:
    """`kgalign run` in a child process, its answer cache in its own folder (so NEW can reuse OLD's)."""
    import subprocess
    import time

    shutil.rmtree(outdir, ignore_errors=True)
    command = [*table.kgalign_command(), "--log-level", "info", "run", str(inputs.left), str(inputs.right), "-o", str(outdir), "--quiet", *inputs.args, *extra]
    print("running: " + " ".join(command), file=sys.stderr, flush=True)
    with table.heavy_lock():
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, COLUMNS="300", KGALIGN_CACHE=str(cache)))
        wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{outdir}: exit {done.returncode}: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ''}")
    info = json.loads((outdir / "run.json").read_text())
    counts = info["counts"]
    return {
        "wall_s": round(wall, 2),
        "f1": info["metrics"]["f1"],
        "llm_questions": counts["llm_questions"],
        "cache_hits": counts["cache_hits"],
        "vectors_computed": counts["vectors_computed"],
        "vectors_read": counts["vectors_read"],
        "stages": {name: stage["seconds"] for name, stage in info["stages"].items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="Folder of the public benchmarks (default: ../shared/data).")
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "kgalign-incremental-bench", help="Working folder.")
    parser.add_argument("--datasets", default="dbp15k,abt-buy,restaurants", help="Datasets of bench/table.py (default: dbp15k,abt-buy,restaurants).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the split (default: 0).")
    parser.add_argument("--added", type=float, default=0.1, help="Share of each side's entities the final inputs add to the base (default: 0.1).")
    parser.add_argument("--edited", type=float, default=0.01, help="Share of the base's entities the final inputs change, and as many they remove (default: 0.01).")
    parser.add_argument("--judge", default=None, help='Judge options for every dataset, as one string (e.g. "local" or "local --no-gate"; default: each dataset\'s own, see the module text).')
    parser.add_argument(
        "--keep-earlier",
        default="",
        help="Comma-separated confidences: for each, one more since run with --keep-earlier CONFIDENCE, compared with the same full run (default: none).",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="Where STEM.md and STEM.json go.")
    parser.add_argument("--stem", default="incremental", help="Name of the result files (default: incremental).")
    args = parser.parse_args(argv)
    keep = [float(value) for value in args.keep_earlier.split(",") if value]
    rows = []
    for key in [k for k in args.datasets.split(",") if k]:
        rows.append(bench(key, args.data, args.work, args.seed, ["--judge", *args.judge.split()] if args.judge else None, args.added, args.edited, keep))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    publish(rows, args)
    return 0


def publish(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """Write OUT/STEM.md (the tables) and OUT/STEM.json (``rows``)."""
    lines = [
        f"`python -m bench.incremental --datasets {args.datasets} --seed {args.seed}"
        + (f" --added {args.added:g}" if args.added != 0.1 else "")
        + (f" --edited {args.edited:g}" if args.edited != 0.01 else "")
        + (f' --judge "{args.judge}"' if args.judge else "")
        + (f" --keep-earlier {args.keep_earlier}" if args.keep_earlier else "")
        + (f" --stem {args.stem}" if args.stem != "incremental" else "")
        + "`",
        "",
        "| data | judge | added / changed / removed (left; right) | sources with equal links | F1 since | F1 full | s since | s full | full / since | LLM questions since / full | texts embedded base / since / full |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        s = row["split"]
        change = "; ".join(f"{s[side]['added']} / {s[side]['changed']} / {s[side]['removed']}" for side in ("left", "right"))
        lines.append(
            f"| {row['dataset']} | {row['judge']} | {change} | {row['equal_links_share']:.2%} | {row['f1']['since']:.4f} | {row['f1']['full']:.4f} | "
            f"{row['wall_s']['since']:.1f} | {row['wall_s']['full']:.1f} | {row['speedup']:.2f}x | {row['llm_questions']['since']} / {row['llm_questions']['full']} "
            f"| {' / '.join(str(row['vectors_computed'][name]) for name in ('base', 'since', 'full'))} |"
        )
    lines += _head(
        "Seconds per stage (run.json) of the since and full runs; since: the comparison with OLD (entities, links, clusters, why each source was asked); other: the rest of the wall time (the start of Python and the imports, reading the options and OLD's run.json, entity state and links):",
        ["data", "run"],
        [*STAGES, "other", "wall"],
    )
    for row in rows:
        for name in ("since", "full"):
            stages, wall = row["stages"][name], row["wall_s"][name]
            cells = [f"{stages.get(stage, 0.0):.2f}" for stage in STAGES] + [f"{wall - sum(stages.values()):.2f}", f"{wall:.2f}"]
            lines.append(f"| {row['dataset']} | {name} | " + " | ".join(cells) + " |")
    asked_rows = [row for row in rows if row["since"].get("asked")]
    if asked_rows:
        lines += _head(
            "Sources the since run asked the judge about (a round not answered from OLD's answers), by the first reason that applies (run.json `since.asked`):",
            ["data"],
            [*ASKED_REASONS, "sources asked"],
        )
        for row in asked_rows:
            asked = row["since"]["asked"]
            lines.append(f"| {row['dataset']} | " + " | ".join(str(asked.get(reason, 0)) for reason in ASKED_REASONS) + f" | {sum(asked.values())} |")
        lines += _head(
            "The sources asked again for the statistics alone (the last two reasons): had the update kept their earlier decisions, it would have saved their questions, "
            "and left these sources decided or linked otherwise than the full run decides and links them (decided: kind or target of the vote; linked: the target after resolution):",
            ["data"],
            ["sources", "LLM questions", "of the update's", "decided otherwise", "linked otherwise", "of all sources with links"],
        )
        for row in asked_rows:
            moved = row.get("statistics_only") or {}
            if moved.get("sources"):
                lines.append(
                    f"| {row['dataset']} | {moved['sources']} | {moved['questions']} | {moved['questions'] / max(1, row['llm_questions']['since']):.0%} | "
                    f"{moved['decided_otherwise']} | {moved['linked_otherwise']} | {moved['linked_otherwise'] / max(1, row['sources_with_links']):.2%} |"
                )
        lines += _head(
            f"What tells those the full run decides otherwise: the earlier decision's confidence (below or at least {CONFIDENT:g}), or the largest change of a retrieval score "
            "among the options shown before or now (median and largest, of the sources decided alike and of those decided otherwise):",
            ["data"],
            [f"confidence < {CONFIDENT:g}: otherwise / sources", f"confidence >= {CONFIDENT:g}: otherwise / sources", "score shift, alike: median / max", "score shift, otherwise: median / max"],
        )
        for row in asked_rows:
            moved = row.get("statistics_only") or {}
            if moved.get("sources") and "score_shift" in moved:
                low, low_otherwise = moved["sources"] - moved["confident"], moved["decided_otherwise"] - moved["confident_decided_otherwise"]
                lines.append(
                    f"| {row['dataset']} | {low_otherwise} / {low} | {moved['confident_decided_otherwise']} / {moved['confident']} | "
                    f"{_spread(moved['score_shift']['alike'])} | {_spread(moved['score_shift']['otherwise'])} |"
                )
    kept_rows = [(row, kept) for row in rows for kept in row.get("kept", [])]
    if kept_rows:
        lines += _head(
            "Since runs with --keep-earlier (kgalign.incremental.keep) against the same full run: the decisions only the updated statistics moved, "
            "kept without a question where the judge made them with at least that confidence:",
            ["data", "--keep-earlier"],
            ["decisions kept", "sources with equal links", "linked otherwise", "F1 since", "F1 full", "s since", "s full", "full / since", "LLM questions since / full"],
        )
        for row, kept in kept_rows:
            lines.append(
                f"| {row['dataset']} | {kept['keep_earlier']:g} | {kept['kept']} | {kept['equal_links_share']:.2%} | {len(kept['differing_sources_all'])} | "
                f"{kept['f1']:.4f} | {row['f1']['full']:.4f} | {kept['wall_s']:.1f} | {row['wall_s']['full']:.1f} | {kept['speedup']:.2f}x | "
                f"{kept['llm_questions']} / {row['llm_questions']['full']} |"
            )
    table.publish(args.out, args.stem, "\n".join(lines), rows)


def _spread(values: list[float]) -> str:
    """The median and largest of sorted ``values``, or a dash."""
    return f"{values[len(values) // 2]:.4f} / {values[-1]:.4f}" if values else "-"


def _head(caption: str, names: list[str], numbers: list[str]) -> list[str]:
    """A blank line, ``caption``, and the head of a table: ``names`` columns, then right-aligned ``numbers`` columns."""
    return ["", caption, "", "| " + " | ".join([*names, *numbers]) + " |", "|" + "---|" * len(names) + "---:|" * len(numbers)]


if __name__ == "__main__":
    raise SystemExit(main())
