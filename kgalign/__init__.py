"""kgalign: align the entities of two knowledge graphs and fuse them into one.

The front door is small: :func:`align` runs the stages on two inputs under one
:class:`AlignConfig` and returns an :class:`AlignmentResult` that saves itself;
:func:`rerun` replays a saved run; ``register_*`` add components found by name.
Stages live in sub-packages (io, selection, retrieval, judging, resolution, fusion,
review) and exchange plain typed data. Names load lazily: importing kgalign costs
nothing until one is used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "AlignConfig": "kgalign.config",
    "RetrievalConfig": "kgalign.config",
    "VoteConfig": "kgalign.config",
    "AlignmentResult": "kgalign.result",
    "align": "kgalign.pipeline",
    "prepare": "kgalign.pipeline",
    "match_pairs": "kgalign.pairs",
    "rerun": "kgalign.replay",
    "register_judge": "kgalign.judging.base",
    "JudgeOption": "kgalign.judging.base",
    "register_resolver": "kgalign.resolution.resolve",
    "KgalignError": "kgalign.errors",
    "ConfigError": "kgalign.errors",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kgalign' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
