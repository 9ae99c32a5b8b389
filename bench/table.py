"""Regenerate the project's results table: kgalign on every benchmark, peers beside it.

    python -m bench.table [--data ../shared/data] [--work DIR] [--judges none,local]
                          [--datasets dbp15k,srprs,person1,restaurants,abt-buy] [--out bench/results]
                          [--lock /tmp/kgalign-heavy.lock] [--reuse] [--adapter DIR] [--stem NAME]

Each dataset is converted with kgalign's own importers where needed (those of `kgalign
convert dbp15k` and `kgalign convert tables`, by kgalign.io.importers.convert_cached in a
child process, bench/conversions.py; the conversions are kept in --work and redone when
their sources change), then aligned by `kgalign run` in a subprocess, exactly as a user
would run it (README, Results): DBP15K and SRPRS with `--seed-links gold_train.tsv
--test-gold gold_test.tsv --only-gold-entities`, the others with `--gold`. Every option
is kgalign's default except the judge. The judge's answer cache is off (`--no-cache`)
so that the LLM questions counted are questions asked; the sentence-vector cache
($KGALIGN_CACHE) is used as a user has it, and whether each run found its vectors there
is recorded (`--vectors cold` gives each run an empty vector cache instead).

Figures per run: P/R/F1 after judging and 1:1 resolution, retrieval Hits@1/Hits@10/MRR
(metrics.json; a second gold file, such as the official Restaurants gold, is scored from
links.ttl and votes.jsonl by kgalign.evaluation.runs.score_run), time per stage (run.json), wall time
of the whole command, peak resident memory of the kgalign process (getrusage of that
child alone), LLM questions and prompt tokens per source entity. The LLM judge runs
only on the datasets small enough for it on a 2-core CPU (the OAEI pairs) unless
--llm-datasets names others.

Beside kgalign's rows: peers measured by bench/peers.py (read from
bench/results/peers.json when present) and published numbers of other systems from
bench/quoted.json, marked as quoted, each with its source.

Writes OUT/table.md and OUT/table.json and prints the table. Run logs and outputs are
kept under --work (runs/<dataset>-<judge>/ and runs/<dataset>-<judge>.log); --reuse
takes the finished runs found there instead of running them again (to re-render after
peers.json or quoted.json changed).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import oaei  # bench/oaei.py: the OAEI file names and gold files, and the judge variants
from bench.conversions import convert
from kgalign import __version__
from kgalign.evaluation.runs import score_run
from kgalign.review.votes import read_votes

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"

STAGES = ("load", "select", "embed", "retrieve", "judge", "explain", "resolve", "fuse", "write")
# --------------------------------------------------------------------------- datasets


@dataclass
class RunInputs:
    """What `kgalign run` is given for one dataset, and the gold files to score against."""

    left: Path
    right: Path
    args: list[str]
    golds: dict[str, Path]  # name -> file; the first is the one given to kgalign
    conversion: dict[str, Any] = field(default_factory=dict)


@dataclass
class Dataset:
    key: str
    title: str
    gold_notes: dict[str, str]  # gold name -> what it is, shown in the table
    local_ok: bool  # small enough for the CPU LLM judge on a 2-core machine
    prepare: Callable[[Path, Path], RunInputs]  # (data dir, work dir) -> inputs


def _prepare_oaei(name: str) -> Callable[[Path, Path], RunInputs]:
    def prepare(data: Path, work: Path) -> RunInputs:
        ds = {d.name: d for d in oaei.datasets(data)}[name]
        golds = {gold: Path(path) for gold, path in ds.golds.items()}
        first = next(iter(golds.values()))
        for path in (ds.left, ds.right, *golds.values()):
            _need(Path(path))
        return RunInputs(Path(ds.left), Path(ds.right), ["--gold", str(first)], golds)

    return prepare


def _prepare_dbp15k(folder: str) -> Callable[[Path, Path], RunInputs]:
    def prepare(data: Path, work: Path) -> RunInputs:
        src = data / folder
        out = work / "converted" / folder
        conversion = convert("dbp15k", [src], out, heavy_lock())
        return RunInputs(
            out / "left.ttl",
            out / "right.ttl",
            ["--seed-links", str(out / "gold_train.tsv"), "--test-gold", str(out / "gold_test.tsv"), "--only-gold-entities"],
            {"test": out / "gold_test.tsv"},
            conversion,
        )

    return prepare


def _prepare_abt_buy(data: Path, work: Path) -> RunInputs:
    src = data / "leipzig_abt-buy"
    out = work / "converted" / "leipzig_abt-buy"
    files = [src / "Abt.csv", src / "Buy.csv", src / "abt_buy_perfectMapping.csv"]
    conversion = convert("tables", files, out, heavy_lock())
    return RunInputs(out / "left.ttl", out / "right.ttl", ["--gold", str(out / "gold.tsv")], {"all": out / "gold.tsv"}, conversion)


DATASETS = [
    Dataset("dbp15k", "DBP15K fr-en", {"test": "test 70%, seeds 30%"}, False, _prepare_dbp15k("seu_dbp_fr_en")),
    Dataset("srprs", "SRPRS en-fr", {"test": "test 10,500, seeds 4,500"}, False, _prepare_dbp15k("seu_srprs_fr_en")),
    Dataset("person1", "OAEI 2010 Person1", {"official": "official, 500 pairs"}, True, _prepare_oaei("OAEI Person1")),
    Dataset(
        "restaurants",
        "OAEI 2010 Restaurants",
        {"repaired": "repaired, 112 pairs", "official": "official gold, 23 of 112 targets missing"},
        True,
        _prepare_oaei("OAEI Restaurants"),
    ),
    Dataset("abt-buy", "Abt-Buy tables", {"all": "1,097 pairs, all"}, False, _prepare_abt_buy),
]


def _need(path: Path) -> None:
    if not path.exists():
        raise SystemExit(f"table.py: {path}: not found (is --data right?)")


# --------------------------------------------------------------------------- running kgalign


_LOCK: list[Path | None] = [None]


def publish(out: Path, stem: str, report: str, data: Any) -> None:
    """Print ``report`` (markdown) and write it as OUT/STEM.md, ``data`` as OUT/STEM.json."""
    print(report)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.md").write_text(report + "\n")
    (out / f"{stem}.json").write_text(json.dumps(data, indent=2) + "\n")


@contextlib.contextmanager
def heavy_lock() -> Iterator[None]:
    """Hold --lock (flock(2), the lock flock(1) takes) around one heavy command, if given."""
    path = _LOCK[0]
    if path is None:
        yield
        return
    with path.open("a") as handle:
        waited = time.perf_counter()
        fcntl.flock(handle, fcntl.LOCK_EX)
        waited = time.perf_counter() - waited
        if waited > 1:
            print(f"(waited {waited:.0f} s for {path})", file=sys.stderr, flush=True)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def kgalign_command() -> list[str]:
    """The `kgalign` of this interpreter's environment (the console script), else the module."""
    script = Path(sys.executable).parent / "kgalign"
    if script.is_file():
        return [str(script)]
    found = shutil.which("kgalign")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from kgalign.cli.main import main; sys.exit(main())"]


