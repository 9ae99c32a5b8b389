"""What the importers share: the report they return and writing gold pairs."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kgalign.errors import InputError, KgalignError, error_filename
from kgalign.io.atomic import atomic_open, check_output_path, deferred_renames, remove_later

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


def check_outdir(outdir: str | Path) -> Path:
    """Fail in one line, before any input is read, where ``outdir`` cannot be made or
    written (it is a file, or under one); creates nothing."""
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise InputError(f"{outdir}: exists and is not a directory")
    try:
        check_output_path(outdir, folder=True)
    except KgalignError as exc:
        raise InputError(str(exc)) from None
    return outdir


def prepare_outdir(outdir: str | Path) -> Path:
    """Create ``outdir`` (and parents); fail in one line when that is not possible."""
    outdir = check_outdir(outdir)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{outdir}: cannot create the output directory ({exc.strerror or exc})") from None
    return outdir


@contextlib.contextmanager
def writing(outdir: Path, outputs: Sequence[str], report: ConversionReport) -> Iterator[None]:
    """Write a converter's files (whatever the block writes) into ``outdir`` together:
    they appear at the end of the block, all or none (:func:`deferred_renames`). Call it
    once every input is read and checked. ``outputs`` names every file the converter may
    write: those this conversion did not write (``report.files``), an earlier one's,
    are removed with them, so that a stale gold file cannot pass for this conversion's.
    A folder made here that ends up empty (the writing failed) is removed."""
    created = not outdir.exists()
    prepare_outdir(outdir)
    try:
        with deferred_renames():
            yield
            for name in outputs:
                if name not in report.files and (outdir / name).is_file():
                    log.info("%s: removed (an earlier conversion's; this one writes none)", outdir / name)
                    remove_later(outdir / name)
    except OSError as exc:
        _remove_if_empty(outdir, created)
        raise InputError(f"{error_filename(exc, outdir)}: cannot write the converted files ({exc.strerror or exc})") from None
    except BaseException:
        _remove_if_empty(outdir, created)
        raise


def _remove_if_empty(folder: Path, created: bool) -> None:
    if created:
        with contextlib.suppress(OSError):
            folder.rmdir()


def write_pairs(path: Path, pairs: Iterable[tuple[str, str]]) -> int:
    """Two-column TSV of IRIs, no header (``kgalign run --gold`` and ``kgalign eval`` read it)."""
    count = 0
    with atomic_open(path) as handle:
        for left, right in pairs:
            handle.write(f"{left}\t{right}\n")
            count += 1
    log.info("wrote %s: %d pairs", path, count)
    return count
