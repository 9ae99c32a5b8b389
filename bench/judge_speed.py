"""Judge speed: the local judge's compact prompts with prefix reuse, against the earlier prompts, in one run.

    python -m bench.judge_speed [--rounds 3] [--batch-size 4] [--dtype auto] [--repeat 1]
                                [--left L --right R --gold G] [--out bench/results]

Variants of the local judge (``kgalign.judging.local.LocalJudge``) on one loaded
model (SmolLM2-135M-Instruct unless ``--model``), asked about the same sources:

- ``baseline``: ``entity_format="full"`` and ``prefix_cache=False``, the judge as it was
  before prefix reuse: every prompt read whole, every attribute under its full name;
- ``compact+prefix``: the defaults: compact entities within token budgets
  (kgalign/judging/prompt.py), the instructions' and each source entity's attention
  keys and values computed once and reused by every round of that source;
- ``pairwise``: ``--question pairwise`` (kgalign/judging/pairwise.py): one short question
  a candidate, round 1 with the source record first (its keys and values computed once
  for all its candidates), round 2 with the candidate first; more questions, each shorter.

Each pass is :func:`kgalign.pipeline.align` on the persons example (examples/persons:
60 x 60 OAEI 2010 Person1 persons, gold.tsv) as ``kgalign run --judge local --no-gate``
runs it: every source asked, ``--rounds`` rounds, early stop on, the vote's batches cut
into chunks of ``--batch-size`` questions by the answer-cache wrapper, no answer cache.
Timed: the wall time inside the judge's ``answer`` calls (the judge stage without
building the model). Before timing, each variant answers its calibration question (the
content-free question of :meth:`LocalJudge.prior`), which also warms the model up.

Printed and saved per variant: questions asked; questions/s; prompt tokens per question
(what the model reads, chat template included) and the tokens actually run through the
model per question (a prefix reused from the cache is not); tokens/s run through the
model; the arithmetic that is, ``2 x parameters`` FLOP per token times tokens/s, against
the machine's arithmetic peak: by default measured here (:func:`matmul_peak`, the best
of a few large matrix products in the judge's precision, on the judge's threads), or
``--peak-gflops`` (the issue's estimate was 150 GFLOP/s for a 2-core AVX2 CPU in float32;
a CPU with AVX-512 BF16 or AMX does several times more in bfloat16);
F1, precision and recall of the run's links against ``--gold``; the share of rounds
that voted for the gold target; and the CPU time other processes took during the pass
(a clean measurement has it near 0). The speed-up is the ratio of questions/s measured
in the same run. With ``--repeat N`` the variants alternate N times and the table shows
each one's fastest pass (all passes are in the JSON).

Writes ``judge-speed.md`` and ``judge-speed.json`` to ``--out``. Heavy: a few minutes on
2 cores (the baseline dominates); run it alone (``flock /tmp/kgalign-heavy.lock``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from bench.serving import CpuWindow
from kgalign.judging.base import Answer
from kgalign.judging.prompt import Question

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "persons"
VARIANTS = {
    "baseline": {"entity_format": "full", "prefix_cache": False},
    "compact+prefix": {"entity_format": "compact", "prefix_cache": True},
    "pairwise": {"entity_format": "compact", "prefix_cache": True},
}
#: The vote's settings of a variant beyond the defaults: pairwise asks one question a pair.
VOTES: dict[str, dict[str, Any]] = {"pairwise": {"question": "pairwise"}}
LABELS = {
    "baseline": "baseline (full entities, no prefix reuse)",
    "compact+prefix": "compact entities + prefix reuse",
    "pairwise": "pairwise questions (compact, first record reused)",
}


class TimedJudge:
    """The local judge, with the wall time spent in ``answer`` and the answers' token counts added up."""

    name = "local"

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.questions = 0
        self.prompt_tokens = 0

    @property
    def model_id(self) -> str:
        return str(self.inner.model_id)

    @property
    def batch_size(self) -> int:
        return int(self.inner.batch_size)

    @property
    def source_block(self) -> int | None:
        return self.inner.source_block

    def cache_params(self) -> dict[str, Any]:
        return dict(self.inner.cache_params())

    def answer(self, questions: list[Question]) -> list[Answer]:
        started = time.perf_counter()
        answers = list(self.inner.answer(questions))
        self.seconds += time.perf_counter() - started
        self.questions += len(questions)
        self.prompt_tokens += sum(a.prompt_tokens for a in answers)
        return answers


