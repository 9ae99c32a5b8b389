"""What the relaxed garbage-collector thresholds (kgalign/runtime/gctune.py) buy on a real run.

    python -m bench.gc_thresholds [--data ../shared/data] [--work DIR] [--repeats 3]

Runs the DBP15K fr-en job of the results table (`kgalign run ... --judge none
--seed-links gold_train.tsv --test-gold gold_test.tsv --only-gold-entities`, an empty
vector cache each time) alternately with kgalign's thresholds and with CPython's
defaults (the same code, `kgalign.runtime.gctune.RELAXED_THRESHOLDS` set to the interpreter's
own before the command starts), so that both see the same machine. Prints a markdown
table: median wall time of the whole process, median seconds of each stage (run.json),
peak memory, F1; and the ratio of the medians. The two variants must give the same
links: the script fails otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import table  # bench/table.py: the datasets, their conversion and arguments
from kgalign.runtime.gctune import RELAXED_THRESHOLDS

ROOT = Path(__file__).resolve().parent.parent

RUNNER = """
import gc, sys
import kgalign.runtime.gctune
if sys.argv[1] == "python-defaults":
    kgalign.runtime.gctune.RELAXED_THRESHOLDS = gc.get_threshold()
from kgalign.cli.main import main
sys.argv = ["kgalign"] + sys.argv[2:]
main()
"""

VARIANTS = ("kgalign", "python-defaults")


def convert(data: Path, work: Path) -> table.RunInputs:
    """DBP15K fr-en converted as the results table converts it (reused while its sources are unchanged)."""
    dbp15k = next(d for d in table.DATASETS if d.key == "dbp15k")
    return dbp15k.prepare(data, work)


def one_run(variant: str, pair: table.RunInputs, work: Path, index: int) -> dict:
    outdir = work / f"out-{variant}-{index}"
    cache = work / f"vectors-{variant}-{index}"
    args = [
        "--log-level", "warning", "run", str(pair.left), str(pair.right), "-o", str(outdir), "--quiet", "--force",
        "--no-cache", "--judge", "none", *pair.args,
    ]  # fmt: skip
    started = time.perf_counter()
    env = {"KGALIGN_CACHE": str(cache), "PATH": "/usr/bin:/bin", "HOME": str(work)}
    child = subprocess.Popen([sys.executable, "-c", RUNNER, variant, *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)  # this child's own peak memory
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"kgalign run ({variant}) exited with {child.returncode}")
    info = json.loads((outdir / "run.json").read_text())
    links = (outdir / "links.ttl").read_bytes()
    return {
        "wall": wall,
        "stages": {name: figures["seconds"] for name, figures in info["stages"].items()},
        "f1": json.loads((outdir / "metrics.json").read_text())["f1"],
        "peak_mb": usage.ru_maxrss / 1024,
        "links": links,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="Folder of the public benchmark data (default ../shared/data).")
    parser.add_argument("--work", type=Path, help="Folder for the converted data and the run outputs (default: a temporary folder).")
    parser.add_argument("--repeats", type=int, default=3, help="Runs per variant, in alternation (default 3).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        pair = convert(args.data, work)
        runs: dict[str, list[dict]] = {variant: [] for variant in VARIANTS}
        for index in range(args.repeats):
            for variant in VARIANTS:
                runs[variant].append(one_run(variant, pair, work, index))
                print(f"{variant} run {index + 1}: {runs[variant][-1]['wall']:.1f} s", file=sys.stderr, flush=True)
        if len({run["links"] for variant in VARIANTS for run in runs[variant]}) != 1:
            raise SystemExit("the variants' links differ: the thresholds must not change results")
    stages = list(runs["kgalign"][0]["stages"])
    lines = [
        f"DBP15K fr-en, `--judge none`, {args.repeats} alternating runs per variant; medians.",
        "",
        "| thresholds | wall s | " + " | ".join(stages) + " | peak MB (max) | F1 |",
        "|---|---" + "|---" * len(stages) + "|---|---|",
    ]
    medians = {}
    for variant in VARIANTS:
        group = runs[variant]
        medians[variant] = statistics.median(run["wall"] for run in group)
        per_stage = [statistics.median(run["stages"][name] for run in group) for name in stages]
        peak = max(run["peak_mb"] for run in group)
        label = f"kgalign's {RELAXED_THRESHOLDS}" if variant == "kgalign" else "CPython's defaults (700, 10, 10)"
        lines.append(f"| {label} | {medians[variant]:.1f} | " + " | ".join(f"{s:.2f}" for s in per_stage) + f" | {peak:.0f} | {group[0]['f1']:.4f} |")
    lines += ["", f"CPython defaults / kgalign's thresholds, median wall: {medians['python-defaults'] / medians['kgalign']:.2f}x"]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
