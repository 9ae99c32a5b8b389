"""Benchmark `kgalign run --judge none` on a large synthetic pair: time per stage, peak memory, P/R/F1.

    python -m bench.large [--triples 1000000] [--data DIR] [--gzip] [--keep] [-- EXTRA RUN OPTIONS]

Generates the pair with bench/make_large_pair.py unless DIR already holds it (default
DIR: $TMPDIR/kgalign-large-<triples>-s<seed>), runs the real command in a child process
(`python -m kgalign.cli.main run ... --judge none --gold gold.tsv`), and measures its
peak memory: by polling the resident (RSS, every 50 ms) and proportional (PSS, every
0.5 s) memory of the child and its children (psutil), and, where /usr/bin/time exists,
by its "Maximum resident set size". Prints a markdown
table of the stages (from run.json), the peak memory and the scores (from
metrics.json), and writes them as DIR/out/bench.json.

Run it on a quiet machine: the times and the memory peak are only meaningful then.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from bench.make_large_pair import generate

ROOT = Path(__file__).resolve().parent.parent

STAGES = ("load", "select", "cardinality", "embed", "retrieve", "judge", "resolve", "fuse", "write")


def _pair(data: Path, triples: int, seed: int, compress: bool) -> dict[str, Path]:
    suffix = ".nt.gz" if compress else ".nt"
    files = {"left": data / f"left{suffix}", "right": data / f"right{suffix}", "gold": data / "gold.tsv"}
    if all(p.is_file() for p in files.values()):
        print(f"using the pair in {data}", file=sys.stderr)
        return files
    print(f"generating {triples:,} triples per side into {data} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    info = generate(data, triples, seed, compress)
    print(
        f"  {info['left_triples']:,} / {info['right_triples']:,} triples, {info['gold_pairs']:,} gold pairs "
        f"in {time.perf_counter() - started:.0f}s",
        file=sys.stderr,
    )
    return files


class PeakMemory:
    """Polls the memory of a process and its children until stopped.

    Two sums over the process tree: resident memory (RSS, every ``interval``) and
    proportional memory (PSS, every ``pss_interval``: reading it costs about 20 ms a
    process). RSS counts a shared page once in every process that maps it, so with
    several processes (Ray's actors, which share the object store, its libraries and
    its read-only model files) its sum counts the same memory several times; PSS shares
    each page out among the processes mapping it, and its sum is the memory the job
    holds. For one process the two differ only by its shared libraries. Polled at
    intervals, either can miss a peak shorter than its interval.
    """

    def __init__(self, pid: int, interval: float = 0.05, pss_interval: float = 0.5) -> None:
        self.pid = pid
        self.interval = interval
        self.pss_interval = pss_interval
        self.peak_mb = 0.0
        self.peak_pss_mb = 0.0
        #: At the peak of the PSS sum: seconds since polling began, and each process's PSS in MB.
        self.peak_pss_at = 0.0
        self.peak_pss_parts: dict[str, float] = {}
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        try:
            process = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        next_pss = 0.0
        while not self._stop.is_set():
            try:
                tree = [process, *process.children(recursive=True)]
            except psutil.Error:
                break
            self.peak_mb = max(self.peak_mb, _sum_of(tree, lambda p: p.memory_info().rss) / 2**20)
            if time.monotonic() >= next_pss:
                # PSS is Linux's (smaps_rollup); elsewhere USS, each process's own pages only.
                parts = _each_of(tree, lambda p: _proportional(p.memory_full_info()))
                total = sum(parts.values()) / 2**20
                if total > self.peak_pss_mb:
                    self.peak_pss_mb, self.peak_pss_at = total, time.monotonic() - self._started
                    self.peak_pss_parts = {name: round(size / 2**20) for name, size in parts.items()}
                next_pss = time.monotonic() + self.pss_interval
            self._stop.wait(self.interval)


def _proportional(info: Any) -> int:
    return int(getattr(info, "pss", getattr(info, "uss", 0)))


def _sum_of(tree: list[psutil.Process], measure: Any) -> int:
    """``measure`` summed over the processes of ``tree`` still running (one that ends meanwhile counts 0)."""
    total = 0
    for process in tree:
        try:
            total += measure(process)
        except psutil.Error:
            continue
    return total


def _each_of(tree: list[psutil.Process], measure: Any) -> dict[str, int]:
    """``measure`` of each process of ``tree`` still running, by a short name
    (``ray::KgalignWorker 1234``, ``raylet 99``, ``kgalign 42``)."""
    parts: dict[str, int] = {}
    for process in tree:
        try:
            value = measure(process)
            line = process.cmdline()
        except psutil.Error:
            continue
        name = "kgalign" if "kgalign.cli.main" in line else Path(line[0]).name.split()[0] if line else process.name()
        if name.startswith("python") and len(line) > 1:
            name = Path(line[1]).name  # one of Ray's helper scripts
        parts[f"{name} {process.pid}"] = value
    return parts


def run_kgalign(files: dict[str, Path], out: Path, extra: list[str]) -> dict[str, Any]:
    """Run the CLI in a child process; return its wall time, exit code and peak memory."""
    command = [
        sys.executable, "-m", "kgalign.cli.main", "--log-level", "warning", "run",
        str(files["left"]), str(files["right"]), "-o", str(out),
        "--judge", "none", "--gold", str(files["gold"]), "--quiet", "--force", *extra,
    ]  # fmt: skip
    timed = shutil.which("time") == "/usr/bin/time" or Path("/usr/bin/time").is_file()
    if timed:
        command = ["/usr/bin/time", "-v", *command]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    print("running " + " ".join(command), file=sys.stderr, flush=True)
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    with PeakMemory(child.pid) as peak:
        stdout, stderr = child.communicate()
    wall = time.perf_counter() - started
    result: dict[str, Any] = {
        "wall_s": round(wall, 1),
        "exit": child.returncode,
        "peak_rss_mb_polled": round(peak.peak_mb),
        "peak_pss_mb_polled": round(peak.peak_pss_mb),
        "peak_pss_at_s": round(peak.peak_pss_at, 1),
        "peak_pss_parts_mb": dict(sorted(peak.peak_pss_parts.items(), key=lambda item: -item[1])),
    }
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    if match:
        result["peak_rss_mb_time"] = round(int(match.group(1)) / 1024)
    if child.returncode != 0:
        tail = "\n".join(line for line in stderr.splitlines() if not line.startswith("\t"))[-2000:]
        raise SystemExit(f"kgalign failed with exit code {child.returncode}:\n{stdout}\n{tail}")
    return result


def _peak_parts(measured: dict[str, Any]) -> list[str]:
    """The processes' shares of the proportional peak, largest first (those of 50 MB or more)."""
    parts = measured.get("peak_pss_parts_mb") or {}
    if len(parts) < 2:
        return []
    shown = ", ".join(f"{name.rsplit(' ', 1)[0]} {mb:,}" for name, mb in parts.items() if mb >= 50)
    return [f"at the proportional peak ({measured['peak_pss_at_s']:,.0f} s in), MB: {shown}"]


