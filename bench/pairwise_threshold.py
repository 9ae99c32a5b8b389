"""Read a trained pairwise judge's validation again: best F1, its threshold and ROC AUC.

    python -m bench.pairwise_threshold --questions Q.jsonl.gz --model MODEL_DIR [--max-val 400]
    python -m bench.pairwise_threshold --questions Q.jsonl.gz --adapter pairwise --per-source 150 \\
        --group graph=dbp15k,srprs

The validation questions of the saved question set, answered in float32 with the current
ranking rule (kgalign.finetune.train.ranking) by the model in ``MODEL_DIR`` (a ``kgalign
finetune --full`` folder) or by SmolLM2 with ``--adapter`` (a folder, or a shipped
adapter's name). Which questions: the first ``--max-val`` (those training evaluated), or
with ``--per-source N`` the first N of each recipe source. Prints one JSON line: the
figures over all, per source, and per ``--group NAME=SOURCE,...`` (the sources in no
group form ``rest``); it rewrites nothing. Used to read a model trained under an earlier
rule (bench/results/pairwise-cpu-loo-abt-buy.md, section 8) and to ask whether graphs
want a threshold of their own (bench/results/pairwise-cpu-shipped.md).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from typing import Any


def figures(probabilities: list[float], labels: list[bool]) -> dict[str, Any]:
    """Questions, matches, best F1, its threshold and ROC AUC of one set of answers."""
    from kgalign.finetune.train import ranking

    best_f1, threshold, auc = ranking(probabilities, labels)
    return {"questions": len(labels), "matches": sum(labels), "best_f1": best_f1, "best_threshold": threshold, "auc": auc}


def load_judge(model: str | None = None, adapter: str | None = None) -> Any:
    """The local judge as training evaluates it: float32 weights of ``model`` (a ``kgalign
    finetune --full`` folder; default the bundled SmolLM2), with ``adapter`` (a folder or a
    shipped adapter's name) if given, the output head in float32, on the CPU."""
    from kgalign.finetune.train import load_base
    from kgalign.judging.local import LocalJudge, default_model_path
    from kgalign.runtime.precision import float32_output_head

    base, tokenizer, _ = load_base(model or str(default_model_path()), "cpu")  # float32 weights, as training loads them
    if adapter:
        from peft import PeftModel

        from kgalign.judging.adapters import adapter_folder

        base = PeftModel.from_pretrained(base, adapter_folder(adapter))
    float32_output_head(base)
    base.eval()
    return LocalJudge.from_loaded(base, tokenizer, "local:bench", device="cpu", batch_size=8)


def yes_answers(judge: Any, examples: list[Any]) -> list[tuple[Any, float, bool]]:
    """Each pairwise question of ``examples`` (all of them asked) with the judge's
    probability of yes and whether yes is its answer."""
    from kgalign.judging.vote import two_way_yes

    answered = []
    for example, letter_scores in zip(examples, judge.letter_scores([e.question for e in examples])):
        if example.question.pairwise:
            yes, no = example.question.letters
            answered.append((example, two_way_yes(letter_scores[yes], letter_scores[no]), example.answer == yes))
    return answered


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", required=True, help="question set saved by kgalign finetune --save-questions")
    weights = parser.add_mutually_exclusive_group(required=True)
    weights.add_argument("--model", help="model folder written by kgalign finetune --full")
    weights.add_argument("--adapter", help="adapter folder, or a shipped adapter's name, on the bundled SmolLM2")
    parser.add_argument("--max-val", type=int, default=400, help="validation questions read (training's --max-val)")
    parser.add_argument("--per-source", type=int, help="read the first N validation questions of each recipe source instead")
    parser.add_argument("--group", action="append", default=[], help="NAME=SOURCE,SOURCE: figures over these sources together (repeatable)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    args = parser.parse_args(argv)

    import torch

    from kgalign.finetune.store import load_questions

    groups = {name: set(sources.split(",")) for name, _, sources in (g.partition("=") for g in args.group)}
    torch.set_num_threads(args.threads)
    started = time.monotonic()
    data, _ = load_questions(args.questions)
    val = data.val[: args.max_val]
    if args.per_source:
        taken: dict[str, int] = defaultdict(int)
        val = []
        for example in data.val:
            if taken[example.group] < args.per_source:
                taken[example.group] += 1
                val.append(example)
    judge = load_judge(args.model, args.adapter)
    answers: dict[str, tuple[list[float], list[bool]]] = defaultdict(lambda: ([], []))
    for example, probability, label in yes_answers(judge, val):
        grouped = [name for name, sources in groups.items() if example.group in sources] or ["rest"]
        for key in ("all", f"source:{example.group}", *(f"group:{name}" for name in grouped)):
            answers[key][0].append(probability)
            answers[key][1].append(label)
    result = {key: figures(*pair) for key, pair in sorted(answers.items())}
    print(json.dumps({"questions": len(val), "seconds": round(time.monotonic() - started, 1), "figures": result}))


if __name__ == "__main__":
    main()
