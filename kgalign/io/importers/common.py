"""What the importers share: the report they return and writing gold pairs."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kgalign.errors import InputError
from kgalign.io.atomic import atomic_open

log = logging.getLogger(__name__)


@dataclass
class ConversionReport:
    """The files an importer wrote and what they hold."""

    outdir: Path
    files: dict[str, Path] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for the CLI: counts, then the files written."""
        counts = ", ".join(f"{value} {key.replace('_', ' ')}" for key, value in self.counts.items())
        return f"{counts} -> {', '.join(sorted(p.name for p in self.files.values()))} in {self.outdir}"


def prepare_outdir(outdir: str | Path) -> Path:
    """Create ``outdir`` (and parents); fail in one line when that is not possible."""
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise InputError(f"{outdir}: exists and is not a directory")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{outdir}: cannot create the output directory ({exc.strerror or exc})") from None
    return outdir


def write_pairs(path: Path, pairs: Iterable[tuple[str, str]]) -> int:
    """Two-column TSV of IRIs, no header (``kgalign run --gold`` and ``kgalign eval`` read it)."""
    count = 0
    with atomic_open(path) as handle:
        for left, right in pairs:
            handle.write(f"{left}\t{right}\n")
            count += 1
    log.info("wrote %s: %d pairs", path, count)
    return count