def run_pass(variant: str, judge: Any, args: argparse.Namespace, params: int) -> dict[str, Any]:
    """One align() run with ``judge``; its speed and quality figures."""
    from kgalign.config import AlignConfig, VoteConfig
    from kgalign.evaluation.metrics import read_pairs
    from kgalign.pipeline import align

    judge.clear_prefixes()
    judge.computed_tokens = 0
    hits0, misses0 = judge._prefixes.hits, judge._prefixes.misses
    timed = TimedJudge(judge)
    config = AlignConfig(judge="local", gold=str(args.gold), vote=VoteConfig(rounds=args.rounds, gate=False, **VOTES.get(variant, {"question": "choice"})))
    window = CpuWindow()
    started = time.perf_counter()
    result = align(args.left, args.right, config, judge=timed)
    wall = time.perf_counter() - started
    cpu = window.stop()
    gold = dict(read_pairs(args.gold))
    rounds = [r for d in result.decisions for r in d.rounds]
    gold_votes = sum(1 for d in result.decisions for r in d.rounds if d.source in gold and r.target == gold[d.source])
    tokens_per_s = judge.computed_tokens / timed.seconds if timed.seconds else 0.0
    gflops = 2 * params * tokens_per_s / 1e9
    metrics = result.metrics or {}
    return {
        "variant": variant,
        "questions": timed.questions,
        "judge_s": round(timed.seconds, 2),
        "align_s": round(wall, 2),
        "questions_per_s": round(timed.questions / timed.seconds, 3) if timed.seconds else None,
        "prompt_tokens_per_question": round(timed.prompt_tokens / max(timed.questions, 1), 1),
        "computed_tokens_per_question": round(judge.computed_tokens / max(timed.questions, 1), 1),
        "computed_tokens": judge.computed_tokens,
        "tokens_per_s": round(tokens_per_s, 1),
        "gflop_per_s": round(gflops, 1),
        "share_of_peak": round(gflops / args.peak_gflops, 3),
        "prefix_hits": judge._prefixes.hits - hits0,
        "prefix_misses": judge._prefixes.misses - misses0,
        "f1": metrics.get("f1"),
        "precision": metrics.get("precision"),
        "recall": metrics.get("recall"),
        "links": len(result.links),
        "rounds": len(rounds),
        "gold_vote_share": round(gold_votes / max(len(rounds), 1), 3),
        "kinds": {kind: sum(1 for d in result.decisions if d.kind == kind) for kind in ("match", "none", "uncertain")},
        "early_stopped": sum(1 for d in result.decisions if d.early_stopped),
        "choices": [r.choice for d in result.decisions for r in d.rounds],
        "cpu": cpu,
    }


def matmul_peak(precision: str, size: int = 2048, tries: int = 20) -> float:
    """GFLOP/s of the best of ``tries`` products of two ``size`` x ``size`` matrices, in ``precision``."""
    import torch

    dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    best = math.inf
    with torch.inference_mode():
        torch.mm(a, b)  # warm-up
        for _ in range(tries):
            started = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - started)
    return round(2 * size**3 / best / 1e9, 1)


