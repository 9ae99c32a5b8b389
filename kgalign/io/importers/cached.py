"""Convert a benchmark once: an importer's output folder reused while its inputs are unchanged.

:func:`convert_cached` runs :func:`~kgalign.io.importers.convert_dbp15k` or
:func:`~kgalign.io.importers.convert_tables` into a folder and leaves a stamp there
(:data:`STAMP_FILE`): the importer, its options, the kgalign version, and the path, size
and modification time of every input file. A later call with the same stamp, whose
output files are all still there, reuses the folder instead of converting again.
:func:`current_conversion` is that check alone, for callers that run the conversion
elsewhere (a fresh process, say) and only want to know whether they must.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kgalign import __version__
from kgalign.errors import InputError
from kgalign.io.atomic import write_text_atomic
from kgalign.io.importers.common import ConversionReport
from kgalign.io.importers.dbp15k import convert_dbp15k
from kgalign.io.importers.tables import convert_tables

log = logging.getLogger(__name__)

STAMP_FILE = "kgalign-conversion.json"
KINDS = ("dbp15k", "tables")


@dataclass
class CachedConversion:
    """An importer's output folder: converted now (``cached`` false) or found up to date."""

    outdir: Path
    files: dict[str, Path] = field(default_factory=dict)
    cached: bool = False
    seconds: float | None = None  # the conversion's, when it was made
    summary: str = ""

    def record(self) -> dict[str, Any]:
        """JSON-ready: cached, seconds, dir, summary."""
        return {"cached": self.cached, "seconds": self.seconds, "dir": str(self.outdir), "summary": self.summary}


def conversion_stamp(kind: str, inputs: Sequence[str | Path], options: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a conversion is made of: importer, options, kgalign version, and every input
    file (a folder's files too) with its size and modification time."""
    if kind not in KINDS:
        raise InputError(f"unknown importer {kind!r}; choose from {', '.join(KINDS)}")
    files = []
    for source in map(Path, inputs):
        if not source.exists():
            raise InputError(f"{source}: not found")
        for path in sorted([source] if source.is_file() else [p for p in source.rglob("*") if p.is_file()]):
            stat = path.stat()
            files.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    return {
        "kind": kind,
        "inputs": [str(Path(p).resolve()) for p in inputs],
        "options": {key: value for key, value in sorted((options or {}).items()) if value is not None},
        "kgalign": __version__,
        "files": files,
    }


def current_conversion(kind: str, inputs: Sequence[str | Path], outdir: str | Path, **options: Any) -> CachedConversion | None:
    """The conversion in ``outdir`` if it was made from these inputs with these options
    by this kgalign and its files are all there; None when it must be made (again)."""
    outdir = Path(outdir)
    stamp_path = outdir / STAMP_FILE
    if not stamp_path.is_file():
        return None
    try:
        saved = json.loads(stamp_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("stamp") != conversion_stamp(kind, inputs, options):
        return None
    files = {name: outdir / name for name in saved.get("files") or []}
    if not files or not all(path.is_file() for path in files.values()):
        return None
    return CachedConversion(outdir, files, cached=True, seconds=saved.get("seconds"), summary=saved.get("summary", ""))


def convert_cached(kind: str, inputs: Sequence[str | Path], outdir: str | Path, **options: Any) -> CachedConversion:
    """Convert ``inputs`` into ``outdir`` with importer ``kind``, unless ``outdir`` already
    holds that conversion (:func:`current_conversion`).

    ``kind`` ``"dbp15k"``: ``inputs`` is the DBP15K/SRPRS folder, ``options`` may give
    ``train_share`` (``kgalign convert dbp15k``). ``"tables"``: ``inputs`` is the left
    and the right table, and the mapping file if there is one; ``options`` may give
    ``id_column`` (``kgalign convert tables``).
    """
    options = {key: value for key, value in options.items() if value is not None}
    found = current_conversion(kind, inputs, outdir, **options)
    if found is not None:
        log.info("%s: up to date (%s)", outdir, found.summary)
        return found
    stamp = conversion_stamp(kind, inputs, options)
    outdir = Path(outdir)
    (outdir / STAMP_FILE).unlink(missing_ok=True)  # an interrupted conversion is not reused
    started = time.perf_counter()
    report = _run_importer(kind, [Path(p) for p in inputs], outdir, options)
    seconds = round(time.perf_counter() - started, 2)
    names = sorted(path.name for path in report.files.values())
    write_text_atomic(
        outdir / STAMP_FILE,
        json.dumps({"stamp": stamp, "files": names, "seconds": seconds, "summary": report.summary()}, indent=2) + "\n",
    )
    return CachedConversion(outdir, {name: outdir / name for name in names}, cached=False, seconds=seconds, summary=report.summary())


def _run_importer(kind: str, inputs: list[Path], outdir: Path, options: dict[str, Any]) -> ConversionReport:
    if kind == "dbp15k":
        if len(inputs) != 1:
            raise InputError(f"dbp15k: one input folder, not {len(inputs)} inputs")
        return convert_dbp15k(inputs[0], outdir, **options)
    if len(inputs) not in (2, 3):
        raise InputError(f"tables: a left and a right table and an optional mapping, not {len(inputs)} inputs")
    return convert_tables(inputs[0], inputs[1], outdir, inputs[2] if len(inputs) == 3 else None, **options)
