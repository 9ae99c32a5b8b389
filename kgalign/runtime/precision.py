"""The arithmetic a model runs in: float32, or bfloat16 autocast where the hardware has it.

Shared by the embedder and the local judge (and fine-tuning), so that ``auto`` means the
same everywhere.
"""

from __future__ import annotations

import contextlib
import functools

from kgalign.errors import KgalignError

PRECISIONS = ("auto", "float32", "bfloat16")


def native_bfloat16(device: str = "cpu") -> bool:
    """Whether ``device`` computes in bfloat16 natively (AVX512-BF16/AMX CPUs, recent GPUs).

    Emulated bfloat16 is slower than float32, so "auto" precision only picks it
    where the hardware has it.
    """
    if device == "cpu":
        flags = _cpu_flags()
        if flags is not None:
            # Read from the CPU's flags, so that a run whose vectors are all cached
            # never imports torch (over a second) only to name its cache entries.
            return bool(flags & {"avx512_bf16", "amx_bf16"})
    import torch

    if device.startswith("cuda"):
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - depends on the torch build
        return False


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str] | None:
    """The CPU feature flags of Linux's /proc/cpuinfo; None elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        return None
    return None


def resolve_precision(requested: str, device: str = "cpu", what: str = "precision") -> str:
    """``requested`` checked against PRECISIONS, ``auto`` made concrete for ``device``.

    ``what`` names the setting in the error ("embedder precision", "local judge dtype").
    """
    if requested not in PRECISIONS:
        raise KgalignError(f"{what} must be one of {', '.join(PRECISIONS)}, not {requested!r}")
    if requested == "auto":
        return "bfloat16" if native_bfloat16(device) else "float32"
    return requested


def precision_context(precision: str, device: str = "cpu") -> contextlib.AbstractContextManager:
    """bfloat16 autocast (weights and norms stay float32), or nothing for float32."""
    if precision == "float32":
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device.split(":")[0], dtype=getattr(torch, precision))


def float32_output_head(model: object) -> None:
    """Compute ``model``'s output head (the vocabulary logits) in float32, autocast or not.

    Under bfloat16 autocast the head's matrix product returns bfloat16, whose 8 bits of
    mantissa put the difference of two answers' logits on steps of 1/8 or coarser: a
    pairwise judge's probability of yes took five values over 24 validation questions of a
    recipe, and pairs could not be ranked. The head's forward is replaced by a float32
    product with autocast off (one position a row with ``logits_to_keep=1``: a
    vocabulary-sized product, little beside the layers); in float32 it computes what the
    head computed. Idempotent; gradients flow as through the head itself.
    """
    import torch

    head = model.get_output_embeddings()  # type: ignore[attr-defined]
    if head is None or getattr(head, "_kgalign_float32", False):
        return

    def forward(hidden: torch.Tensor) -> torch.Tensor:
        bias = head.bias.float() if getattr(head, "bias", None) is not None else None
        with torch.autocast(hidden.device.type, enabled=False):
            return torch.nn.functional.linear(hidden.float(), head.weight.float(), bias)

    head.forward = forward
    head._kgalign_float32 = True
