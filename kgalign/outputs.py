"""The files a run writes into its output folder (one list, read by the writer and the CLI's checks)."""

from __future__ import annotations

from pathlib import Path

#: What :meth:`kgalign.result.AlignmentResult.save` writes (metrics.json only with gold;
#: entities.json.gz: the entities' content hashes, for a later --since).
OUTPUT_FILES = ("fused.ttl", "links.ttl", "alignment.rdf", "votes.jsonl", "run.json", "provenance.trig", "metrics.json", "entities.json.gz")
#: Written only by some runs: duplicates.ttl with --dedup, changes.jsonl with --since.
OPTIONAL_OUTPUTS = ("duplicates.ttl", "changes.jsonl")
#: The judge's answer cache, kept in the output folder so a rerun resumes.
CACHE_FILE = "judge-cache.sqlite"
#: The folder of endpoint inputs' local copies (kgalign.io.sparql.source).
SOURCES_DIR = "sources"
#: The judge's adapter ``--adapt`` trains (kgalign.finetune.adapt), kept so a rerun resumes.
ADAPTER_DIR = "adapter"
#: The folders of the fused graph's and provenance's shards (``--engine ray``, kgalign.fusion.shards).
SHARD_DIRS = ("fused", "provenance")
#: The provenance shard the driver writes: the run and the dropped triples.
RUN_SHARD = "run.trig"
#: Every file kgalign may leave in an output folder (the report and SQLite's side files too).
KNOWN_OUTPUTS = frozenset({*OUTPUT_FILES, *OPTIONAL_OUTPUTS, "report.html", CACHE_FILE, CACHE_FILE + "-wal", CACHE_FILE + "-shm", SOURCES_DIR, ADAPTER_DIR, *SHARD_DIRS})
#: Version of run.json's layout: 2 added the config as given plus ``effective``.
RUN_SCHEMA = 2


def is_shard_folder(folder: Path) -> bool:
    """Whether ``folder`` holds only files of kgalign's shards (``part-*``, run.trig)."""
    return all(path.is_file() and (path.name.startswith("part-") or path.name == RUN_SHARD) for path in folder.iterdir())
