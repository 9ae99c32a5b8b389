"""A LoRA adapter extracted from a fully fine-tuned model (kgalign.finetune.extract).

A model "fine-tuned" here is a base model plus known changes: of low rank, so that the
adapter must carry them exactly; of higher rank, so that it must keep the leading
directions and report the share kept; in the embeddings, which it must report as left
out. The last test goes end to end on SmolLM2-135M: `kgalign extract-adapter`, then
`kgalign pairs` with the adapter answers as the tuned model does.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from helpers import cli

from kgalign.errors import KgalignError
from kgalign.finetune.extract import extract_lora
from kgalign.judging.adapters import trained_pair_threshold

torch = pytest.importorskip("torch")
LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _tiny_llama(folder: Path, hidden: int = 64) -> dict[str, object]:
    """A random two-layer Llama saved to ``folder`` (weights and config); its state dict."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=256, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)  # fmt: skip
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    return {k: v.clone() for k, v in model.state_dict().items()}


def _tuned(base: Path, folder: Path, rank: int, embedding_change: float = 0.0, scale: float = 0.05) -> dict[str, object]:
    """``base``'s weights with a random rank-``rank`` change (entries about ``scale``
    times the square root of ``rank``) added to every block linear layer, and the
    embeddings scaled by 1 + ``embedding_change``, saved to ``folder``."""
    from safetensors.torch import load_file, save_file

    weights = load_file(str(base / "model.safetensors"))
    generator = torch.Generator().manual_seed(7)
    changes = {}
    for name, weight in weights.items():
        if name.endswith(".weight") and name.rsplit(".", 2)[-2] in LINEAR:
            out, inp = weight.shape
            change = scale * torch.randn(out, rank, generator=generator) @ torch.randn(rank, inp, generator=generator)
            weights[name] = weight + change
            changes[name] = change
    weights["model.embed_tokens.weight"] = weights["model.embed_tokens.weight"] * (1 + embedding_change)
    folder.mkdir()
    shutil.copyfile(base / "config.json", folder / "config.json")
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return changes


