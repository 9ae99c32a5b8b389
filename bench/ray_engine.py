"""Benchmark `--engine ray` against `--engine local` on the same inputs, in the same run.

    python -m bench.ray_engine [--triples 100000,250000] [--judged] [--out bench/results]

1. The synthetic pairs of bench/make_large_pair.py at each size of --triples, `--judge
   none`: the real command in a child process per engine (bench/large.py's runner, peak
   memory polled over the whole process tree: the driver, Ray's own processes and its
   actors; the sum of PSS, each shared page counted once, and of RSS), each run with an
   empty vector cache so that every vector is computed.
2. With --judged: the persons example with the local judge asked about every source
   (`--judge local --no-gate`), where the actors answer the questions.

For each: wall time, the stages that the actors run (embed, judge), peak memory, and
whether the links and the decision log are the same files. Prints the table and writes
OUT/ray-engine.{md,json}. Ray's local instance is started by each `--engine ray` run
(no --ray-address), so its start is part of the time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import large, table

ROOT = Path(__file__).resolve().parent.parent


def _digest(folder: Path, name: str) -> str:
    if name != "votes.jsonl":
        return hashlib.sha256((folder / name).read_bytes()).hexdigest()
    records = [json.loads(line) for line in (folder / name).read_text().splitlines()]
    for record in records:
        record.pop("latency_s", None)
    return hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest()


def measure(files: dict[str, Path], work: Path, engine: str, extra: list[str]) -> dict[str, Any]:
    out = work / f"out-{engine}"
    os.environ["KGALIGN_CACHE"] = tempfile.mkdtemp(prefix=f"kgalign-ray-bench-{engine}-")
    measured = large.run_kgalign(files, out, ["--engine", engine, *extra])
    run = json.loads((out / "run.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text()) if (out / "metrics.json").is_file() else {}
    return {
        "engine": engine,
        "wall_s": measured["wall_s"],
        # The process tree (Ray's processes are not children /usr/bin/time waits for): the
        # sum of proportional memory (PSS), each shared page counted once, and of resident
        # memory (RSS), which counts the object store and libraries in every process.
        "peak_pss_mb": measured["peak_pss_mb_polled"],
        "peak_rss_mb": measured["peak_rss_mb_polled"],
        "peak_mb_time": measured.get("peak_rss_mb_time"),
        "stages": {name: stage["seconds"] for name, stage in run["stages"].items()},
        "links": run["counts"]["links"],
        "llm_questions": run["counts"]["llm_questions"],
        "f1": metrics.get("f1"),
        "engine_info": run.get("engine"),
        "digests": {name: _digest(out, name) for name in ("links.ttl", "fused.ttl", "votes.jsonl")},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--triples", default="100000,250000", help="Sizes of the synthetic pair, triples per side (comma-separated).")
    parser.add_argument("--judged", action="store_true", help="Also run the persons example with the local judge asked about every source.")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="Where ray-engine.md and .json go.")
    args = parser.parse_args(argv)

    rows: list[dict[str, Any]] = []
    for triples in [int(t) for t in args.triples.split(",") if t]:
        work = Path(tempfile.gettempdir()) / f"kgalign-large-{triples}-s0"
        files = large._pair(work, triples, 0, False)
        pair = [measure(files, work, engine, []) for engine in ("local", "ray")]
        rows.append({"data": f"synthetic, {triples:,} triples a side, --judge none", "runs": pair})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    if args.judged:
        persons = ROOT / "examples" / "persons"
        files = {"left": persons / "left.nt", "right": persons / "right.ttl", "gold": persons / "gold.tsv"}
        work = Path(tempfile.mkdtemp(prefix="kgalign-ray-bench-judged-"))
        extra = ["--judge", "local", "--question", "choice", "--no-gate"]
        pair = [measure(files, work, engine, extra) for engine in ("local", "ray")]
        rows.append({"data": "examples/persons, --judge local --no-gate", "runs": pair})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)

    lines = [
        f"`python -m bench.ray_engine --triples {args.triples}{' --judged' if args.judged else ''}` on {os.cpu_count()} CPUs "
        "(ray: a local instance started by the run, one actor per CPU)",
        "",
        "| data | engine | wall s | embed s | retrieve s | judge s | peak MB, all processes (PSS) | peak MB (RSS sum) | links | F1 | same links, fused graph, votes as local |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        local = row["runs"][0]
        for run in row["runs"]:
            same = "yes" if run["digests"] == local["digests"] else "NO: " + ", ".join(k for k in run["digests"] if run["digests"][k] != local["digests"][k])
            stages = run["stages"]
            f1 = f"{run['f1']:.4f}" if run["f1"] is not None else "-"
            lines.append(
                f"| {row['data']} | {run['engine']} | {run['wall_s']:.1f} | {stages.get('embed', 0):.1f} | {stages.get('retrieve', 0):.1f} | "
                f"{stages.get('judge', 0):.1f} | {run['peak_pss_mb']:,} | {run['peak_rss_mb']:,} | {run['links']:,} | {f1} | {'-' if run is local else same} |"
            )
        ratio = row["runs"][1]["wall_s"] / row["runs"][0]["wall_s"]
        lines.append(f"| | ray / local | {ratio:.2f}x | | | | | | | | |")
    table.publish(args.out, "ray-engine", "\n".join(lines), rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
