"""The fused graph and its provenance as shards, written by the fusion partitions.

With fusion by partitions (``--engine ray``, :mod:`kgalign.fusion.partitioned`) each
partition holds the sorted rows of the subjects it owns, and writes them itself:

- ``fused/part-NNNNN.ttl``: its rows grouped by subject, as fused.ttl writes them (a
  subject is in one shard only), so the shards together are fused.ttl's graph;
- ``provenance/part-NNNNN.trig``: the same rows in the named graph of each source they
  came from; with ``provenance/run.trig`` (the run and the dropped triples, written by
  the driver) they are provenance.trig's dataset.

The shards carry no prefixes, so concatenating them makes one Turtle (TriG) document.
A blank node's label is the same in every shard that names it (its own rows are in
the partition of its label, the rows that point at it in those of their subjects):
load the shards as one document, or with a loader that keeps labels across files;
loaded file by file, such a node would become several.

The partitions write into a staging folder the driver makes (:class:`ShardFolder`:
inside the output folder from the command line, so that the move into place is a
rename), holding a token: a partition on a node that does not see the folder (no
shared filesystem) finds no token and leaves its shard to the driver, which writes it
from the rows it fetches. The staging folder is moved into the output folder with the
other outputs, all or none (:func:`kgalign.io.atomic.replace_later`), and removed if the
run fails or the result goes without being saved; a process killed outright leaves it
behind, named ``.kgalign-shards-*``.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
import weakref
from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Protocol

from kgalign.errors import KgalignError
from kgalign.fusion.export import SOURCE_GRAPHS
from kgalign.io.atomic import atomic_open, in_deferred_block, make_output_dir, remove_later, replace_later
from kgalign.io.triples import Triple
from kgalign.io.turtle import RankedRows, StreamedRows, write_trig, write_triples
from kgalign.outputs import RUN_SHARD, SHARD_DIRS, is_shard_folder

log = logging.getLogger(__name__)

#: The output folders of the shards.
FUSED_DIR, PROVENANCE_DIR = SHARD_DIRS
#: Where a staging folder is made when the settings name none: the command line sets
#: its output folder here, so that the shards move into it by a rename.
STAGING: ContextVar[Path | None] = ContextVar("kgalign_shard_staging", default=None)
#: The staging folder's token file (a partition that reads the driver's token sees the folder).
TOKEN_FILE = ".token"


class Rows(Protocol):
    """Sorted rows and their sources: :class:`kgalign.fusion.export.FusedRows` or
    :class:`kgalign.fusion.spilled.SpilledRows`."""

    @property
    def rows(self) -> RankedRows | StreamedRows: ...

    def of_source(self, source: str) -> RankedRows | StreamedRows: ...


def shard_name(number: int) -> str:
    return f"part-{number:05d}"


def sees(folder: str | Path, token: str) -> bool:
    """Whether this process sees the staging ``folder`` the driver made with ``token``."""
    try:
        return (Path(folder) / TOKEN_FILE).read_text(encoding="ascii") == token
    except (OSError, UnicodeDecodeError):
        return False


def write_shard(rows: Rows, folder: str | Path, number: int) -> None:
    """The ``number``-th partition's shards of ``rows`` in the staging ``folder``."""
    folder = Path(folder)
    with atomic_open(folder / FUSED_DIR / f"{shard_name(number)}.ttl") as handle:
        write_triples(handle, rows.rows)
    with atomic_open(folder / PROVENANCE_DIR / f"{shard_name(number)}.trig") as handle:
        write_trig(handle, [], {iri: rows.of_source(source) for source, iri in SOURCE_GRAPHS.items()})


