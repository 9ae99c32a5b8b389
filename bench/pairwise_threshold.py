"""Read a trained pairwise judge's validation again: best F1, its threshold and ROC AUC.

    python -m bench.pairwise_threshold --questions Q.jsonl.gz --model MODEL_DIR [--max-val 400]

The first ``--max-val`` validation questions of the saved question set (those training
evaluated), answered by the model in ``MODEL_DIR`` (a ``kgalign finetune --full`` folder)
in float32 with the current ranking rule (kgalign.finetune.train.ranking). Prints one
JSON line; it rewrites nothing. Used to read a model trained under an earlier rule
(bench/results/pairwise-cpu-loo-abt-buy.md, section 8).
"""

from __future__ import annotations

import argparse
import json
import time


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", required=True, help="question set saved by kgalign finetune --save-questions")
    parser.add_argument("--model", required=True, help="model folder written by kgalign finetune --full")
    parser.add_argument("--max-val", type=int, default=400, help="validation questions read (training's --max-val)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    args = parser.parse_args(argv)

    import torch

    from kgalign.finetune.store import load_questions
    from kgalign.finetune.train import evaluate, load_base
    from kgalign.runtime.precision import float32_output_head

    torch.set_num_threads(args.threads)
    started = time.monotonic()
    data, _ = load_questions(args.questions)
    model, tokenizer, _ = load_base(args.model, "cpu")  # float32 weights, as training loads them
    float32_output_head(model)
    model.eval()
    result = evaluate(model, tokenizer, data.val[: args.max_val], 0)
    print(json.dumps({"questions": result.questions, "best_f1": result.best_f1, "best_threshold": result.best_threshold,
                      "auc": result.auc, "auc_by_source": result.auc_by_source, "seconds": round(time.monotonic() - started, 1)}))  # fmt: skip


if __name__ == "__main__":
    main()
