"""Wall times of kgalign and its peers, run in alternation, several rounds per dataset.

    python -m bench.head_to_head [--datasets dbp15k,srprs,person1,restaurants,abt-buy]
                                 [--systems splink,splink-1to1] [--rounds 5] [--settled 3]
                                 [--work DIR] [--out bench/results] [--lock FILE]

The results table (bench/table.py --run-peers) times each system once. Where two
systems are close, one run each cannot tell a lead from the machine's run-to-run
noise (whole sittings here differed by 20%, and a run whose files are not in the page
cache pays for reading them). This script times the close comparisons properly: per
dataset it runs `kgalign run --judge none` (the table's command, an empty vector cache
each time) and each peer variant of --systems (bench/peers.py's configurations, in the
peers' venv), in turns, for --rounds rounds, with the order reversed every other round
so that neither side always runs first. A peer whose first run took --settled times
kgalign's wall or more is not repeated: that comparison is not close.

It reports, per dataset and peer, each side's median wall over the rounds, their
spread, the ratio of the medians, and the range of the per-round ratios (peer wall over
the kgalign wall of the same round). F1 of every run is recorded as a check that the
runs are the table's.

Cold and warm runs. On a machine that reclaims idle memory early, a run's speed depends
on what ran just before it: the virtual machines this project is benchmarked on run
the kernel's DAMON reclaim (/sys/kernel/mm/damon), which pages out memory, file cache
included, not touched for about 30 s. A program started after a pause, or after another
program's long run, then reads its libraries and model files from disk again, and its
numeric stages stall on those page faults. Back-to-back runs of one peer variant after
another share one venv and stay warm. --drop-caches empties the page cache (as root:
`echo 3 > /proc/sys/vm/drop_caches`) before every run, so that every system starts in
the state of a first run after a pause, which is how a user meets a tool, instead of
whoever ran last being warm. (What the host machine caches under the virtual disk is
out of reach: first runs after a long pause can be slower still.)

Writes OUT/head-to-head.md and OUT/head-to-head.json (OUT/head-to-head-cold.md and
.json with --drop-caches).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench import peers  # bench/peers.py: the peers' data preparation and runner
from bench import table  # bench/table.py: the datasets and the kgalign command

BENCH = Path(__file__).resolve().parent

KGALIGN = "kgalign"


def drop_page_cache() -> None:
    """Write dirty pages out, then drop the clean page cache (Linux, root only)."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError as exc:
        raise SystemExit(f"--drop-caches: cannot write /proc/sys/vm/drop_caches ({exc.strerror}); run as root on Linux") from None


