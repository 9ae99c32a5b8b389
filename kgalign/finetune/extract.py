"""A LoRA adapter extracted from a fully fine-tuned model, small enough to ship.

Full fine-tuning (``kgalign finetune --full``, AnyMatch's way) learns where LoRA trained
from scratch moved slowly, but its result is a whole model (540 MB for SmolLM2-135M in
float32). What it changed in each linear layer of the transformer blocks is the
difference ``W_tuned - W_base``; its truncated singular value decomposition
``U_r S_r V_r^T`` is the best rank-``r`` approximation of that difference (Eckart-Young),
and it is exactly a LoRA update: ``lora_B = U_r sqrt(S_r)``, ``lora_A = sqrt(S_r) V_r^T``,
with ``lora_alpha = r`` so that PEFT scales it by one. The result is an ordinary adapter
folder: ``kgalign run --adapter``, vLLM and ``kgalign finetune --init-adapter`` load it.

The other weights a full fine-tuning moves (the token embeddings, tied to the output
head, and the normalisation vectors) are not carried. :func:`extract_lora` reports how
far they moved (relative Frobenius norm) beside the share of each layer kind's change
the rank keeps, so that a user sees what the adapter leaves out. Measure the adapter
before shipping it: with ``questions`` (``kgalign extract-adapter --questions Q``) the
adapter is evaluated on the validation questions of the set the model was trained on,
and its record holds its own threshold.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kgalign import __version__
from kgalign.errors import KgalignError
from kgalign.finetune.train import TIED_HEAD, Evaluation
from kgalign.io.atomic import make_output_dir
from kgalign.judging.adapters import TRAINING_RECORD, training_record
from kgalign.judging.local import default_model_path

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"  # a model saved in shards
#: Adapter weights' arithmetic when saved: bfloat16 halves the file; the update's
#: rounding error (about 0.4% of each factor) is far below what the rank leaves out.
DTYPES = ("bfloat16", "float32")


@dataclass
class Extraction:
    """What :func:`extract_lora` wrote and what it left out."""

    output: Path
    rank: int
    modules: int  # linear layers given an adapter
    parameters: int  # adapter weights
    bytes: int  # adapter_model.safetensors
    #: Per layer kind (q_proj, up_proj...): the share of the change's squared Frobenius
    #: norm the rank keeps, over every layer of that kind.
    kept: dict[str, float] = field(default_factory=dict)
    #: Weights the fine-tuning moved that the adapter does not carry: their change's
    #: Frobenius norm relative to the weights' own (0.01: one percent).
    left_out: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    #: With questions: the adapter's own validation figures.
    measured: Evaluation | None = None


def extract_lora(
    model: str | Path,
    output: str | Path,
    rank: int,
    base: str | Path | None = None,
    dtype: str = "bfloat16",
    questions: str | Path | None = None,
    max_val: int = 400,
) -> Extraction:
    """Write into ``output`` the rank-``rank`` LoRA adapter closest to ``model``'s change
    from ``base`` (default: the local judge's SmolLM2-135M), layer by layer.

    With ``questions`` (a set saved by ``kgalign finetune --save-questions``, normally the
    one ``model`` was trained on), the adapter itself is then measured on the first
    ``max_val`` of its validation questions: its record's ``after`` (and so the pairwise
    threshold a run takes from it) is the adapter's own, the full model's kept under
    ``extracted.full_model_after``.

    ``output`` is written whole or not at all (a temporary folder, then a rename) and
    must not exist yet. One-line errors name the folder whose weights are missing or do
    not fit the base's.
    """
    import torch

    started = time.monotonic()
    model, output = Path(model), Path(output)
    base_path = Path(base) if base else default_model_path()
    if rank < 1:
        raise KgalignError(f"the adapter's rank must be at least 1, not {rank}")
    if dtype not in DTYPES:
        raise KgalignError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    if output.exists():
        raise KgalignError(f"{output}: already exists; give a new folder for the adapter")
    record = training_record(model) or {}  # read first: a malformed one stops before the work
    val = _validation(questions, max_val) if questions is not None else None
    tuned = _weights(model)
    original = _weights(base_path)
    missing = sorted(set(original) - set(tuned) - {TIED_HEAD})
    if missing or set(tuned) - set(original):
        raise KgalignError(f"{model}: its weights do not fit {base_path}'s ({len(missing)} missing, {len(set(tuned) - set(original))} unknown)")

    state: dict[str, Any] = {}
    energy: dict[str, list[float]] = {}
    left_out: dict[str, list[float]] = {}
    targets: set[str] = set()
    modules = 0
    for name, weight in sorted(tuned.items()):
        if weight.shape != original[name].shape:
            raise KgalignError(f"{model}: {name} has shape {tuple(weight.shape)}, {base_path} {tuple(original[name].shape)}")
        delta = weight.float() - original[name].float()
        if _is_block_linear(name, delta.dim()):
            kind = name.rsplit(".", 2)[-2]
            u, s, vh = _top_singular(delta, rank)
            root = s.sqrt()
            prefix = "base_model.model." + name[: -len(".weight")]
            state[f"{prefix}.lora_A.weight"] = (root[:, None] * vh).to(getattr(torch, dtype)).contiguous()
            state[f"{prefix}.lora_B.weight"] = (u * root[None, :]).to(getattr(torch, dtype)).contiguous()
            total = float((delta**2).sum())
            sums = energy.setdefault(kind, [0.0, 0.0])
            sums[0] += float((s**2).sum())
            sums[1] += total
            targets.add(kind)
            modules += 1
        else:
            group = _group(name)
            sums = left_out.setdefault(group, [0.0, 0.0])
            sums[0] += float((delta**2).sum())
            sums[1] += float((original[name].float() ** 2).sum())
    if not modules:
        raise KgalignError(f"{model}: no linear layer inside transformer blocks (model.layers.N...) to extract an adapter from")

    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_output_dir(f".{output.name}-", output.parent)
    try:
        from peft import LoraConfig
        from safetensors.torch import save_file

        config = LoraConfig(r=rank, lora_alpha=rank, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM", target_modules=sorted(targets))
        config.base_model_name_or_path = base_path.name
        config.inference_mode = True
        config.save_pretrained(str(tmp))
        save_file(state, str(tmp / "adapter_model.safetensors"), metadata={"format": "pt"})
        result = Extraction(
            output=output,
            rank=rank,
            modules=modules,
            parameters=sum(t.numel() for t in state.values()),
            bytes=(tmp / "adapter_model.safetensors").stat().st_size,
            kept={kind: round(kept / total, 4) if total else 1.0 for kind, (kept, total) in sorted(energy.items())},
            left_out={group: round((moved / own) ** 0.5, 6) if own else 0.0 for group, (moved, own) in sorted(left_out.items())},
        )
        if val is not None:
            result.measured = _measure(tmp, base_path, val, int(record.get("best_step") or 0))
            log.info("the adapter measured on %s: %s", questions, result.measured.brief())
        result.seconds = round(time.monotonic() - started, 1)
        _write_record(tmp, record, model, base_path, result, dtype, questions)
        os.replace(tmp, output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("rank-%d adapter from %s: %d layers, %.1f MB, change kept %s", rank, model, modules, result.bytes / 1e6, result.kept)
    return result


def _validation(questions: str | Path, max_val: int) -> list[Any]:
    """The first ``max_val`` validation questions of a saved set (one line if it has none)."""
    from kgalign.finetune.store import load_questions

    data, _ = load_questions(questions)
    val = data.val[:max_val]
    if not val:
        raise KgalignError(f"{questions}: no validation questions to measure the adapter on")
    return val


def _measure(folder: Path, base_path: Path, val: list[Any], step: int) -> Evaluation:
    """The adapter in ``folder`` on ``base_path``, evaluated as training evaluates (its
    best F1 over every threshold, that threshold, ROC AUC)."""
    from peft import PeftModel

    from kgalign.finetune.train import evaluate, load_base
    from kgalign.runtime.device import resolve_device

    device = resolve_device(None)
    base, tokenizer, _ = load_base(str(base_path), device)
    model = PeftModel.from_pretrained(base, str(folder))
    return evaluate(model, tokenizer, val, step, device)


def _weights(folder: Path) -> dict[str, Any]:
    """The weights of a model folder: one safetensors file, or the shards its index names."""
    from safetensors.torch import load_file

    path = folder / WEIGHTS_FILE
    if path.is_file():
        return load_file(str(path))
    index = folder / INDEX_FILE
    if not index.is_file():
        raise KgalignError(f"{folder}: no {WEIGHTS_FILE} nor {INDEX_FILE} (a model folder saved by `kgalign finetune --full` or transformers)")
    try:
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise KgalignError(f"{index}: not a safetensors index with a weight_map ({exc})") from None
    weights: dict[str, Any] = {}
    for shard in shards:
        if not (folder / shard).is_file():
            raise KgalignError(f"{index}: names {shard}, which is not in {folder}")
        weights.update(load_file(str(folder / shard)))
    return weights


def _top_singular(matrix: Any, rank: int) -> tuple[Any, Any, Any]:
    """The ``rank`` largest singular values of ``matrix`` and their vectors (U, S, V^T).

    A rank well below the matrix's size takes the randomized algorithm (Halko et al.,
    ``torch.svd_lowrank``: oversampled by 10, four power iterations, seeded), an order of
    magnitude faster than the full decomposition and as exact on the leading values;
    otherwise the full decomposition, cut (or, for a rank above the matrix's, padded with
    zero directions, as every layer's adapter has the same rank).
    """
    import torch

    smallest = min(matrix.shape)
    if rank + 10 < smallest // 2:
        state = torch.random.get_rng_state()
        torch.manual_seed(0)
        try:
            u, s, v = torch.svd_lowrank(matrix, q=rank + 10, niter=4)
        finally:
            torch.random.set_rng_state(state)
        return u[:, :rank], s[:rank], v[:, :rank].T
    u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
    if rank > s.numel():  # a rank above the matrix's: zero directions fill it (PEFT wants r of each)
        extra = rank - s.numel()
        u = torch.cat([u, u.new_zeros(u.shape[0], extra)], dim=1)
        s = torch.cat([s, s.new_zeros(extra)])
        vh = torch.cat([vh, vh.new_zeros(extra, vh.shape[1])], dim=0)
    return u[:, :rank], s[:rank], vh[:rank]


def _is_block_linear(name: str, dims: int) -> bool:
    """A linear layer's weight inside a transformer block (``model.layers.N.<...>.weight``)."""
    return dims == 2 and ".layers." in name and name.endswith(".weight")


def _group(name: str) -> str:
    """What a weight the adapter leaves out is, for the report: embeddings, norms, head."""
    if "embed" in name:
        return "embeddings"
    if "norm" in name:
        return "norms"
    if "lm_head" in name:
        return "head"
    return "other"


def _write_record(
    folder: Path, record: dict[str, Any], model: Path, base: Path, result: Extraction, dtype: str, questions: str | Path | None = None
) -> None:
    """kgalign-finetune.json in ``folder``: ``model``'s training record (``record``), now
    describing the adapter.

    Unless the adapter was measured (``result.measured``), the record's measurements (``before``, ``after``
    and its threshold) are the full model's; ``extracted`` says which they are.
    """
    record = dict(record)
    measured = result.measured
    if measured is not None:
        full_after = record.get("after")
        record["after"] = asdict(measured)
        how = f"the adapter's own ({measured.questions} validation questions of {questions}); the full model's under full_model_after"
    else:
        full_after = None
        how = "the full model's, until measured (`kgalign extract-adapter --questions Q`, or `kgalign finetune --init-adapter THIS --max-steps 0`)"
    record["full"] = False
    record["lora"] = {"r": result.rank, "alpha": result.rank, "dropout": 0.0, "layers": "all", "target_modules": sorted(result.kept)}
    summary = {k: v for k, v in asdict(result).items() if k not in ("output", "measured")}
    record["extracted"] = {
        **summary,
        "from": str(model),
        "base_model": base.name,
        "dtype": dtype,
        "kgalign": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "measurements": how,
    }
    if full_after is not None:
        record["extracted"]["full_model_after"] = full_after
    (folder / TRAINING_RECORD).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