def _merged(base: Path, adapter: Path) -> dict[str, object]:
    """The base model with the adapter loaded by PEFT and merged in: its weights."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), adapter)
    return model.merge_and_unload().state_dict()


def test_a_change_of_the_adapters_rank_is_carried_exactly(tmp_path) -> None:
    base = tmp_path / "base"
    original = _tiny_llama(base)
    changes = _tuned(base, tmp_path / "tuned", rank=3, embedding_change=0.01)
    result = extract_lora(tmp_path / "tuned", tmp_path / "adapter", rank=3, base=base, dtype="float32")
    assert result.modules == 2 * len(LINEAR) and set(result.kept) == set(LINEAR)
    assert all(share == pytest.approx(1.0, abs=1e-4) for share in result.kept.values())
    # The embeddings moved by 1%, the norms not at all: reported, not carried.
    assert result.left_out["embeddings"] == pytest.approx(0.01, rel=1e-3) and result.left_out["norms"] == 0.0
    merged = _merged(base, tmp_path / "adapter")
    for name, change in changes.items():
        assert torch.allclose(merged[name], original[name] + change, atol=1e-5), name
    assert torch.equal(merged["model.embed_tokens.weight"], original["model.embed_tokens.weight"])
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["r"] == config["lora_alpha"] == 3 and sorted(config["target_modules"]) == sorted(LINEAR)


def test_a_smaller_rank_keeps_the_leading_directions_and_says_how_much(tmp_path) -> None:
    base = tmp_path / "base"
    original = _tiny_llama(base)
    changes = _tuned(base, tmp_path / "tuned", rank=6)
    # Both algorithms: the randomized one (rank far below the size) and the full one.
    for rank in (2, 20):
        result = extract_lora(tmp_path / "tuned", tmp_path / f"r{rank}", rank=rank, base=base, dtype="float32")
        merged = _merged(base, tmp_path / f"r{rank}")
        for kind in LINEAR:
            kept = total = 0.0
            for name, change in changes.items():
                if f".{kind}." not in name:
                    continue
                s = torch.linalg.svdvals(change)
                kept, total = kept + float((s[:rank] ** 2).sum()), total + float((s**2).sum())
                u, sv, vh = torch.linalg.svd(change, full_matrices=False)
                best = (u[:, :rank] * sv[:rank]) @ vh[:rank]  # Eckart-Young: the closest rank-r change
                assert torch.allclose(merged[name] - original[name], best, atol=2e-4), (rank, name)
            assert result.kept[kind] == pytest.approx(kept / total, abs=1e-3)
        assert (rank >= 6) == all(share > 0.9999 for share in result.kept.values())


def test_shards_and_a_rank_above_a_layers_size(tmp_path) -> None:
    """A model saved in shards (an index naming them) reads as one file does; a rank above
    a layer's smaller side (k_proj here: 32 x 64) pads it with zero directions."""
    from transformers import AutoModelForCausalLM

    base = tmp_path / "base"
    original = _tiny_llama(base)
    changes = _tuned(base, tmp_path / "tuned", rank=3)
    sharded = tmp_path / "sharded"
    AutoModelForCausalLM.from_pretrained(tmp_path / "tuned").save_pretrained(sharded, max_shard_size="100KB")
    assert not (sharded / "model.safetensors").exists() and (sharded / "model.safetensors.index.json").is_file()
    result = extract_lora(sharded, tmp_path / "adapter", rank=40, base=base, dtype="float32")
    assert all(share == pytest.approx(1.0, abs=1e-4) for share in result.kept.values())
    merged = _merged(base, tmp_path / "adapter")
    for name, change in changes.items():
        assert torch.allclose(merged[name], original[name] + change, atol=1e-5), name
    (sharded / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"x": "missing.safetensors"}}))
    with pytest.raises(KgalignError, match="names missing.safetensors"):
        extract_lora(sharded, tmp_path / "again", rank=2, base=base)


def test_bad_input_stops_in_one_line_and_writes_nothing(tmp_path) -> None:
    base = tmp_path / "base"
    _tiny_llama(base)
    _tuned(base, tmp_path / "tuned", rank=2)
    other = tmp_path / "other"
    _tiny_llama(other, hidden=32)
    (tmp_path / "empty").mkdir()
    (tmp_path / "taken").mkdir()
    cases = [
        (tmp_path / "empty", tmp_path / "a1", "no model.safetensors nor"),
        (other, tmp_path / "a2", "has shape"),
        (tmp_path / "tuned", tmp_path / "taken", "already exists"),
    ]
    for model, output, message in cases:
        with pytest.raises(KgalignError, match=message) as error:
            extract_lora(model, output, rank=2, base=base)
        assert "\n" not in str(error.value)
    (tmp_path / "tuned" / "kgalign-finetune.json").write_text("[1, 2]")  # a training record, but not an object
    with pytest.raises(KgalignError, match="cannot read the judge's training record"):
        extract_lora(tmp_path / "tuned", tmp_path / "a4", rank=2, base=base)
    (tmp_path / "tuned" / "kgalign-finetune.json").unlink()
    with pytest.raises(KgalignError, match="rank must be at least 1"):
        extract_lora(tmp_path / "tuned", tmp_path / "a3", rank=0, base=base)
    # Nothing half written: no adapter folders, no temporary ones.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base", "empty", "other", "taken", "tuned"]
    assert not any((tmp_path / "taken").iterdir())