def _round_order(systems: list[str], index: int) -> list[str]:
    """kgalign first in even rounds, last in odd ones."""
    order = [KGALIGN, *systems]
    return order if index % 2 == 0 else order[::-1]


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (dataset, peer): medians, spreads and ratios of the runs' walls.

    ``runs`` holds one record per run: dataset, system, round, wall_s, f1. A ratio is
    the peer's wall over kgalign's: above 1, kgalign is faster.
    """
    by: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for run in runs:
        if run.get("wall_s") is None:
            continue
        by.setdefault((run["dataset"], run["system"]), {})[run["round"]] = run
    rows = []
    for (dataset, system), peer_runs in by.items():
        if system == KGALIGN:
            continue
        ours = by.get((dataset, KGALIGN), {})
        if not ours:
            continue
        peer_walls = [r["wall_s"] for r in peer_runs.values()]
        our_walls = [r["wall_s"] for r in ours.values()]
        paired = [peer_runs[i]["wall_s"] / ours[i]["wall_s"] for i in sorted(peer_runs) if i in ours and ours[i]["wall_s"] > 0]
        rows.append(
            {
                "dataset": dataset,
                "peer": system,
                "rounds": len(peer_walls),
                "kgalign_rounds": len(our_walls),
                "kgalign_median_s": statistics.median(our_walls),
                "kgalign_range_s": [min(our_walls), max(our_walls)],
                "peer_median_s": statistics.median(peer_walls),
                "peer_range_s": [min(peer_walls), max(peer_walls)],
                "ratio_of_medians": statistics.median(peer_walls) / statistics.median(our_walls),
                "paired_ratio_range": [min(paired), max(paired)] if paired else None,
                "kgalign_f1": sorted({r["f1"] for r in ours.values() if r.get("f1") is not None}),
                "peer_f1": sorted({r["f1"] for r in peer_runs.values() if r.get("f1") is not None}),
            }
        )
    return rows


def _f1s(values: list[float]) -> str:
    return " / ".join(f"{v:.3f}" for v in values) or "–"


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        "# kgalign and its peers, timed in alternation",
        "",
        f"Generated by `{meta['command']}` on {meta['generated']}; {meta['machine']}; kgalign commit {meta['commit']}.",
        "Each round runs kgalign (`--judge none`, empty vector cache) and every peer variant once, in turns, the order",
        "reversed every other round. *wall* is the whole process. *ratio* is the peer's wall over kgalign's (above 1:",
        "kgalign is faster): of the medians, and the lowest and highest of the rounds' own ratios. A peer run in",
        f"one round only took {meta['settled']}x kgalign's wall or more in that round (not a close comparison).",
        *(
            [
                "Every run started with the page cache emptied (`--drop-caches`), as a first run after a pause does on",
                "this machine (see the script's help): each system read its libraries and model files from disk again.",
            ]
            if meta.get("drop_caches")
            else []
        ),
        "",
        "| dataset | peer | rounds | kgalign wall, median (range) | peer wall, median (range) | ratio of medians | round ratios, lowest to highest | F1 kgalign / peer |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        pr = r["paired_ratio_range"]
        lines.append(
            f"| {r['dataset']} | {r['peer']} | {r['rounds']} | {r['kgalign_median_s']:.1f} s ({r['kgalign_range_s'][0]:.1f}-{r['kgalign_range_s'][1]:.1f}) "
            f"| {r['peer_median_s']:.1f} s ({r['peer_range_s'][0]:.1f}-{r['peer_range_s'][1]:.1f}) | {r['ratio_of_medians']:.2f}x "
            f"| {pr[0]:.2f}x to {pr[1]:.2f}x | {_f1s(r['kgalign_f1'])} / {_f1s(r['peer_f1'])} |"
            if pr
            else f"| {r['dataset']} | {r['peer']} | {r['rounds']} | {r['kgalign_median_s']:.1f} s | {r['peer_median_s']:.1f} s | {r['ratio_of_medians']:.2f}x | – | {_f1s(r['kgalign_f1'])} / {_f1s(r['peer_f1'])} |"
        )
    failed = meta.get("failed") or []
    if failed:
        lines += ["", "Runs that failed:"] + [f"- {f}" for f in failed]
    return "\n".join(lines) + "\n"


def _kgalign_run(inputs: table.RunInputs, key: str, work: Path) -> dict[str, Any]:
    rec = table.run_kgalign(inputs, "none", work / "runs" / f"{key}-h2h", "cold")
    if rec.get("exit_code") != 0:
        return {"wall_s": None, "error": rec.get("error", "failed")}
    first = next(iter(rec["metrics"].values()))
    return {"wall_s": rec["wall_s"], "f1": round(first["f1"], 4), "peak_rss_gb": rec["peak_rss_gb"]}


def _peer_run(tables: tuple[Path, Path, list[tuple[str, str]]], key: str, variant: str, venv: Path, timeout: float) -> dict[str, Any]:
    left, right, gold = tables
    res = peers.run_peer(venv, variant, key, left, right, left.parent / variant, timeout)
    if res.get("error"):
        return {"wall_s": None, "error": res["error"]}
    scored = peers.score(peers.read_links(left.parent / variant / "links.tsv"), gold)
    return {"wall_s": res["wall_s"], "f1": round(scored["F1"], 4), "peak_rss_gb": res["peak_rss_gb"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    keys = [d.key for d in table.DATASETS]
    parser.add_argument("--data", type=Path, default=BENCH.parent.parent / "shared" / "data", help="folder of the benchmark data (../shared/data)")
    parser.add_argument("--datasets", default=",".join(keys), help="comma-separated, from " + ", ".join(keys))
    parser.add_argument("--systems", default="splink,splink-1to1", help="peer variants, comma-separated, from " + ", ".join(peers.SYSTEMS))
    parser.add_argument("--rounds", type=int, default=5, help="rounds per dataset (each runs every system once)")
    parser.add_argument("--settled", type=float, default=3.0, help="a peer at this many times kgalign's wall or more in round 1 is not repeated")
    parser.add_argument("--drop-caches", action="store_true", help="empty the page cache before every run (Linux, as root), so that each starts as a first run after a pause does (see the module help)")
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "kgalign-h2h", help="converted data, tables and run outputs")
    parser.add_argument("--venv", type=Path, default=Path(os.environ.get("PEERS_VENV", "/tmp/peersvenv")), help="the peers' venv (bash bench/peers-setup.sh)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per peer run")
    parser.add_argument("--lock", type=Path, help="hold this lock file (flock) around each run, as table.py does")
    parser.add_argument("--out", type=Path, default=BENCH / "results", help="where head-to-head.md and head-to-head.json go")
    args = parser.parse_args(argv)

    known = {d.key: d for d in table.DATASETS}
    wanted = table.choice_list(parser, args.datasets, known, "dataset")
    systems = table.choice_list(parser, args.systems, peers.SYSTEMS, "peer")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if not (args.venv / "bin" / "python").exists():
        raise SystemExit(f"{args.venv}: no peers venv; run bash bench/peers-setup.sh {args.venv}")
    if args.drop_caches:
        drop_page_cache()  # fails here, before any run, where it is not allowed
    data, work = args.data.resolve(), args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    table._LOCK[0] = args.lock

    runs: list[dict[str, Any]] = []
    failed: list[str] = []
    for key in wanted:
        ds = known[key]
        (pds,) = peers.datasets(data, work / "peers", [table.PEER_KEYS[key]])
        tables = peers.prepare(pds, work / "peers", None)  # the peers' CSV tables and gold, made once
        inputs = ds.prepare(data, work)  # kgalign's converted pair, once too
        active = list(systems)
        for index in range(args.rounds):
            walls: dict[str, float] = {}
            for system in _round_order(active, index):
                if args.drop_caches:
                    drop_page_cache()
                print(f"[h2h] {ds.title} round {index + 1}: {system} ...", file=sys.stderr, flush=True)
                if system == KGALIGN:
                    result = _kgalign_run(inputs, ds.key, work)  # takes --lock itself
                else:
                    with table.heavy_lock():
                        result = _peer_run(tables, pds.key, system, args.venv, args.timeout)
                runs.append({"dataset": ds.title, "system": system, "round": index, **result})
                if result["wall_s"] is None:
                    failed.append(f"{ds.title} / {system} round {index + 1}: {result.get('error')}")
                else:
                    walls[system] = result["wall_s"]
                print(f"[h2h]   wall {result['wall_s']} s, F1 {result.get('f1')}", file=sys.stderr, flush=True)
            if index == 0 and KGALIGN in walls:
                active = [s for s in active if s not in walls or walls[s] < args.settled * walls[KGALIGN]]
            if not active:
                break

    rows = summarise(runs)
    meta = {
        "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python -m bench.head_to_head " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": peers.machine(),
        "commit": table._git("rev-parse", "--short", "HEAD") or "?",
        "settled": args.settled,
        "drop_caches": args.drop_caches,
        "failed": failed,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "head-to-head-cold" if args.drop_caches else "head-to-head"
    (args.out / f"{stem}.json").write_text(json.dumps({**meta, "rows": rows, "runs": runs}, indent=1) + "\n")
    text = markdown(rows, meta)
    (args.out / f"{stem}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
