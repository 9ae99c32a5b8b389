"""A linear probe on the frozen judge model as a pairwise judge: measured, not kept.

    python -m bench.hidden_probe LEFT RIGHT GOLD [--id-column id] [--test 900] [--layers 10,15,20,25,30]

The pairs ``kgalign run --adapt --question pairwise`` would train on (the gate's
matches and their hardest other candidates, kgalign.finetune.adapt) are read by the
bare SmolLM2 judge model (one forward pass each, bfloat16 autocast on the CPU); a
logistic regression (scikit-learn, a test dependency) is fitted on the last prompt
position's hidden state at each of ``--layers``, and scored on a seeded sample of
``--test`` pairs of the other sources (each source's gold match and up to four other
candidates). Prints each layer's ROC AUC and accuracy on them.
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np


def main() -> None:
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from transformers import AutoModelForCausalLM

    from kgalign.config import AlignConfig
    from kgalign.evaluation.metrics import read_pairs
    from kgalign.finetune.adapt import adaptation_data
    from kgalign.finetune.data import DataConfig, pair_examples
    from kgalign.judging.local import chat_prompt, default_model_path, load_tokenizer
    from kgalign.pipeline import prepare

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("left", help="left graph or table (as `kgalign run` reads it)")
    parser.add_argument("right", help="right graph or table")
    parser.add_argument("gold", help="gold links (any format `kgalign eval` reads): labels the test pairs only")
    parser.add_argument("--id-column", default=None, help="id column of CSV/TSV inputs (default: the first)")
    parser.add_argument("--test", type=int, default=900, help="test pairs scored, a seeded sample (default 900)")
    parser.add_argument("--layers", default="10,15,20,25,30", help="hidden layers probed, comma-separated (default 10,15,20,25,30)")
    args = parser.parse_args()
    layers = [int(x) for x in args.layers.split(",")]

    config = AlignConfig.from_dict({"judge": "local", "adapter": "none", "vote": {"question": "pairwise"}, "adapt": {"enabled": True}, "id_column": args.id_column})
    prepared = prepare(args.left, args.right, config)
    data = adaptation_data(prepared, config)
    trained_on = {e.source for e in data.train + data.val}
    gold = dict(read_pairs(args.gold))
    labels = {c.source: gold.get(c.source) for c in prepared.candidates}
    questions = pair_examples(labels, prepared.candidates, prepared.left_profiles, prepared.right_profiles, DataConfig(question="pairwise", negatives=4, permutations=1))
    test = [e for source, examples in questions.items() if source not in trained_on for e in examples]
    random.Random(0).shuffle(test)
    test = test[: args.test]
    train = data.train + data.val

    path = default_model_path()
    tokenizer = load_tokenizer(path)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()

    def features(examples: list) -> dict[int, np.ndarray]:
        out: dict[int, list[np.ndarray]] = {layer: [] for layer in layers}
        started = time.monotonic()
        for i in range(0, len(examples), 8):
            texts = [chat_prompt(tokenizer, e.question) for e in examples[i : i + 8]]
            batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                hidden = model(**batch, output_hidden_states=True).hidden_states
            for layer in layers:
                out[layer].append(hidden[layer][:, -1, :].float().numpy())
        print(f"{len(examples)} pairs read in {time.monotonic() - started:.1f} s")
        return {layer: np.concatenate(rows) for layer, rows in out.items()}

    print(f"train {len(train)} pairs ({sum(e.answer == 'A' for e in train)} matches), test {len(test)} ({sum(e.answer == 'A' for e in test)} matches)")
    x_train, x_test = features(train), features(test)
    y_train = np.array([e.answer == "A" for e in train])
    y_test = np.array([e.answer == "A" for e in test])
    for layer in layers:
        probe = LogisticRegression(max_iter=2000, class_weight="balanced").fit(x_train[layer], y_train)
        p = probe.predict_proba(x_test[layer])[:, 1]
        print(f"layer {layer}: ROC AUC {roc_auc_score(y_test, p):.3f}, accuracy {((p > 0.5) == y_test).mean():.3f}")


if __name__ == "__main__":
    main()
