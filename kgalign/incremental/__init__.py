"""Incremental runs: what changed since an earlier run (``kgalign run ... --since OLD``).

- :mod:`~kgalign.incremental.state`: each entity's content hash, saved by every run;
- :mod:`~kgalign.incremental.since`: the earlier run read back, its judge answers
  reused, and the changes (entities, links, clusters) written to changes.jsonl.
"""
