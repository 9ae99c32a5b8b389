"""Benchmark the first stage on real graphs of many classes and on an open-world pair.

    python -m bench.real_graphs [--data ../shared/data] [--work DIR] [--out bench/results]
                                [--options "--judge local --question pairwise"] [--only doremus,uobm,ow]

Each run is `kgalign run` in a subprocess with default options unless said (--judge none;
`--options` adds options to every run, `--only` keeps the runs whose output name starts
with one of the given stems):

- OAEI DOREMUS 4-heterogeneities (PP-2.owl, BnF-2.owl; gold: 201 pairs of works), with
  default options and with `--class .../Self_Contained_Expression`; scored on the
  links whose left entity is a gold work (the gold names works only);
- OAEI UOBM small (Abox1.nt, Abox2.nt; gold: 1,177 pairs over persons, courses,
  publications, colleges, departments): every link scored, and links per gold pair;
- the open-world pair of bench/make_open_world.py (Leipzig Abt-Buy, seed 0: a small
  catalogue against a large one, 40% of its records without a counterpart, each with a
  same-line product on the right), with and without the no-counterpart cut, with the
  cardinality detected and forced one-to-one.

Prints one markdown table (P/R/F1, links, entities per side, the cardinality and the
cut chosen, wall time) and writes OUT/real-graphs.md and OUT/real-graphs.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kgalign.evaluation.metrics import read_pairs

ROOT = Path(__file__).resolve().parent.parent
WORK_CLASS = "http://data.doremus.org/ontology/Self_Contained_Expression"


def run(left: Path, right: Path, out: Path, gold: Path, *options: str) -> dict[str, Any]:
    command = [str(Path(sys.executable).parent / "kgalign"), "run", str(left), str(right), "-o", str(out), "--force", "--quiet", "--no-cache", *options]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    info = json.loads((out / "run.json").read_text())
    links = read_pairs(out / "links.ttl")
    pairs = read_pairs(gold)
    lefts = {a for a, _ in pairs}
    scored = [p for p in links if p[0] in lefts] if "works" in out.name else links
    correct = len(set(scored) & set(pairs))
    precision = correct / len(scored) if scored else 0.0
    recall = correct / len(pairs)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    cuts = info.get("guard", {}).get("cut", [])
    return {
        "command": " ".join(["kgalign run", left.name, right.name, *options]),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "links": len(links),
        "scored_links": len(scored),
        "gold": len(pairs),
        "entities": [info["counts"]["entities_left"], info["counts"]["entities_right"]],
        "cardinality": info["cardinality"].get("choice") or info["cardinality"].get("resolve"),
        "cut": [{key: cut.get(key, 0) for key in ("cut", "unlinked", "no_counterpart", "sources")} for cut in cuts if cut.get("unlinked")],
        "warnings": info.get("warnings", []),
        "llm_questions": info["counts"].get("llm_questions", 0),
        "judge_s": round(info.get("stages", {}).get("judge", {}).get("seconds", 0.0), 1),
        "judge_check": info.get("judge_check"),
        "wall_s": round(wall, 1),
    }


def _check(check: dict[str, Any] | None) -> str:
    if not check:
        return "none"
    auc = "n/a" if check["auc"] is None else f"{check['auc']:.3f}"
    return f"AUC {auc} vs {check['required']:.3f}: {'trusted' if check['passed'] else 'not trusted'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="folder of the public benchmarks (../shared/data)")
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "kgalign-real-graphs", help="run outputs and the open-world pair")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="where real-graphs.md and real-graphs.json go")
    parser.add_argument("--options", default="", help="options added to every `kgalign run`, e.g. \"--judge local --question pairwise\"")
    parser.add_argument("--only", default="", help="comma-separated stems (doremus, uobm, ow): run only these")
    parser.add_argument("--name", default="real-graphs", help="file name of the results, without suffix")
    args = parser.parse_args()
    extra = tuple(shlex.split(args.options))
    only = tuple(stem for stem in args.only.split(",") if stem)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    doremus, uobm = args.data / "oaei_doremus_4het", args.data / "oaei_uobm_small"
    subprocess.run([sys.executable, "-m", "bench.make_open_world", str(work / "open-world")], check=True, capture_output=True)
    ow = work / "open-world"
    rows: list[tuple[str, str, dict[str, Any]]] = []
    plan = [
        ("DOREMUS 4-het., works", "default", (doremus / "PP-2.owl", doremus / "BnF-2.owl", "doremus-works", doremus / "refalign.rdf", ())),
        ("DOREMUS 4-het., works", "--class works", (doremus / "PP-2.owl", doremus / "BnF-2.owl", "doremus-class-works", doremus / "refalign.rdf", ("--class", WORK_CLASS))),
        ("UOBM small", "default", (uobm / "Abox1.nt", uobm / "Abox2.nt", "uobm", uobm / "refalign.rdf", ())),
        ("open-world Abt-Buy", "default (cut)", (ow / "left.csv", ow / "right.csv", "ow", ow / "gold.tsv", ())),
        ("open-world Abt-Buy", "--no-cut", (ow / "left.csv", ow / "right.csv", "ow-no-cut", ow / "gold.tsv", ("--no-cut",))),
        ("open-world Abt-Buy", "--resolve 1:1 (cut)", (ow / "left.csv", ow / "right.csv", "ow-11", ow / "gold.tsv", ("--resolve", "1:1"))),
        ("open-world Abt-Buy", "--resolve 1:1 --no-cut", (ow / "left.csv", ow / "right.csv", "ow-11-no-cut", ow / "gold.tsv", ("--resolve", "1:1", "--no-cut"))),
    ]
    for name, setting, (left, right, stem, gold, options) in plan:
        if only and not stem.startswith(only):
            continue
        options = (*options, *extra)
        print(f"running {name} ({setting})", file=sys.stderr, flush=True)
        rows.append((name, setting, run(left, right, work / stem, gold, *options)))
    lines = [
        f"`python -m bench.real_graphs{' --options ' + shlex.quote(args.options) if args.options else ''}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} ({args.options or '--judge none'}; 2-core CPU)",
        "",
        "| data | setting | P | R | F1 | links (scored) | gold | entities left x right | cardinality | no-counterpart cut (links taken away / est. unmatched / sources) | LLM questions | judge check | judge s | wall s |",
        "|---|---|---:|---:|---:|---:|---:|---|---|---|---:|---|---:|---:|",
    ]
    for name, setting, r in rows:
        cut = "; ".join(f"{c['cut']:.3f} ({c['unlinked']} / {c['no_counterpart']:.0f} / {c['sources']})" for c in r["cut"]) or "none"
        lines.append(
            f"| {name} | {setting} | {r['precision']:.4f} | {r['recall']:.4f} | **{r['f1']:.4f}** | {r['links']:,} ({r['scored_links']:,}) | {r['gold']:,} | "
            f"{r['entities'][0]:,} x {r['entities'][1]:,} | {r['cardinality']} | {cut} | {r['llm_questions']:,} | {_check(r['judge_check'])} | {r['judge_s']} | {r['wall_s']} |"
        )
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.md").write_text(text, encoding="utf-8")
    (args.out / f"{args.name}.json").write_text(json.dumps([{"data": n, "setting": s, **r} for n, s, r in rows], indent=2) + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
