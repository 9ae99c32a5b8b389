"""Replay a saved run: the inputs and config that an output folder's run.json records.

>>> result = rerun("out/persons", "out/again")   # doctest: +SKIP

As PyKEEN's ``replicate_pipeline_from_path``: the config as given is read back
(validated again), "auto" values are resolved afresh, and the judge cache starts empty
in the new folder, so every question is asked again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kgalign.config import AlignConfig
from kgalign.errors import KgalignError
from kgalign.io.inputs import is_endpoint
from kgalign.outputs import ADAPTER_DIR, CACHE_FILE, RUN_SCHEMA, SOURCES_DIR
from kgalign.run_paths import resolve_saved_run

if TYPE_CHECKING:
    from kgalign.result import AlignmentResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SavedRun:
    """What run.json says a run was: its two inputs and its config as given."""

    left: str | Path
    right: str | Path
    config: AlignConfig
    #: "run", or "dedup" for an output folder of `kgalign dedup`.
    command: str = "run"
    #: The earlier run's folder where the run was an update (``--since``), else None.
    since: str | None = None


def read_run_json(outdir: str | Path, hint: str = "give the output folder of a `kgalign run`") -> dict:
    """``outdir/run.json`` as a dict; one-line errors (with ``hint``) for a missing, unreadable or foreign file."""
    path = Path(outdir) / "run.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KgalignError(f"{path}: cannot read it ({exc.strerror or exc}); {hint}") from None
    except ValueError as exc:
        raise KgalignError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(info, dict) or not all(key in info for key in ("config", "left", "right", "counts")):
        raise KgalignError(f"{path}: not the run.json of a `kgalign run`")
    return info


def read_run(outdir: str | Path) -> SavedRun:
    """The inputs and config of the run that wrote ``outdir``; one-line errors for anything else."""
    path = Path(outdir) / "run.json"
    info = read_run_json(outdir)
    if info.get("schema", 1) < RUN_SCHEMA:
        raise KgalignError(f"{path}: written by an older kgalign (run.json schema {info.get('schema', 1)}); run it again with `kgalign run`")
    config = AlignConfig.from_dict(info["config"], str(path))
    clusters = info.get("clusters")
    clusters = clusters if isinstance(clusters, dict) else {}
    since = info.get("since")
    earlier = str(since.get("old")) if isinstance(since, dict) and since.get("old") is not None else None
    saved = SavedRun(_input(info["left"]), _input(info["right"]), config, "dedup" if clusters.get("command") == "dedup" else "run", earlier)
    return resolve_saved_run(saved, outdir, info)  # its relative paths found from any working directory


def _input(value: str) -> str | Path:
    return value if is_endpoint(value) else Path(value)


def carry_sources(outdir: str | Path, new_outdir: str | Path) -> None:
    """Copy the endpoint copies of ``outdir`` into ``new_outdir``, so a rerun reads them, not the endpoints."""
    _carry_files(Path(outdir) / SOURCES_DIR, Path(new_outdir) / SOURCES_DIR)


def carry_adapter(outdir: str | Path, new_outdir: str | Path) -> None:
    """Copy the adapter ``--adapt`` trained in ``outdir`` into ``new_outdir`` (not its
    checkpoints), so that the rerun takes it as it is instead of training again."""
    _carry_files(Path(outdir) / ADAPTER_DIR, Path(new_outdir) / ADAPTER_DIR)


def _carry_files(old: Path, new: Path) -> None:
    """The files (not the subfolders) of folder ``old`` copied into ``new``, unless they are one folder."""
    import shutil

    if old.is_dir() and old.resolve() != new.resolve():
        new.mkdir(parents=True, exist_ok=True)
        for path in old.iterdir():
            if path.is_file():
                shutil.copy2(path, new / path.name)


def replay_config(saved: SavedRun, new_outdir: str | Path | None) -> AlignConfig:
    """The saved config, its answer cache and adapter moved into ``new_outdir`` (none without a folder)."""
    config = saved.config
    if config.adapt.enabled:
        config = config.replace(adapt={"folder": str(Path(new_outdir) / ADAPTER_DIR) if new_outdir else None})
    if config.sparql.cache_dir is not None:
        config = config.replace(sparql={"cache_dir": str(Path(new_outdir) / SOURCES_DIR) if new_outdir else None})
    if config.cache_path is None:
        return config
    return config.replace(cache_path=str(Path(new_outdir) / CACHE_FILE) if new_outdir else None)


def rerun(outdir: str | Path, new_outdir: str | Path | None = None) -> AlignmentResult:
    """Run again what ``outdir/run.json`` describes; with ``new_outdir``, save the outputs there."""
    from kgalign.pipeline import align

    saved = read_run(outdir)
    if new_outdir is not None:
        carry_sources(outdir, new_outdir)
        carry_adapter(outdir, new_outdir)
    if saved.command == "dedup":
        from kgalign.dedup import deduplicate

        result = deduplicate(saved.left, replay_config(saved, new_outdir))
    else:
        if saved.since is not None and saved.config.judge != "none":
            # Its candidates and scores are a full run's, and so are a rerun's; its prompts
            # are not (kgalign.incremental): a judge may answer the rerun's otherwise.
            log.warning(
                "%s was an update of %s (--since): its prompts kept the attributes in that run's order, and with "
                "--keep-earlier some decisions were taken over from it; the rerun ranks the attributes afresh and asks "
                "the judge every question, so its links may differ",
                outdir, saved.since,
            )
        result = align(saved.left, saved.right, replay_config(saved, new_outdir))
    if new_outdir is not None:
        result.save(new_outdir)
    return result