class ShardFolder:
    """The staging folder of a fusion's shards (see the module text), and what they hold."""

    def __init__(self, base: str | Path | None, parts: int) -> None:
        """A new staging folder in ``base`` (default: :data:`STAGING`, else the temporary directory), for
        ``parts`` partitions. Raises :class:`KgalignError` where it cannot be made."""
        base = base if base is not None else STAGING.get()
        # Absolute: a relative folder would be read from each actor's own working directory.
        where = (Path(base) if base is not None else Path(tempfile.gettempdir())).resolve()
        try:
            where.mkdir(parents=True, exist_ok=True)
            self.path = Path(tempfile.mkdtemp(prefix=".kgalign-shards-", dir=where))
        except OSError as exc:
            raise KgalignError(f"{exc.filename or where}: cannot make the shards' folder there ({exc.strerror or exc})") from None
        self._remove = weakref.finalize(self, shutil.rmtree, self.path, True)
        self.token = secrets.token_hex(16)
        try:
            for name in SHARD_DIRS:
                (self.path / name).mkdir()
            (self.path / TOKEN_FILE).write_text(self.token, encoding="ascii")
        except OSError as exc:
            self._remove()
            raise KgalignError(f"{exc.filename or self.path}: cannot make the shards' folder ({exc.strerror or exc})") from None
        self.parts = parts
        self.rows = 0
        self.by_driver: list[int] = []  # the partitions whose shards the driver wrote
        self.saved_to: Path | None = None  # the first output folder they were moved into

    def __len__(self) -> int:
        return self.rows

    def describe(self) -> dict[str, Any]:
        """What run.json records of the shards."""
        return {
            "files": self.parts,
            "folders": list(SHARD_DIRS),
            "written_by_partitions": self.parts - len(self.by_driver),
            "written_by_driver": len(self.by_driver),
        }

    def save(self, outdir: Path, default: Iterable[Triple], dropped: Sequence[Triple], dropped_graph: Any) -> None:
        """Write the driver's provenance shard (the run's triples in ``default``, the
        ``dropped`` ones in ``dropped_graph``) and move the shard folders into ``outdir``
        with the other outputs (inside :func:`kgalign.io.atomic.deferred_renames`): a
        rename where the staging folder is on ``outdir``'s filesystem (left in the
        staging folder if the outputs fail), else a copy made there first. Saved
        before, they are copied from where they went. A folder of that name holding
        files kgalign did not write stops the save in one line."""
        for name in SHARD_DIRS:
            if (outdir / name).is_dir() and not is_shard_folder(outdir / name):
                raise KgalignError(f"{outdir / name}: holds files kgalign did not write; move them, or write into another folder")
        source = self.saved_to or self.path
        if self.saved_to is None:
            with open(self.path / PROVENANCE_DIR / RUN_SHARD, "w", encoding="utf-8") as handle:
                write_trig(handle, default, {dropped_graph: dropped})
        for name in SHARD_DIRS:
            if source == self.path and os.stat(self.path).st_dev == os.stat(outdir).st_dev:
                replace_later(self.path / name, outdir / name, keep=True)
                continue
            copy = make_output_dir(f".{name}.", outdir)
            try:
                shutil.copytree(source / name, copy, dirs_exist_ok=True)
            except BaseException:
                shutil.rmtree(copy, ignore_errors=True)
                raise
            replace_later(copy, outdir / name)

    def saved(self, outdir: Path) -> None:
        """The outputs are in ``outdir`` (its deferred renames done): the staging folder
        goes (inside an outer block, whose renames are still to come, it stays until
        this object goes)."""
        if in_deferred_block():
            return
        if self.saved_to is None:
            self.saved_to = outdir
        self.close()

    def close(self) -> None:
        """Remove the staging folder (what was moved out of it stays)."""
        self._remove()


def remove_stale(outdir: Path) -> None:
    """Remove, with the outputs (:func:`kgalign.io.atomic.remove_later`), shard folders
    an earlier run left in ``outdir`` (this run wrote none), so that they cannot be read
    as this run's; a folder holding anything else is kept."""
    for name in SHARD_DIRS:
        folder = outdir / name
        if not folder.is_dir():
            continue
        if is_shard_folder(folder):
            remove_later(folder)
            log.info("%s: removed the shards of an earlier run (this run wrote none)", folder)
        else:
            log.warning("%s: holds files kgalign did not write; left as it is (it is not this run's fused graph)", folder)