#: `--adapter` of this invocation: given to every run whose judge is an LLM.
_ADAPTER: list[Path | None] = [None]


def judge_args(judge: str) -> list[str]:
    spec = dict(oaei.JUDGES[judge])
    args = ["--judge", spec.pop("judge")]
    if spec.pop("gate", True) is False:
        args.append("--no-gate")
    if "question" in spec:
        args += ["--question", spec.pop("question")]
    if args[1] != "none" and _ADAPTER[0] is not None:
        args += ["--adapter", str(_ADAPTER[0])]
    return args


def run_command(inputs: RunInputs, judge: str, outdir: Path) -> list[str]:
    """`kgalign run` as a user types it: defaults except the judge, the gold options of the protocol."""
    return [
        *kgalign_command(),
        "--log-level",
        "info",
        "run",
        str(inputs.left),
        str(inputs.right),
        "-o",
        str(outdir),
        "--quiet",
        "--no-cache",
        *judge_args(judge),
        *inputs.args,
    ]


def run_kgalign(inputs: RunInputs, judge: str, outdir: Path, vectors: str) -> dict[str, Any]:
    """One `kgalign run` in a subprocess; its figures from run.json, metrics.json and getrusage."""
    command = run_command(inputs, judge, outdir)
    env = dict(os.environ, COLUMNS="400")  # rich wraps log lines at the terminal width
    cache = Path(env.get("KGALIGN_CACHE") or Path.home() / ".cache" / "kgalign")
    if vectors == "cold":
        # An empty vector cache for this run; the converted judge model is shared.
        fresh = outdir.parent / f"{outdir.name}.kgcache"
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir(parents=True)
        if (cache / "models").is_dir():
            (fresh / "models").symlink_to((cache / "models").resolve())
        cache = fresh
        env["KGALIGN_CACHE"] = str(fresh)
    shutil.rmtree(outdir, ignore_errors=True)
    outdir.parent.mkdir(parents=True, exist_ok=True)
    log_path = outdir.parent / f"{outdir.name}.log"
    with heavy_lock(), log_path.open("w") as log:
        print(f"running: {' '.join(command)}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    if vectors == "cold":
        shutil.rmtree(cache, ignore_errors=True)
    record: dict[str, Any] = {
        "command": command,
        "exit_code": code,
        "wall_s": round(wall, 2),
        # ru_maxrss of this child alone: kilobytes on Linux, bytes on macOS.
        "peak_rss_gb": round(usage.ru_maxrss / (2**30 if sys.platform == "darwin" else 2**20), 3),
        "log": str(log_path),
        "outdir": str(outdir),
    }
    text = log_path.read_text(errors="replace")
    if code != 0:
        record["error"] = text.strip().splitlines()[-1] if text.strip() else f"exit {code}"
        return record
    run = json.loads((outdir / "run.json").read_text())
    read, computed = run["counts"]["vectors_read"], run["counts"]["vectors_computed"]
    state = "none embedded" if run["counts"].get("embedded_entities") == 0 else _vector_state(read, computed, vectors)
    record["vector_cache"] = {"mode": vectors, "read": read, "computed": computed, "state": state}
    record["stages"] = {name: stage["seconds"] for name, stage in run["stages"].items()}
    record["stage_peak_rss_mb"] = {name: stage["peak_rss_mb"] for name, stage in run["stages"].items()}
    record["stages_total_s"] = run["total_seconds"]
    record["counts"] = run["counts"]
    record["sources"] = sum(1 for _ in read_votes(outdir / "votes.jsonl"))
    golds = list(inputs.golds.items())
    record["metrics"] = {golds[0][0]: json.loads((outdir / "metrics.json").read_text())}
    for name, path in golds[1:]:
        record["metrics"][name] = score_run(outdir, path)  # seed links left out, as the run's metrics.json
    return record


def _vector_state(read: int, computed: int, mode: str) -> str:
    """`cached`, `cold` or a mix, from the texts whose vectors the run read from the cache and computed."""
    if mode == "cold":
        return "cold"
    if read and not computed:
        return "cached"
    if computed and not read:
        return "cold"
    if read and computed:
        return f"{read} cached, {computed} computed"
    return "unknown"


# --------------------------------------------------------------------------- rendering


def _f(value: Any, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _secs(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def kgalign_rows(records: list[dict[str, Any]]) -> list[str]:
    head = (
        "| dataset (gold) | judge | P | R | F1 | Hits@1 | Hits@10 | MRR | LLM questions / source | prompt tokens / source "
        "| wall s | peak GB | vectors |"
    )
    lines = [head, _rule(head)]
    for rec in records:
        label = rec["judge_label"]
        if rec.get("skipped") or rec.get("error"):
            why = rec.get("skipped") or f"failed: {rec['error']} (log: {rec.get('log')})"
            lines.append(f"| {rec['title']} | {label} | {why} |" + " |" * 10)
            continue
        first = True
        for gold, metrics in rec["metrics"].items():
            note = rec["gold_notes"].get(gold, gold)
            common = (
                f"| {rec['title']} ({note}) | {label} | {_f(metrics['precision'])} | {_f(metrics['recall'])} | {_f(metrics['f1'])} "
                f"| {_f(metrics['hits@1'])} | {_f(metrics['hits@10'])} | {_f(metrics['mrr'])} "
            )
            if first:
                lines.append(
                    common + f"| {_f(rec['questions_per_source'], 2)} | {_f(rec['prompt_tokens_per_source'], 0)} "
                    f"| {_secs(rec['wall_s'])} | {_f(rec['peak_rss_gb'], 2)} | {rec['vector_cache']['state']} |"
                )
            else:
                lines.append(common + "| (same run) | | | | |")
            first = False
    return lines


def stage_rows(records: list[dict[str, Any]]) -> list[str]:
    used = [s for s in STAGES if any(s in (r.get("stages") or {}) for r in records)]
    extra = sorted({s for r in records for s in (r.get("stages") or {}) if s not in STAGES})
    names = used + extra
    head = "| dataset | judge | " + " | ".join(names) + " | sum of stages | wall (whole command) | conversion |"
    lines = [head, _rule(head)]
    for rec in records:
        if not rec.get("stages"):
            continue
        conv = rec.get("conversion") or {}
        conv_text = "" if not conv else ("cached" if conv.get("cached") else f"{_secs(conv.get('seconds'))} s")
        cells = " | ".join(_secs(rec["stages"].get(name)) for name in names)
        lines.append(f"| {rec['title']} | {rec['judge_label']} | {cells} | {_secs(rec['stages_total_s'])} | {_secs(rec['wall_s'])} | {conv_text} |")
    return lines


def peer_rows(peers: list[dict[str, Any]] | None, path: Path) -> list[str]:
    """The records of bench/peers.py (peers.json: dataset, system, variant, config, P, R, F1,
    wall_s, peak_rss_gb, optional extra golds and error), or a line saying they were not run."""
    if peers is None:
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        return [f"not run: {shown} not found (bench/peers.py writes it)."]
    head = "| dataset | system | config | P | R | F1 | wall s | peak GB |"
    lines = [head, _rule(head)]
    for rec in peers:
        system = rec.get("system", "")
        if rec.get("variant") and rec["variant"] != system:
            system = f"{system} ({rec['variant']})"
        config = str(rec.get("config", "")).replace("|", "/")
        if rec.get("F1") is None:
            why = str(rec.get("error") or "no result").replace("|", "/").splitlines()[-1][:160]
            lines.append(f"| {rec.get('dataset', '')} | {system} | {config} | failed: {why} | | | {_secs(rec.get('wall_s'))} | {_f(rec.get('peak_rss_gb'), 2)} |")
            continue
        f1 = _f(rec.get("F1"))
        if rec.get("extra"):
            f1 += " (" + "; ".join(f"{k} gold: {_f(v.get('F1'))}" for k, v in rec["extra"].items()) + ")"
        lines.append(
            f"| {rec.get('dataset', '')} | {system} | {config} | {_f(rec.get('P'))} | {_f(rec.get('R'))} "
            f"| {f1} | {_secs(rec.get('wall_s'))} | {_f(rec.get('peak_rss_gb'), 2)} |"
        )
    return lines


def quoted_rows(quoted: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = []
    if quoted["quoted"]:
        head = "| dataset | system | P | R | F1 | Hits@1 | Hits@10 | MRR | protocol | source |"
        lines += [head, _rule(head)]
        for rec in quoted["quoted"]:
            m = rec["metrics"]
            lines.append(
                f"| {rec['dataset']} | {rec['system']} | {_f(m.get('precision'))} | {_f(m.get('recall'))} | {_f(m.get('f1'))} "
                f"| {_f(m.get('hits@1'))} | {_f(m.get('hits@10'))} | {_f(m.get('mrr'))} | {rec.get('protocol', '')} | {rec['source']} |"
            )
    else:
        lines.append("No published figure has been read in its paper or its authors' repository yet.")
    secondary = [r for r in quoted["unverified"] if r.get("secondary_figures")]
    if secondary:
        head = "| dataset | system | P | R | F1 | Hits@1 | protocol | stated by (secondary sources) |"
        lines += [
            "",
            "Figures stated only by secondary sources: the papers' tables could not be read from here, so these are "
            "*secondary source, not checked against the paper*:",
            "",
            head,
            _rule(head),
        ]
        for rec in secondary:
            m = rec["secondary_figures"]
            lines.append(
                f"| {rec['dataset']} | {rec['system']} | {_f(m.get('precision'))} | {_f(m.get('recall'))} | {_f(m.get('f1'))} "
                f"| {_f(m.get('hits@1'))} | {rec.get('secondary_protocol', '')} | {rec.get('secondary_sources', '')} |"
            )
    unread = [r for r in quoted["unverified"] if not r.get("secondary_figures")]
    if unread:
        lines += ["", "No figure could be read for (leads and what was tried, in bench/quoted.json): " + "; ".join(f"{r['system']} on {r['dataset']}" for r in unread) + "."]
    return lines


def _rule(head: str) -> str:
    return "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"


def _dirty(files: list[str]) -> str:
    return f", with uncommitted changes to {', '.join(files)}" if files else ""


PEER_DATASETS = {"dbp15k": "DBP15K fr-en", "srprs": "SRPRS en-fr", "person1": "OAEI Person1", "restaurants": "OAEI Restaurants", "abt-buy": "Abt-Buy"}


def versus_rows(records: list[dict[str, Any]], peers: list[dict[str, Any]] | None) -> list[str]:
    """kgalign (--judge none) beside each peer's best-F1 workflow on the same dataset:
    the F1 difference and how many times faster kgalign's whole command was."""
    if not peers:
        return ["no peer figures (bench/peers.py writes them)."]
    head = "| dataset | kgalign F1 | kgalign wall s | peer (best F1 workflow) | peer F1 | peer wall s | F1 kgalign - peer | kgalign faster by |"
    lines = [head, _rule(head)]
    for rec in records:
        if rec.get("judge") != "none" or rec.get("error") or rec.get("skipped"):
            continue
        name = PEER_DATASETS.get(rec["dataset"])
        f1 = next(iter(rec["metrics"].values()))["f1"]
        for system in ("pyJedAI", "Splink"):
            runs = [p for p in peers if p.get("dataset") == name and p.get("system") == system and p.get("F1") is not None]
            if not runs:
                continue
            best = max(runs, key=lambda p: (p["F1"], -p["wall_s"]))
            ratio = best["wall_s"] / rec["wall_s"] if rec["wall_s"] else float("nan")
            lines.append(
                f"| {rec['title']} | {_f(f1)} | {_secs(rec['wall_s'])} | {system} ({best.get('variant', '')}) | {_f(best['F1'])} "
                f"| {_secs(best['wall_s'])} | {f1 - best['F1']:+.3f} | {ratio:.1f}x |"
            )
    return lines


#: The table's dataset keys as bench/peers.py names them.
PEER_KEYS = {"dbp15k": "dbp15k", "srprs": "srprs", "person1": "person1", "restaurants": "restaurants", "abt-buy": "abt"}


def run_peers(args: argparse.Namespace, work: Path, dataset: str, merge: bool) -> None:
    """bench/peers.py on one dataset, in its own process (the peers' venv must exist:
    bench/peers-setup.sh); ``merge`` keeps the other datasets' records of peers.json."""
    command = [sys.executable, "-m", "bench.peers", "--data", str(args.data.resolve()), "--work", str(work / "peers"), "--out", str(args.peers.parent.resolve())]
    command += ["--datasets", PEER_KEYS[dataset]] + (["--merge"] if merge else [])
    print("running: " + " ".join(command), file=sys.stderr, flush=True)
    with heavy_lock():
        subprocess.run(command, check=True, cwd=ROOT)


def _provenance(records: list[dict[str, Any]], total: float) -> str:
    """Which kgalign made the runs, when, and how the time went."""
    ran = [r for r in records if r.get("exit_code") is not None]
    made: dict[str, list[str]] = {}
    for rec in ran:
        v = rec.get("kgalign") or {}
        key = f"kgalign {v.get('version', '?')}, commit {v.get('commit', '?')}{_dirty(v.get('dirty', []))}"
        made.setdefault(key, []).append(rec.get("finished") or "?")
    runs = "; ".join(f"{key} ({len(times)} runs, finished {min(times)} to {max(times)})" for key, times in made.items())
    reused = sum(1 for r in ran if r.get("reused"))
    walls = sum(r.get("wall_s") or 0 for r in ran)
    text = f"Runs made with {runs}. " if runs else ""
    text += f"The {len(ran)} `kgalign run` commands took {walls:.0f} s of wall time together"
    text += f"; this invocation took {total / 60:.1f} min" + (f" and reused {reused} of them from --work." if reused else ", the rest running the peers (--run-peers) or waiting for the shared --lock.")
    return text


def render(report: dict[str, Any], peers_path: Path) -> str:
    records = report["runs"]
    m = report["machine"]
    out = [
        "# kgalign results",
        "",
        f"Generated by `{report['command']}` on {report['generated']}; {m['cpus']} CPU cores, "
        + "".join(f"{name} GPU (kgalign's default --device auto runs the embedder and the local judge on it), " for name in m.get("gpus", [])[:1])
        + f"{m['memory_gb']} GB "
        f"memory, {m['platform']}, Python {m['python']}. {_provenance(records, report['total_seconds'])}",
        "",
        "## kgalign, run by this script",
        "",
        "Every option is `kgalign run`'s default except `--judge` (`local` is gated, the default gating). P/R/F1 are of "
        "the links after judging and 1:1 resolution; Hits@k and MRR of the retrieval candidates. *Source* entities are "
        "those aligned (on DBP15K/SRPRS the test sources). *wall s* is the whole `kgalign run` command, model loading and "
        "output writing included; *peak GB* the largest resident memory of that process; *vectors* whether the sentence "
        "vectors were already in the on-disk cache (`cold`: computed in the run; `none embedded`: the cascade settled every "
        "source on the lexical channel).",
        "",
        *kgalign_rows(records),
        "",
        "Time per stage, seconds (from run.json):",
        "",
        *stage_rows(records),
        "",
        "## Peers, run on this machine by bench/peers.py",
        "",
        *peer_rows(report.get("peers"), peers_path),
        "",
        "kgalign (`--judge none`) beside each peer's best-F1 workflow; *faster by* is the peer's wall time over kgalign's "
        "(whole processes, imports and model loading included):",
        "",
        *versus_rows(records, report.get("peers")),
        "",
        "## Other systems: published numbers, quoted, not run",
        "",
        "Copied from the sources named in the last column (bench/quoted.json); measured by their authors, on their "
        "hardware, often under another protocol or on another variant of the data (see the protocol column); not reproduced here.",
        "",
        *quoted_rows(report["quoted"]),
        "",
    ]
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def machine() -> dict[str, Any]:
    import psutil

    return {
        "cpus": os.cpu_count(),
        "gpus": gpu_names(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
    }


def gpu_names() -> list[str]:
    """The NVIDIA GPUs nvidia-smi lists (kgalign's default --device auto uses the first); [] without one."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        listed = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in listed.stdout.splitlines() if line.strip()]


def load_quoted(path: Path) -> dict[str, list[dict[str, Any]]]:
    """bench/quoted.json: 'quoted' (figures read in the paper, with source and where read)
    and 'unverified' (leads whose paper could not be read; their 'secondary_figures', where
    independent secondary sources state them, are shown apart and marked so)."""
    if not path.is_file():
        return {"quoted": [], "unverified": []}
    data = json.loads(path.read_text())
    quoted = data.get("quoted", [])
    for rec in quoted:
        for key in ("dataset", "system", "source", "read_at", "metrics"):
            if not rec.get(key):
                raise SystemExit(f"table.py: {path}: a quoted entry without {key!r}: {rec}")
        for name, value in rec["metrics"].items():
            if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise SystemExit(f"table.py: {path}: {rec['system']} on {rec['dataset']}: {name} must be a fraction in [0, 1], not {value!r}")
    unverified = data.get("unverified", [])
    for rec in unverified:
        for name, value in (rec.get("secondary_figures") or {}).items():
            if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise SystemExit(f"table.py: {path}: {rec['system']} on {rec['dataset']}: {name} must be a fraction in [0, 1], not {value!r}")
    return {"quoted": quoted, "unverified": unverified}


def load_peers(path: Path) -> list[dict[str, Any]] | None:
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return data.get("records", data.get("runs", [])) if isinstance(data, dict) else data


def plan(datasets: list[Dataset], judges: list[str], llm_datasets: set[str]) -> list[tuple[Dataset, str, str | None]]:
    runs = []
    for ds in datasets:
        for judge in judges:
            skip = None
            if judge != "none" and ds.key not in llm_datasets:
                skip = "not run: too large for the CPU LLM judge on this machine (--llm-datasets runs it)"
            runs.append((ds, judge, skip))
    return runs


JUDGE_LABELS = {
    "none": "none",
    "local": "local multiple-choice, gated",
    "local-nogate": "local multiple-choice, not gated",
    "pairwise": "local pairwise, gated",
    "pairwise-nogate": "local pairwise, not gated",
}


def choice_list(parser: argparse.ArgumentParser, text: str, known: Iterable[str], what: str, where: str = "") -> list[str]:
    """The comma-separated names in ``text``; a usage error for the first that is not one of ``known``."""
    choices = list(known)
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        if name not in choices:
            parser.error(f"unknown {what} {name!r}{where}; choose from {', '.join(choices)}")
    return names


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="folder of the benchmark data (../shared/data)")
    parser.add_argument("--work", type=Path, default=None, help="converted data, run outputs and logs (default: $TMPDIR/kgalign-table)")
    parser.add_argument("--judges", default="none,local", help=f"comma-separated, from {', '.join(oaei.JUDGES)}")
    parser.add_argument("--datasets", default=",".join(d.key for d in DATASETS), help="comma-separated, from " + ", ".join(d.key for d in DATASETS))
    parser.add_argument("--out", type=Path, default=BENCH / "results", help="where table.md and table.json go")
    parser.add_argument("--vectors", choices=["as-is", "cold"], default="as-is", help="use the vector cache ($KGALIGN_CACHE) as it is, or start every run with an empty one")
    small = ",".join(d.key for d in DATASETS if d.local_ok)
    parser.add_argument("--llm-datasets", default=small, help=f"datasets on which the LLM judges of --judges run (default: {small}; 'all' for every one, hours on a CPU)")
    parser.add_argument("--lock", type=Path, help="hold this lock file (flock) during each conversion and kgalign run, e.g. /tmp/kgalign-heavy.lock on a shared machine; time waiting for it is not counted")
    parser.add_argument("--reuse", action="store_true", help="take finished runs from --work instead of running them again")
    parser.add_argument("--peers", type=Path, default=BENCH / "results" / "peers.json", help="peers' figures written by bench/peers.py")
    parser.add_argument("--quoted", type=Path, default=BENCH / "quoted.json", help="published figures of other systems, with sources")
    parser.add_argument("--adapter", type=Path, help="LoRA adapter folder for the runs with an LLM judge (`kgalign run --adapter`)")
    parser.add_argument("--stem", default="table", help="name of the written files: OUT/STEM.md and OUT/STEM.json")
    parser.add_argument("--run-peers", action="store_true", help="run bench/peers.py in this invocation, each dataset's peers just before kgalign on that dataset, so that both are timed side by side (needs bench/peers-setup.sh once)")
    args = parser.parse_args(argv)

    known = {d.key: d for d in DATASETS}
    wanted = choice_list(parser, args.datasets, known, "dataset")
    judges = choice_list(parser, args.judges, oaei.JUDGES, "judge")
    llm_datasets = set(known if args.llm_datasets == "all" else choice_list(parser, args.llm_datasets, known, "dataset", " in --llm-datasets"))
    data = args.data.resolve()
    work = (args.work or Path(os.environ.get("TMPDIR", "/tmp")) / "kgalign-table").resolve()
    work.mkdir(parents=True, exist_ok=True)
    _LOCK[0] = args.lock
    _ADAPTER[0] = args.adapter.resolve() if args.adapter else None
    started = time.perf_counter()
    version = {
        "version": __version__,
        "commit": _git("rev-parse", "--short", "HEAD") or "?",
        # Files of the package that differ from that commit (other work in the tree).
        "dirty": _git("diff", "--name-only", "HEAD", "--", "kgalign", "cli").splitlines(),
    }

    records = []
    peers_run: set[str] = set()
    for ds, judge, skip in plan([known[k] for k in wanted], judges, llm_datasets):
        if args.run_peers and ds.key not in peers_run:
            # Each dataset's peers just before kgalign on it: side by side in time, so a
            # machine that runs slower for a while slows both (whole sittings differed by
            # 20% here).
            run_peers(args, work, ds.key, merge=bool(peers_run))
            peers_run.add(ds.key)
        rec: dict[str, Any] = {"dataset": ds.key, "title": ds.title, "judge": judge, "judge_label": JUDGE_LABELS.get(judge, judge), "gold_notes": ds.gold_notes}
        if skip:
            records.append({**rec, "skipped": skip})
            continue
        inputs = ds.prepare(data, work)
        outdir = work / "runs" / f"{ds.key}-{judge}"
        saved = outdir.parent / f"{outdir.name}.record.json"
        result = None
        if args.reuse and saved.is_file():
            old = json.loads(saved.read_text())
            same = old.get("command") == run_command(inputs, judge, outdir) and old.get("vector_cache", {}).get("mode") == args.vectors
            if old.get("exit_code") == 0 and same:
                result = {**old, "reused": True}
        if result is None:
            saved.unlink(missing_ok=True)
            result = run_kgalign(inputs, judge, outdir, args.vectors)
            result["kgalign"] = version
            result["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            saved.write_text(json.dumps(result, indent=2) + "\n")
        rec.update(result)
        rec["conversion"] = inputs.conversion
        if not rec.get("error"):
            n = max(rec["sources"], 1)
            rec["questions_per_source"] = round(rec["counts"]["llm_questions"] / n, 3)
            rec["prompt_tokens_per_source"] = round(rec["counts"]["prompt_tokens"] / n, 1)
        records.append(rec)
        status = "reused" if rec.get("reused") else ("failed" if rec.get("error") else "done")
        print(f"{ds.title} / {judge}: {status} in {rec.get('wall_s')} s", file=sys.stderr, flush=True)

    report = {
        "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python -m bench.table " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(),
        "kgalign": version,
        "vector_cache": os.environ.get("KGALIGN_CACHE") or str(Path.home() / ".cache" / "kgalign"),
        "total_seconds": round(time.perf_counter() - started, 1),
        "runs": records,
        "peers": load_peers(args.peers),
        "quoted": load_quoted(args.quoted),
    }
    text = render(report, args.peers)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.stem}.md").write_text(text)
    (args.out / f"{args.stem}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(text)
    return report


if __name__ == "__main__":
    main()
