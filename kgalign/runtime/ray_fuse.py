"""``--engine ray``'s fusion: the input files rewritten onto canonical IRIs by partitions
on Ray actors (:mod:`kgalign.fusion.partitioned`).

The driver reads the files again in blocks, as the load did (:mod:`kgalign.runtime.ray_load`),
and the partition actors, each holding the canonical map, route each line to the
partition of its canonical subject, rewrite and keep their triples, and render them
as sorted rows. The driver takes the rows a chunk at a time into files on local disk,
and the writers merge them (:mod:`kgalign.fusion.spilled`): no process holds all the
fused triples (on one process they are the largest thing fusion holds). Every
conflict policy is settled there too (the partitions find the functional predicates
together first). A run fuses in the driver instead where this does not apply: an input
of a format the partitions do not read (RDF/XML, a table), a fusion small enough for
rdflib's pretty Turtle, a line a partition cannot parse, or rows that cannot be spilled
(a full disk). The partitions also write their rows as shards (:mod:`kgalign.fusion.shards`,
``RayConfig.shards``). The files must
not change meanwhile: their size and modification time are checked before they are
read again (as :class:`kgalign.io.reloaded.ReloadedTriples` checks them).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from rdflib import URIRef
from rdflib.namespace import OWL

from kgalign.config import RayConfig
from kgalign.errors import InputError, first_line
from kgalign.fusion.fuse import CONFLICT_POLICIES, FusionResult, choose_canonical, cluster_links, same_as_pairs
from kgalign.fusion.partitioned import FusePartition, fuse_partitioned
from kgalign.fusion.shards import ShardFolder
from kgalign.fusion.spilled import SpillFailed
from kgalign.io import turtle
from kgalign.io.partitioned import PartitionFailed
from kgalign.io.reloaded import ReloadedTriples, fingerprint
from kgalign.io.triples import TripleSource
from kgalign.model import Link
from kgalign.runtime import ray_load
from kgalign.runtime.ray_load import RayExchange, Splitting, partitioned_files

log = logging.getLogger(__name__)


class RemoteFusePartition(FusePartition, Splitting):
    """A partition of the fusion as a Ray actor."""


class RayFuser:
    """Fuses two inputs on the partitions of a Ray cluster (see the module text)."""

    def __init__(self, ray: Any, parts: int, settings: RayConfig | None = None) -> None:
        self.ray = ray
        self.parts = max(1, parts)
        self.settings = settings or RayConfig()
        self.used = False
        self.shards: dict[str, Any] | None = None  # what run.json records of the shards written

    def __call__(
        self,
        left: TripleSource,
        right: TripleSource,
        links: Sequence[Link],
        canonical: str,
        conflicts: str,
        same_side: Mapping[str, Sequence[Link]] | None = None,
    ) -> FusionResult | None:
        """The fusion :func:`kgalign.fusion.fuse.fuse` gives, or None where the driver must fuse."""
        if len(left) + len(right) <= turtle.PRETTY_LIMIT:
            return None
        sides = []
        for side, graph in (("left", left), ("right", right)):
            if not isinstance(graph, ReloadedTriples):
                return None
            files = partitioned_files(graph.path, graph.fmt)
            if files is None:
                return None
            if fingerprint(graph.path) != graph.taken:
                raise InputError(f"{graph.path}: the file changed while kgalign was running; run again")
            sides.append((side, files))
        clusters = cluster_links(links, same_side)
        mapping = choose_canonical(clusters, links, canonical, same_side)
        namespaces = list(left.namespaces()) + list(right.namespaces()) + [("owl", URIRef(str(OWL)))]
        settings = self.settings
        shards = ShardFolder(settings.shard_folder, self.parts) if settings.shards else None
        exchange = RayExchange(self.ray, self.parts, RemoteFusePartition, self.ray.put(mapping), self.ray.put(same_as_pairs(clusters, mapping)), conflicts, CONFLICT_POLICIES.get(conflicts))
        fusion = None
        try:
            fusion = fuse_partitioned(
                sides, mapping, clusters, namespaces, exchange, ray_load.BLOCK_BYTES, ray_load.WINDOW * self.parts,
                shards=shards, single_files_limit=settings.single_files_limit if shards is not None else None,
                at_least=turtle.PRETTY_LIMIT,
            )  # fmt: skip
        except PartitionFailed as failed:
            log.info("the partitions could not fuse the inputs (%s); fusing in the driver", failed)
        except SpillFailed as failed:
            log.warning("%s; fusing in the driver", failed)
        except self.ray.exceptions.RayError as exc:  # an actor died (out of memory, a lost node)
            log.warning("a fusion partition failed (%s); fusing in the driver", first_line(exc))
        finally:
            exchange.close()
            if fusion is None and shards is not None:
                shards.close()
        if fusion is None:  # failed, or small enough for rdflib's pretty Turtle: the driver fuses
            return None
        log.info("fused %d triples in %d partitions", len(fusion), self.parts)
        self.used = True
        if shards is not None:
            self.shards = {**shards.describe(), "single_files": fusion.single_files}
        return fusion
