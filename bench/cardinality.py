"""Benchmark `--resolve auto`: the cardinality it detects and the F1 it reaches, against forcing 1:1.

    python -m bench.cardinality [--data ../shared/data] [--work DIR] [--seeds 0,1] [--out bench/results]
                                [--datasets dbp15k,srprs,person1,restaurants,abt-buy]

Two kinds of data, each run with `kgalign run` in a subprocess (--judge none, the
options of bench/table.py's protocol):

1. The development pairs of bench/make_cardinality.py, built with each seed of --seeds
   (seed 0 chose the thresholds; the others are held out): one-to-many (Person1's left
   against one to four noisy records of each person), the same with the files swapped
   (many-to-one), and many-to-many (records copied on both sides). Each with default
   options (`--resolve auto`) and with `--resolve 1:1`, the former default.
2. The 1:1 benchmarks of bench/table.py: default options against `--resolve 1:1`; auto
   must detect 1:1 and give the same F1.

3. `kgalign dedup` on each seed's duplicate set (Person1's right persons with their
   copies in one graph), scored pairwise.

Prints the tables (detected cardinality, the evidence shares, P/R/F1 of each setting;
the deduplication's scores) and writes OUT/cardinality.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from bench import table
from bench.make_cardinality import build

ROOT = Path(__file__).resolve().parent.parent


def swapped_gold(gold: Path, target: Path) -> Path:
    target.write_text("".join(f"{b}\t{a}\n" for a, b in (line.rstrip("\n").split("\t") for line in gold.read_text().splitlines() if line)))
    return target


def measure(name: str, inputs: table.RunInputs, work: Path) -> dict[str, Any]:
    """Default options and --resolve 1:1 on one pair; the detection as run.json records it."""
    row: dict[str, Any] = {"dataset": name}
    for setting, extra in (("auto", []), ("1:1", ["--resolve", "1:1"])):
        run_inputs = table.RunInputs(inputs.left, inputs.right, [*inputs.args, *extra], inputs.golds)
        slug = re.sub(r"[^a-z0-9]+", "-", f"{name} {setting}".lower()).strip("-")
        record = table.run_kgalign(run_inputs, "none", work / "runs" / slug, "warm")
        if "error" in record:
            raise SystemExit(f"{name} ({setting}): {record['error']}")
        metrics = next(iter(record["metrics"].values()))
        row[setting] = {key: metrics[key] for key in ("precision", "recall", "f1")} | {"links": record["counts"]["links"], "wall_s": record["wall_s"]}
        if setting == "auto":
            info = json.loads((Path(record["outdir"]) / "run.json").read_text())["cardinality"]
            row["cardinality"] = info
    return row


def dedup(folder: Path, outdir: Path) -> dict[str, Any]:
    """`kgalign dedup` on a duplicate set in a subprocess, scored on its gold pairs."""
    import shutil
    import subprocess

    shutil.rmtree(outdir, ignore_errors=True)
    command = [*table.kgalign_command(), "--log-level", "warning", "dedup", str(folder / "persons.nt"), "-o", str(outdir), "--gold", str(folder / "gold.tsv"), "--quiet", "--no-cache"]
    print("running: " + " ".join(command), file=sys.stderr, flush=True)
    with table.heavy_lock():
        done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"dedup {folder}: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
    info = json.loads((outdir / "run.json").read_text())
    metrics = json.loads((outdir / "metrics.json").read_text())
    return {
        "records": info["counts"]["entities_left"],
        "gold_pairs": metrics["gold"],
        "clusters": info["counts"]["clusters"],
        "precision": metrics["precision"],
        "recall": metrics["recall"],
        "f1": metrics["f1"],
        "split": info["clusters"]["split"],
        "flagged": len(info["clusters"]["flagged"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="Folder of the public benchmarks (default: ../shared/data).")
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "kgalign-cardinality-bench", help="Working folder.")
    parser.add_argument("--seeds", default="0,1", help="Seeds of the development pairs (default: 0,1; 0 chose the thresholds).")
    parser.add_argument("--datasets", default="dbp15k,srprs,person1,restaurants,abt-buy", help="1:1 benchmarks of bench/table.py to check (default: all five; empty for none).")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="Where cardinality.md and .json go.")
    args = parser.parse_args(argv)

    rows = []
    duplicates: list[dict[str, Any]] = []
    for seed in [int(s) for s in args.seeds.split(",") if s]:
        dev = args.work / f"dev-seed{seed}"
        build(args.data, dev, seed, 4)
        one, many = dev / "one-to-many", dev / "many-to-many"
        pairs = {
            f"1:n (seed {seed})": table.RunInputs(one / "left.nt", one / "right.nt", ["--gold", str(one / "gold.tsv")], {"gold": one / "gold.tsv"}),
            f"n:1 (seed {seed}, swapped)": table.RunInputs(
                one / "right.nt", one / "left.nt", ["--gold", str(swapped_gold(one / "gold.tsv", one / "gold-swapped.tsv"))], {"gold": one / "gold-swapped.tsv"}
            ),
            f"n:m (seed {seed})": table.RunInputs(many / "left.nt", many / "right.nt", ["--gold", str(many / "gold.tsv")], {"gold": many / "gold.tsv"}),
        }
        for name, inputs in pairs.items():
            rows.append(measure(name, inputs, args.work) | {"kind": "development" if seed == 0 else "held out"})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        duplicates.append(dedup(dev / "duplicates", args.work / "runs" / f"dedup-seed{seed}") | {"seed": seed})
        print(json.dumps(duplicates[-1]), file=sys.stderr, flush=True)
    known = {d.key: d for d in table.DATASETS}
    for key in [k for k in args.datasets.split(",") if k]:
        inputs = known[key].prepare(args.data, args.work)
        rows.append(measure(known[key].title, inputs, args.work) | {"kind": "1:1 benchmark"})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)

    lines = [
        f"`python -m bench.cardinality --seeds {args.seeds} --datasets {args.datasets}` (--judge none)",
        "",
        "| data | kind | detected | left share | right share | auto P | auto R | auto F1 | 1:1 F1 | F1 change |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        card, auto, forced = row["cardinality"], row["auto"], row["1:1"]
        lines.append(
            f"| {row['dataset']} | {row['kind']} | {card.get('choice', '?')} | {card.get('left_share', 0):.1%} | {card.get('right_share', 0):.1%} | "
            f"{auto['precision']:.4f} | {auto['recall']:.4f} | {auto['f1']:.4f} | {forced['f1']:.4f} | {auto['f1'] - forced['f1']:+.4f} |"
        )
    if duplicates:
        lines += [
            "",
            "`kgalign dedup` on the duplicate sets (one graph, records of each person to find; pairwise scores):",
            "",
            "| seed | records | duplicate pairs | clusters | P | R | F1 | split | flagged |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for d in duplicates:
            lines.append(
                f"| {d['seed']} | {d['records']:,} | {d['gold_pairs']:,} | {d['clusters']:,} | {d['precision']:.4f} | {d['recall']:.4f} | {d['f1']:.4f} | {d['split']} | {d['flagged']} |"
            )
    table.publish(args.out, "cardinality", "\n".join(lines), {"runs": rows, "dedup": duplicates})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
