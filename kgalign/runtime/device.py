"""Where the models run: ``--device auto|cpu|cuda|cuda:N|mps``.

One rule for the embedder, the local judge and fine-tuning, so ``auto`` means the same
everywhere: the first CUDA GPU when torch sees one, else the CPU. Deciding ``auto`` on
a machine with no NVIDIA driver never imports torch (over a second), so a small run
whose vectors are all cached stays fast.
"""

from __future__ import annotations

import os
import re

from kgalign.errors import KgalignError

DEVICE_HELP = "auto (a CUDA GPU when torch sees one, else the CPU), cpu, cuda, cuda:N or mps"

_NVIDIA_MARKERS = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/nvidia0")
_CUDA = re.compile(r"cuda(?::(\d+))?")


def nvidia_driver_present() -> bool:
    """Whether this machine shows an NVIDIA driver (read from the file system, no torch import)."""
    return any(os.path.exists(marker) for marker in _NVIDIA_MARKERS)


def resolve_device(requested: str | None = "auto", option: str = "--device") -> str:
    """``requested`` checked against what this machine has, ``auto`` made concrete.

    Raises a one-line :class:`KgalignError` for an unknown name or a device that is
    not there (say ``cuda`` with a CPU build of torch). ``option`` names the setting
    in that message.
    """
    requested = (requested or "auto").strip().lower()
    if requested == "cpu":
        return "cpu"
    if requested == "auto":
        if not nvidia_driver_present():
            return "cpu"
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    cuda = _CUDA.fullmatch(requested)
    if cuda:
        import torch

        if not torch.cuda.is_available():
            build = f"torch {torch.__version__}" + ("" if torch.version.cuda else ", a CPU-only build")
            raise KgalignError(f"{option} {requested}: torch sees no CUDA GPU here ({build}); use {option} cpu or auto")
        index = int(cuda.group(1) or 0)
        count = torch.cuda.device_count()
        if index >= count:
            raise KgalignError(f"{option} {requested}: this machine has {count} CUDA GPU(s), numbered from 0")
        return requested
    if requested == "mps":
        import torch

        if not torch.backends.mps.is_available():
            raise KgalignError(f"{option} mps: torch sees no Apple GPU here; use {option} cpu or auto")
        return "mps"
    raise KgalignError(f"{option} must be {DEVICE_HELP}, not {requested!r}")