def table(best: dict[str, dict[str, Any]], params: int, peak: float) -> str:
    per_token = 2 * params / 1e9
    lines = [
        "| variant | questions | judge s | questions/s | prompt tok/q | computed tok/q | tokens/s | GFLOP/s "
        f"({per_token:.2f} GFLOP/token) | of {peak:.0f} GFLOP/s | F1 | P / R | rounds voting gold | other CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for variant, row in best.items():
        cpu = row["cpu"] or {}
        lines.append(
            f"| {LABELS[variant]} | {row['questions']} | {row['judge_s']} | {row['questions_per_s']} | "
            f"{row['prompt_tokens_per_question']} | {row['computed_tokens_per_question']} | {row['tokens_per_s']} | "
            f"{row['gflop_per_s']} | {row['share_of_peak']:.0%} | {row['f1']:.3f} | {row['precision']:.3f} / {row['recall']:.3f} | "
            f"{row['gold_vote_share']:.3f} | {cpu.get('others_s', '?')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--left", type=Path, default=EXAMPLE / "left.nt", help="Left graph (default: examples/persons/left.nt).")
    parser.add_argument("--right", type=Path, default=EXAMPLE / "right.ttl", help="Right graph (default: examples/persons/right.ttl).")
    parser.add_argument("--gold", type=Path, default=EXAMPLE / "gold.tsv", help="Gold links for F1 (default: examples/persons/gold.tsv).")
    parser.add_argument("--model", type=Path, default=None, help="Local model folder (default: the bundled SmolLM2-135M-Instruct).")
    parser.add_argument("--adapter", default=None, help="LoRA adapter, as kgalign run --adapter: a folder, a shipped name, or none (default: what --judge local loads, the shipped cross-domain adapter on the default model).")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds per source, as kgalign run --rounds (default: 3).")
    parser.add_argument("--batch-size", type=int, default=4, help="Questions per forward pass, the local judge's --batch-size (default: 4).")
    parser.add_argument("--dtype", choices=("auto", "bfloat16", "float32"), default="auto", help="The local judge's --dtype (default: auto).")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's, one per core).")
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"Comma-separated variants to run, in this order: {', '.join(VARIANTS)} (default: both; the ratio needs both).",
    )
    parser.add_argument("--repeat", type=int, default=1, help="Passes per variant, alternating; the table shows the fastest (default: 1).")
    parser.add_argument("--peak-gflops", type=float, help="Arithmetic peak to compare with, GFLOP/s (default: measured by a matrix product in the judge's precision).")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="Folder for judge-speed.md/.json (default: bench/results).")
    parser.add_argument("--tag", default="", help="Suffix of the result files: judge-speed-TAG.md (default: none).")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        parser.error(f"--variants: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(VARIANTS)}")

    from kgalign.judging.adapters import judge_adapter
    from kgalign.judging.local import LocalJudge

    began = time.perf_counter()
    model = str(args.model) if args.model else None
    adapter = judge_adapter("local", model, args.adapter)
    loaded = LocalJudge(model=model, adapter=adapter, batch_size=args.batch_size, threads=args.threads, dtype=args.dtype)
    params = sum(int(p.numel()) for p in loaded.model.parameters())
    if args.peak_gflops is None:
        args.peak_gflops = matmul_peak(loaded.precision)
        print(f"measured arithmetic peak: {args.peak_gflops:.0f} GFLOP/s ({loaded.precision} matrix product)", flush=True)
    judges = {
        variant: LocalJudge.from_loaded(
            loaded.model, loaded.tokenizer, loaded.model_id, batch_size=args.batch_size, dtype=args.dtype, **VARIANTS[variant]
        )
        for variant in variants
    }
    from kgalign.config import VoteConfig

    for judge in judges.values():
        judge.prior(VoteConfig().options)  # calibration question; warms the model up

    passes: list[dict[str, Any]] = []
    for attempt in range(max(1, args.repeat)):
        for variant in variants:
            row = run_pass(variant, judges[variant], args, params)
            row["attempt"] = attempt
            passes.append(row)
            print(f"{variant} pass {attempt + 1}: {row['questions']} questions in {row['judge_s']} s, {row['questions_per_s']} q/s, F1 {row['f1']}", flush=True)
    best = {v: min((p for p in passes if p["variant"] == v), key=lambda p: p["judge_s"]) for v in variants}

    import torch

    lines = [table(best, params, args.peak_gflops), ""]
    if "baseline" in best and "compact+prefix" in best:
        base, new = best["baseline"], best["compact+prefix"]
        same = sum(a == b for a, b in zip(base["choices"], new["choices"]))
        lines.append(
            f"- Speed-up, same run: {new['questions_per_s'] / base['questions_per_s']:.2f}x questions/s "
            f"({base['questions_per_s']} -> {new['questions_per_s']}); tokens run through the model per question "
            f"{base['computed_tokens_per_question']} -> {new['computed_tokens_per_question']} "
            f"({base['computed_tokens_per_question'] / new['computed_tokens_per_question']:.2f}x fewer)."
        )
        lines.append(
            f"- Prefix cache (compact+prefix): {new['prefix_hits']} source prefixes reused, {new['prefix_misses']} computed. "
            f"Decisions: baseline {base['kinds']}, compact+prefix {new['kinds']}; "
            f"{same} of {min(len(base['choices']), len(new['choices']))} paired rounds gave the same letter "
            "(the prompts differ, so the answers may)."
        )
    lines.append(
        f"- Model: {loaded.model_id}, adapter {adapter or 'none'}, {params / 1e6:.1f}M parameters, so {2 * params / 1e9:.3f} GFLOP per token (2 x parameters); "
        f"precision {loaded.precision}; batch size {args.batch_size}; {args.rounds} rounds, gate off, early stop on."
    )
    total = round(time.perf_counter() - began, 1)
    command = "python -m bench.judge_speed " + " ".join(argv if argv is not None else sys.argv[1:])
    lines.append(
        f"- Machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), torch {torch.__version__} "
        f"with {torch.get_num_threads()} threads; whole script {total} s; passes: "
        + ", ".join(f"{p['variant']} {p['judge_s']} s" for p in passes)
        + "."
    )
    lines.append(f"- Command: `{command.strip()}`")
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "judge-speed" + (f"-{args.tag}" if args.tag else "")
    (args.out / f"{stem}.md").write_text(text + "\n")
    report = {
        "command": command.strip(),
        "model": loaded.model_id,
        "adapter": adapter,
        "parameters": params,
        "gflop_per_token": round(2 * params / 1e9, 4),
        "peak_gflops": args.peak_gflops,
        "precision": loaded.precision,
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "total_s": total,
        "best": best,
        "passes": passes,
    }
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
