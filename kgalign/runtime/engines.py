"""What runs the pipeline's stages: engines found by name (``kgalign run --engine NAME``).

``local`` (the default) runs every stage in this process, the way the rest of the
package describes. An engine is a callable with the signature of
:func:`kgalign.pipeline.run_local` (inputs, config, embedder, judge, earlier run) that
returns an :class:`~kgalign.result.AlignmentResult`; another package adds one through
the ``kgalign.engines`` entry-point group, or with :func:`register_engine`.
"""

from __future__ import annotations

from typing import Any

from kgalign.registry import Registry

Engine = Any
ENGINES: Registry[Engine] = Registry("engine", "kgalign.engines")


def register_engine(name: str, engine: Engine | str, description: str = "") -> None:
    """Add an engine, usable as ``kgalign run --engine NAME`` and ``AlignConfig(engine=NAME)``."""
    ENGINES.register(name, engine, description)


register_engine("local", "kgalign.pipeline:run_local", "every stage in this process (one machine)")
register_engine("ray", "kgalign.runtime.ray_engine:run_ray", "embedding, the lexical search and judging on the actors of a Ray cluster (pip install 'kgalign[ray]')")
