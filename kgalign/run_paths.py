"""The files a run.json names, found again from any working directory.

A run's inputs and files (LEFT, RIGHT, ``--gold``, ``--seed-links``, ...) are recorded
as given, often relative to the folder the run started in; run.json records that
folder too (``working_directory``). Whoever reads them back (``kgalign rerun``,
``kgalign finetune --from-votes``, scoring a run's seed links) resolves a relative one
against it, so the run is found again from anywhere; a file that is gone is a one-line
error naming the run.json it came from. A run.json written before the folder was
recorded resolves against the current directory, as it always did.

>>> paths = RecordedPaths.of("out/persons")            # doctest: +SKIP
>>> paths.input("examples/persons/left.nt", "LEFT")    # doctest: +SKIP
PosixPath('/home/me/kgalign/examples/persons/left.nt')
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kgalign.errors import InputError
from kgalign.io.inputs import is_endpoint

if TYPE_CHECKING:
    from kgalign.config import AlignConfig
    from kgalign.replay import SavedRun

#: run.json's key for the folder the run started in (relative paths are relative to it).
WORKING_DIRECTORY = "working_directory"
#: The config's fields naming a file the run reads, by the option that sets them.
FILE_FIELDS = {"gold": "--gold", "test_gold": "--test-gold", "seed_links": "--seed-links", "corrections": "--corrections"}
#: The config's fields naming a folder or else a name (an adapter shipped in the package,
#: a served model): a relative value is made absolute only where that folder exists.
FOLDER_OR_NAME_FIELDS = ("embedder", "model", "adapter")


def working_directory() -> str:
    """The folder relative paths of this process are relative to (what run.json records)."""
    return os.getcwd()


@dataclass(frozen=True)
class RecordedPaths:
    """How to read back the paths of one run.json: ``base`` is the folder they are
    relative to, ``recorded`` whether run.json said so (else the current directory)."""

    run_json: Path
    base: Path
    recorded: bool

    @classmethod
    def of(cls, outdir: str | Path, info: Mapping[str, Any] | None = None) -> RecordedPaths:
        """The paths of ``outdir/run.json`` (``info``: its content, when read already)."""
        run_json = Path(outdir) / "run.json"
        if info is None:
            try:
                info = json.loads(run_json.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                info = {}
        folder = info.get(WORKING_DIRECTORY) if isinstance(info, Mapping) else None
        if isinstance(folder, str) and os.path.isabs(folder):
            return cls(run_json, Path(folder), True)
        return cls(run_json, Path.cwd(), False)

    def path(self, value: str | Path, what: str) -> Path:
        """The file or folder ``value`` (named by ``what``: "LEFT", "--gold") that run.json
        records, absolute; one that is gone is an error naming run.json."""
        given = Path(value)
        path = given if given.is_absolute() else self.base / given
        if not path.exists():
            if self.recorded or given.is_absolute():
                where = f"{what} of the run that {self.run_json} records"
            else:
                where = (
                    f"{what} of the run that {self.run_json} records, relative to the folder that run started in, "
                    "which this run.json (of an older kgalign) does not record: run the command from that folder"
                )
            raise InputError(f"{given if not self.recorded else path}: no such file or folder ({where})")
        return path

    def input(self, value: str | Path, what: str) -> str | Path:
        """LEFT or RIGHT as recorded: an endpoint URL as it is, a file by :meth:`path`."""
        if isinstance(value, str) and is_endpoint(value):
            return value
        return self.path(value, what)

    def config(self, config: AlignConfig) -> AlignConfig:
        """``config`` with the files it names absolute (each checked by :meth:`path`), and a
        relative model, adapter or embedder folder absolute where it exists."""
        changes: dict[str, Any] = {}
        for name, option in FILE_FIELDS.items():
            value = getattr(config, name)
            if isinstance(value, str) and value:  # seed_links may hold the pairs themselves
                changes[name] = str(self.path(value, option))
        for name in FOLDER_OR_NAME_FIELDS:
            value = getattr(config, name)
            if isinstance(value, str) and value and not os.path.isabs(value) and (self.base / value).exists():
                changes[name] = str(self.base / value)
        if config.ray.shard_folder and not os.path.isabs(config.ray.shard_folder):
            changes["ray"] = {"shard_folder": str(self.base / config.ray.shard_folder)}
        return config.replace(**changes) if changes else config


def resolve_saved_run(saved: SavedRun, outdir: str | Path, info: Mapping[str, Any] | None = None) -> SavedRun:
    """``saved`` (:func:`kgalign.replay.read_run` of ``outdir``) with its inputs and the
    config's files found from any working directory (:class:`RecordedPaths`); ``info``:
    the run.json, when read already. Idempotent: absolute paths stay as they are."""
    paths = RecordedPaths.of(outdir, info)
    graph = "GRAPH" if saved.command == "dedup" else "LEFT"
    left = paths.input(saved.left, graph)
    right = left if saved.command == "dedup" else paths.input(saved.right, "RIGHT")  # dedup: one graph
    return replace(saved, left=left, right=right, config=paths.config(saved.config))