def test_the_cli_adapter_answers_as_the_tuned_model_does(tmp_path, embedder) -> None:
    """End to end on SmolLM2-135M: a tuned model, its extracted adapter, the base model,
    each asked the same pairwise questions by `kgalign pairs`; then an adapter measured
    on saved validation questions, whose record holds its own threshold."""
    from kgalign.judging.local import default_model_path

    base = default_model_path()
    tuned = tmp_path / "tuned"
    _tuned(base, tuned, rank=4, scale=0.003)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "chat_template.jinja"):
        if (base / name).is_file():
            shutil.copyfile(base / name, tuned / name)
    record = {"after": {"best_f1": 0.8, "best_threshold": 0.3}, "full": True, "lora": None}
    (tuned / "kgalign-finetune.json").write_text(json.dumps(record))
    adapter = tmp_path / "adapter"
    result = cli(["extract-adapter", tuned, "-o", adapter, "--rank", "4"])
    assert result.exit_code == 0, result.output
    assert "rank-4 adapter of 210 layers" in result.output and "embeddings 0.00%" in result.output
    # The training record travels, marked as the full model's measurements.
    meta = json.loads((adapter / "kgalign-finetune.json").read_text())
    assert meta["full"] is False and meta["lora"]["r"] == 4 and meta["extracted"]["rank"] == 4
    assert trained_pair_threshold("local", None, str(adapter)) == 0.3
    beer = Path(__file__).resolve().parent / "data" / "pairs" / "beer_tiny.txt"

    def confidences(name: str, *judge: str) -> list[float]:
        out = tmp_path / f"pairs-{name}"
        run = cli(["pairs", beer, *judge, "--question", "pairwise", "--rounds", "1", "--pair-threshold", "0.5", "-o", out])
        assert run.exit_code == 0, run.output
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["pair_threshold"] == 0.5 and metrics["pair_threshold_from"] == "given"  # over a trained one (the adapter's 0.3)
        return [float(line.split("\t")[2]) for line in (out / "predictions.tsv").read_text().splitlines()]

    with_model = confidences("model", "--model", str(tuned))
    with_adapter = confidences("adapter", "--adapter", str(adapter))  # on the default model
    with_base = confidences("base", "--model", str(base))  # the bare base model: no adapter
    gap = max(abs(a - b) for a, b in zip(with_model, with_adapter, strict=True))
    moved = max(abs(a - b) for a, b in zip(with_model, with_base, strict=True))
    # The change moved the answers; the adapter (bfloat16 factors) follows them.
    assert moved > 0.05 and gap < moved / 10, (gap, moved)

    # Measured on saved questions (--questions): the record's `after` is the adapter's
    # own evaluation, the full model's kept beside it; a run reads the adapter's threshold.
    from kgalign.finetune.data import DataConfig
    from kgalign.finetune.recipe import pairs_data
    from kgalign.finetune.store import save_questions

    data = pairs_data(beer, DataConfig(question="pairwise", permutations=1, val_share=0.5), embedder=embedder)
    questions = save_questions(data, tmp_path / "q.jsonl.gz")
    measured = tmp_path / "measured"
    result = cli(["extract-adapter", tuned, "-o", measured, "--rank", "4", "--questions", questions, "--max-val", "12"])
    assert result.exit_code == 0, result.output
    meta = json.loads((measured / "kgalign-finetune.json").read_text())
    after = meta["after"]
    assert after["questions"] == min(12, len(data.val)) and 0.0 <= after["best_threshold"] <= 1.0 and after["auc"] is not None
    assert meta["extracted"]["full_model_after"] == record["after"] and "adapter's own" in meta["extracted"]["measurements"]
    assert trained_pair_threshold("local", None, str(measured)) == after["best_threshold"]
    assert f"the adapter on {questions}" in result.output
    # A question set without validation questions stops in one line, before any work.
    empty = save_questions(dataclasses.replace(data, val=[]), tmp_path / "none.jsonl.gz")
    refused = cli(["extract-adapter", tuned, "-o", tmp_path / "never", "--rank", "4", "--questions", empty])
    assert refused.exit_code == 1 and "no validation questions to measure the adapter on" in refused.output
    assert not (tmp_path / "never").exists()