def report(run: dict[str, Any], metrics: dict[str, Any], measured: dict[str, Any]) -> str:
    counts = run["counts"]
    lines = [
        f"Synthetic pair: {counts['triples_left']:,} / {counts['triples_right']:,} triples, "
        f"{counts['entities_left']:,} / {counts['entities_right']:,} entities, --judge none",
        "",
        "| stage | seconds | peak RSS MB |",
        "|---|---:|---:|",
    ]
    for name in STAGES:
        if name in run["stages"]:
            stage = run["stages"][name]
            lines.append(f"| {name} | {stage['seconds']:.1f} | {stage['peak_rss_mb']:.0f} |")
    lines += [
        f"| **total (stages)** | {run['total_seconds']:.1f} | {run['peak_rss_mb']:.0f} |",
        "",
        f"wall time of the command: {measured['wall_s']:.1f} s (process start and imports included)",
        f"peak memory: {measured['peak_rss_mb_polled']:,} MB resident ({measured.get('peak_pss_mb_polled', 0):,} MB proportional) polled"
        + (f", {measured['peak_rss_mb_time']:,} MB by /usr/bin/time" if "peak_rss_mb_time" in measured else ""),
        *_peak_parts(measured),
        "",
        "| P | R | F1 | Hits@1 | Hits@10 | MRR | gold pairs not in graphs |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {metrics['precision']:.4f} | {metrics['recall']:.4f} | {metrics['f1']:.4f} | {metrics.get('hits@1', 0):.4f} | "
        f"{metrics.get('hits@10', 0):.4f} | {metrics.get('mrr', 0):.4f} | {metrics.get('gold_pairs_not_in_graphs', 0)} |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--triples", type=int, default=1_000_000, help="Triples per side (about).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the generated pair (default 0).")
    parser.add_argument("--data", type=Path, help="Folder of the pair (generated there if missing).")
    parser.add_argument("--gzip", action="store_true", help="Use .nt.gz files.")
    parser.add_argument("--keep", action="store_true", help="Keep the outputs of the run (DIR/out).")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="Folder for large.md and large.json.")
    parser.add_argument("extra", nargs="*", help="More options for `kgalign run`, after --.")
    args = parser.parse_args(argv)
    data = args.data or Path(tempfile.gettempdir()) / f"kgalign-large-{args.triples}-s{args.seed}"
    files = _pair(data, args.triples, args.seed, args.gzip)
    out = data / "out"
    measured = run_kgalign(files, out, args.extra)
    run = json.loads((out / "run.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    text = report(run, metrics, measured)
    print(text)
    summary = {
        "triples": args.triples,
        "seed": args.seed,
        "extra": args.extra,
        "machine": {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1)},
        "measured": measured,
        "stages": run["stages"],
        "counts": run["counts"],
        "metrics": metrics,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python -m bench.large --triples " + str(args.triples) + (" -- " + " ".join(args.extra) if args.extra else "")
    (args.out / "large.md").write_text(f"`{command}` on {os.cpu_count()} CPUs:\n\n{text}\n", encoding="utf-8")
    (args.out / "large.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if not args.keep:
        for name in ("fused.ttl", "links.ttl", "alignment.rdf", "votes.jsonl", "provenance.trig"):
            (out / name).unlink(missing_ok=True)
        for name in ("fused", "provenance"):  # the shards of --engine ray
            shutil.rmtree(out / name, ignore_errors=True)
    (out / "bench.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
