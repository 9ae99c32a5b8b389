"""The benchmarks' conversions, shared by the bench scripts that run `kgalign run` in a child.

:func:`convert` is kgalign's :func:`kgalign.io.importers.convert_cached` (the importer of
`kgalign convert`, its output reused while the inputs are unchanged), run in a fresh
process when a conversion must be made. The scripts measure the peak memory of each
child they start (``os.wait4``), and on Linux a child's figure starts from the parent's
own peak (the child is forked from it): converting DBP15K in the script's process would
raise the peak reported for every run started after it.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from kgalign.io.importers import current_conversion

ROOT = Path(__file__).resolve().parent.parent

WORKER = """
import json, sys
from kgalign.io.importers import convert_cached
kind, inputs, outdir = json.loads(sys.argv[1])
print(json.dumps(convert_cached(kind, inputs, outdir).record()))
"""


def convert(kind: str, inputs: Sequence[Path], outdir: Path, lock: AbstractContextManager | None = None) -> dict[str, Any]:
    """Importer ``kind`` (``dbp15k`` or ``tables``, as `kgalign convert`) on ``inputs`` into
    ``outdir``, unless ``outdir`` holds that conversion already; ``lock`` is held while
    converting. Returns the conversion's record: cached, seconds, dir, summary."""
    for path in inputs:
        if not Path(path).exists():
            raise SystemExit(f"{path}: not found (is --data right?)")
    inputs, outdir = [Path(p).resolve() for p in inputs], Path(outdir).resolve()  # the child runs in ROOT
    found = current_conversion(kind, inputs, outdir)
    if found is not None:
        return found.record()
    command = [sys.executable, "-c", WORKER, json.dumps([kind, [str(p) for p in inputs], str(outdir)])]
    print(f"converting ({kind}): {', '.join(map(str, inputs))} -> {outdir}", file=sys.stderr, flush=True)
    with lock or contextlib.nullcontext():
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        why = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
        raise SystemExit(f"conversion of {', '.join(map(str, inputs))} failed: {why}")
    return json.loads(done.stdout.strip().splitlines()[-1])
