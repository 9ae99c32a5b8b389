"""Two kgalign processes on one machine: OpenMP's waiting threads, active against passive.

torch and faiss run their CPU kernels on OpenMP threads. By default (libgomp's
``OMP_WAIT_POLICY`` unset) a thread that finishes its share of a kernel spins for a
while before it sleeps, ready for the next kernel. Alone that costs nothing; two
processes that each use every core (two runs, a run beside a server, the test suite's two
workers) spin on the cores the other needs. This script measures, for the local judge
(letter scores of real multiple-choice questions of the persons example) and for the
embedder (entity texts), the seconds of one process alone and of two at once, under
each policy. Each measurement runs in fresh processes, since OpenMP reads the policy once,
when torch loads it.

    python -m bench.openmp_wait [--questions 12] [--texts 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PERSONS = ROOT / "examples" / "persons"


def _work(kind: str, size: int) -> float:
    """Seconds of ``kind`` work of ``size`` items in this process (after one warm-up)."""
    from kgalign.config import AlignConfig
    from kgalign.pipeline import prepare

    prepared = prepare(PERSONS / "left.nt", PERSONS / "right.ttl", AlignConfig(judge="none"))
    if kind == "judge":
        from kgalign.judging.local import LocalJudge
        from kgalign.judging.prompt import Question

        sources = prepared.candidates[:size]
        questions = [Question(prepared.left_profiles[c.source], tuple(prepared.right_profiles[i.iri] for i in c.items[:5])) for c in sources]
        judge = LocalJudge(dtype="float32", batch_size=4, prefix_cache=False)
        judge.letter_scores(questions[:4])
        started = time.perf_counter()
        judge.letter_scores(questions)
        return time.perf_counter() - started
    from kgalign.retrieval.embed import SentenceTransformerEmbedder

    profiles = list(prepared.left_profiles.values()) + list(prepared.right_profiles.values())
    texts = [f"{p.label} {' '.join(v for _, v in p.attributes)} {n}" for n in range(size // len(profiles) + 1) for p in profiles][:size]
    embedder = SentenceTransformerEmbedder(precision="float32")
    embedder.encode(texts[:64])
    started = time.perf_counter()
    embedder.encode(texts)
    return time.perf_counter() - started


def _spawn(kind: str, size: int, policy: str | None) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    return subprocess.Popen([sys.executable, "-m", "bench.openmp_wait", "--child", kind, "--size", str(size)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)


def _measure(kind: str, size: int, policy: str | None, processes: int) -> list[float]:
    children = [_spawn(kind, size, policy) for _ in range(processes)]
    seconds = []
    for child in children:
        out, _ = child.communicate()
        if child.returncode:
            raise SystemExit(f"{kind} child failed under {policy or 'the default'} (exit {child.returncode})")
        seconds.append(float(out.strip().splitlines()[-1]))
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=12, help="judge questions each process scores (default 12)")
    parser.add_argument("--texts", type=int, default=2000, help="entity texts each process embeds (default 2000)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--child", choices=["judge", "embed"], help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(f"{_work(args.child, args.size):.3f}", flush=True)
        return
    print(f"{os.cpu_count()} CPUs; torch threads per process: torch's default (the cores)")
    print(f"{'work':<28} {'policy':<8} {'alone s':>8} {'two at once s':>14} {'slowdown':>9}")
    figures = []
    for kind, size in (("judge", args.questions), ("embed", args.texts)):
        for policy in (None, "PASSIVE"):
            alone = _measure(kind, size, policy, 1)[0]
            both = _measure(kind, size, policy, 2)
            mean = sum(both) / len(both)
            label = f"{kind} ({size} {'questions' if kind == 'judge' else 'texts'})"
            print(f"{label:<28} {policy or 'default':<8} {alone:>8.1f} {mean:>14.1f} {mean / alone:>8.2f}x", flush=True)
            figures.append({"work": kind, "size": size, "policy": policy or "default", "alone_s": round(alone, 2), "two_at_once_s": [round(s, 2) for s in both]})
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
