"""kgalign: align the entities of two knowledge graphs and fuse them into one.

The front door is :func:`align`, which returns an :class:`AlignmentResult` that can
save itself. Stages live in their own modules (load, select, embed, retrieve,
judges, vote, resolve, fuse, export, log, evaluate) and exchange plain data.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["AlignConfig", "AlignmentResult", "align", "__version__"]


def __getattr__(name: str):
    # The pipeline imports numpy, rdflib and friends: load it only when asked for.
    if name in ("AlignConfig", "AlignmentResult", "align"):
        from kgalign import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'kgalign' has no attribute {name!r}")
