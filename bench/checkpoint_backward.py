"""Benchmark a LoRA training step with activations recomputed (kgalign's training on a CPU):
the backward pass as transformers' checkpointing leaves it (the input embeddings' output
made to need a gradient, so the pass runs through every layer) against kgalign's
(:func:`kgalign.finetune.train.enable_checkpointing`: that hook removed, the pass stops
at the lowest adapter). Same model, same batch, same step; the adapters' gradients are
compared too.

    python -m bench.checkpoint_backward [--layers 4,8,0] [--tokens 300] [--batch 2] [--repeats 3]

Prints a markdown table (median seconds of forward and backward, the ratio, the largest
gradient difference) and writes it into ``--out`` as checkpoint-backward.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _step(model: Any, batch: dict[str, Any]) -> tuple[float, float, dict[str, Any]]:
    """One forward and backward pass: their seconds and the trainable weights' gradients."""
    started = time.perf_counter()
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=1).logits
    loss = logits[:, -1].float().logsumexp(-1).mean()
    forward = time.perf_counter() - started
    started = time.perf_counter()
    loss.backward()
    backward = time.perf_counter() - started
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()
    return forward, backward, grads


def measure(lora_layers: int, tokens: int, batch_size: int, repeats: int) -> dict[str, Any]:
    import torch

    from kgalign.finetune.train import TrainConfig, add_lora, enable_checkpointing, load_base

    base, tokenizer, _ = load_base(None, "cpu")
    model = add_lora(base, TrainConfig(lora_layers=lora_layers, lora_dropout=0.0))
    model.train()
    enable_checkpointing(model)
    text = " ".join(["word"] * tokens)
    batch = dict(tokenizer([text] * batch_size, return_tensors="pt"))
    figures: dict[str, Any] = {"lora_layers": lora_layers, "layers": base.config.num_hidden_layers, "prompt_tokens": int(batch["input_ids"].shape[1])}
    grads = {}
    for name, hooked in (("transformers", True), ("kgalign", False)):
        if hooked:
            model.enable_input_require_grads()  # as transformers' gradient_checkpointing_enable leaves it
        else:
            model.disable_input_require_grads()
        _step(model, batch)  # warm-up
        runs = [_step(model, batch) for _ in range(repeats)]
        figures[name] = {"forward_s": statistics.median(r[0] for r in runs), "backward_s": statistics.median(r[1] for r in runs)}
        grads[name] = runs[-1][2]
    figures["max_grad_difference"] = max(float((grads["transformers"][k] - grads["kgalign"][k]).abs().max()) for k in grads["kgalign"])
    figures["backward_ratio"] = figures["transformers"]["backward_s"] / figures["kgalign"]["backward_s"]
    figures["threads"] = torch.get_num_threads()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", default="4,8,0", help="Adapters in the top N layers, comma-separated (0: every layer).")
    parser.add_argument("--tokens", type=int, default=300, help="Words per prompt (about as many tokens).")
    parser.add_argument("--batch", type=int, default=2, help="Prompts per step.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed steps per setting (the median is shown), after one warm-up step.")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="Folder for checkpoint-backward.md.")
    args = parser.parse_args()
    rows = [measure(int(n), args.tokens, args.batch, args.repeats) for n in args.layers.split(",")]
    lines = [
        f"LoRA step with activations recomputed, SmolLM2-135M, batch {args.batch} x {rows[0]['prompt_tokens']} tokens, "
        f"{rows[0]['threads']} threads, median of {args.repeats} (`python -m bench.checkpoint_backward`):",
        "",
        "| adapters in | forward s | backward s, transformers' hook | backward s, kgalign | backward ratio | largest gradient difference |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        where = f"top {r['lora_layers']} of {r['layers']} layers" if r["lora_layers"] else f"all {r['layers']} layers"
        lines.append(
            f"| {where} | {r['kgalign']['forward_s']:.2f} | {r['transformers']['backward_s']:.2f} | {r['kgalign']['backward_s']:.2f} "
            f"| {r['backward_ratio']:.2f}x | {r['max_grad_difference']:.1e} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "checkpoint-backward.md").write_text(text)


if __name__ == "__main__":
    main()
