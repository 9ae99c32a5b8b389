"""How many questions the answer cache hands the local judge at once: one batch, or ``chunk_size``.

    python -m bench.judge_chunks --run OUTDIR [--since OLD] [--repeat 2] [--out bench/results] [--stem judge-chunks]

The local judge pads each prompt to widths set by its own length and batches only prompts
of the same widths (so that a question's scores do not depend on its batch). Handed one
batch of questions at a time, the few questions of a call often have different widths and
run in nearly empty batches; handed :attr:`LocalJudge.chunk_size` (several batches) they
fill batches together. This runs the judge stage of a saved run both ways, alternated in
one process, with the same loaded model:

- ``one batch``: the answer cache hands the judge ``batch_size`` questions a call (as
  before ``chunk_size``);
- ``chunk_size``: the default.

Each pass is :func:`kgalign.pipeline.align` on the inputs and config of ``--run``'s
run.json (with ``--since OLD`` as that run had it: OLD's answers reused, so only its
asked questions reach the judge), the shipped judge (``--judge local``), its own empty
copy of the answer cache. Printed and saved (OUT/STEM.md, .json): the judge stage's
seconds per pass, the LLM questions, F1, and whether every pass linked the same pairs.
Heavy: run it alone.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import table
from kgalign.config import AlignConfig
from kgalign.judging.local import LocalJudge
from kgalign.pipeline import align
from kgalign.retrieval.embed import SentenceTransformerEmbedder

ROOT = Path(__file__).resolve().parent.parent


class OneBatchAtATime(LocalJudge):
    """The local judge handed ``batch_size`` questions a call."""

    @property
    def chunk_size(self) -> int:
        return self.batch_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="Output folder of the run whose inputs and config to judge again.")
    parser.add_argument("--since", type=Path, default=None, help="The earlier run's folder, as the run had it (--since OLD).")
    parser.add_argument("--repeat", type=int, default=2, help="Passes per variant, alternating (default: 2).")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="Where STEM.md and STEM.json go.")
    parser.add_argument("--stem", default="judge-chunks", help="Name of the result files (default: judge-chunks).")
    args = parser.parse_args(argv)
    info = json.loads((args.run / "run.json").read_text())
    config = AlignConfig.from_dict(info["config"])
    judges = {"one batch": OneBatchAtATime(adapter="cross-domain"), "chunk_size": LocalJudge(adapter="cross-domain")}
    embedder = SentenceTransformerEmbedder()
    rows: list[dict[str, Any]] = []
    links: dict[str, list[tuple[str, str]]] = {}
    work = Path(tempfile.mkdtemp(prefix="kgalign-judge-chunks-"))
    try:
        for rep in range(args.repeat):
            order = list(judges.items()) if rep % 2 == 0 else list(judges.items())[::-1]
            for name, judge in order:
                cache = work / f"{rep}-{name.replace(' ', '-')}" / "judge-cache.sqlite"
                started = time.perf_counter()
                result = align(info["left"], info["right"], config.replace(cache_path=str(cache)), embedder=embedder, judge=judge, since=args.since)
                row = {
                    "variant": name,
                    "pass": rep,
                    "chunk": judge.chunk_size,
                    "judge_s": round(result.timer.stages["judge"]["seconds"], 2),
                    "wall_s": round(time.perf_counter() - started, 2),
                    "llm_questions": result.counts["llm_questions"],
                    "f1": result.metrics["f1"] if result.metrics else None,
                }
                links[f"{rep}-{name}"] = sorted((link.left, link.right) for link in result.links)
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    same = len({json.dumps(v) for v in links.values()}) == 1
    lines = [
        f"`python -m bench.judge_chunks --run {args.run}" + (f" --since {args.since}" if args.since else "") + f" --repeat {args.repeat}`",
        "",
        "| pass | variant | questions a call | judge s | LLM questions | F1 |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['pass']} | {r['variant']} | {r['chunk']} | {r['judge_s']:.2f} | {r['llm_questions']} | {r['f1']} |" for r in rows]
    ratios = []
    for rep in range(args.repeat):
        pair = {r["variant"]: r["judge_s"] for r in rows if r["pass"] == rep}
        ratios.append(pair["chunk_size"] / pair["one batch"])
    lines += ["", f"chunk_size / one batch, judge seconds per pass: {', '.join(f'{x:.3f}' for x in ratios)}; every pass linked the same pairs: {same}"]
    table.publish(args.out, args.stem, "\n".join(lines), {"rows": rows, "ratios": ratios, "same_links": same})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
