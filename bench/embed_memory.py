"""The memory of embedding with torch under bfloat16, with oneDNN's kernel cache capped or not.

    python -m bench.embed_memory [--texts 6000] [--triples 100000] [--out bench/results]

Takes the entity texts of the synthetic pair of bench/make_large_pair.py (the profiles a
run embeds, both sides) and embeds the first --texts of them with the torch engine in a
fresh child process per setting of ONEDNN_PRIMITIVE_CACHE_CAPACITY: oneDNN's default
(1024) and kgalign's (kgalign/runtime/torch_env.py), in the embedder's batches as a run
makes them. For each: the child's peak resident memory (VmHWM), the seconds of the embedding
(the model's load excluded), and whether its vectors equal the first setting's.
Prints the table and writes OUT/embed-memory.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import large, table

ROOT = Path(__file__).resolve().parent.parent
ONEDNN_DEFAULT = 1024


def child(texts_file: Path, vectors_file: Path) -> None:
    """Embed the texts (one process, one setting); print a JSON line of what it measured."""
    from kgalign.retrieval.embed import SentenceTransformerEmbedder

    texts = json.loads(texts_file.read_text())
    embedder = SentenceTransformerEmbedder(engine="torch")
    engine, batches = embedder.plan(texts)
    embedder.encode_batch(engine, texts[:1])  # load the model before the clock starts
    started = time.perf_counter()
    out = np.empty((len(texts), 384), dtype=np.float32)
    for rows in batches:
        out[rows] = embedder.encode_batch(engine, [texts[i] for i in rows])
    seconds = time.perf_counter() - started
    np.save(vectors_file, out)
    # VmHWM: this process's own peak (ru_maxrss would carry the parent's across exec).
    peak_kb = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
    peak_mb = peak_kb / 1024
    print(json.dumps({"seconds": round(seconds, 1), "peak_mb": round(peak_mb), "batches": len(batches), "precision": embedder.precision}))


def texts_of(triples: int, limit: int) -> list[str]:
    from kgalign import AlignConfig
    from kgalign.pipeline import prepare

    work = Path(tempfile.gettempdir()) / f"kgalign-large-{triples}-s0"
    files = large._pair(work, triples, 0, False)
    prepared = prepare(files["left"], files["right"], AlignConfig(judge="none"), retrieve_candidates=False)
    texts = [p.text() for p in prepared.left_profiles.values()] + [p.text() for p in prepared.right_profiles.values()]
    return texts[:limit]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=6000, help="Texts embedded in each child process.")
    parser.add_argument("--triples", type=int, default=100_000, help="Size of the synthetic pair the texts come from (triples per side).")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="Where embed-memory.md and .json go.")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0

    from kgalign.runtime.torch_env import ONEDNN_CACHE_CAPACITY, ONEDNN_CACHE_VARIABLE

    work = Path(tempfile.mkdtemp(prefix="kgalign-embed-memory-"))
    texts = texts_of(args.triples, args.texts)
    (work / "texts.json").write_text(json.dumps(texts))
    rows: list[dict[str, Any]] = []
    first: np.ndarray | None = None
    for capacity in (ONEDNN_DEFAULT, ONEDNN_CACHE_CAPACITY):
        vectors_file = work / f"vectors-{capacity}.npy"
        env = dict(os.environ, **{ONEDNN_CACHE_VARIABLE: str(capacity)}, PYTHONPATH=str(ROOT))
        print(f"embedding {len(texts):,} texts with {ONEDNN_CACHE_VARIABLE}={capacity} ...", file=sys.stderr, flush=True)
        done = subprocess.run(
            [sys.executable, "-m", "bench.embed_memory", "--child", str(work / "texts.json"), str(vectors_file)],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        row = {"capacity": capacity, **json.loads(done.stdout.strip().splitlines()[-1])}
        vectors = np.load(vectors_file)
        first = vectors if first is None else first
        row["max_abs_difference"] = float(np.abs(vectors - first).max())
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)

    lines = [
        f"`python -m bench.embed_memory --texts {args.texts} --triples {args.triples}` on {os.cpu_count()} CPUs: "
        f"{len(texts):,} entity texts of the synthetic pair, MiniLM on the torch engine ({rows[0]['precision']}), "
        f"{rows[0]['batches']} batches, each setting in a fresh process",
        "",
        f"| {ONEDNN_CACHE_VARIABLE} | peak MB | seconds | largest difference from the first row's vectors |",
        "|---:|---:|---:|---:|",
    ]
    for row in rows:
        name = f"{row['capacity']} (oneDNN's default)" if row["capacity"] == ONEDNN_DEFAULT else f"{row['capacity']} (kgalign's)"
        lines.append(f"| {name} | {row['peak_mb']:,} | {row['seconds']:.1f} | {row['max_abs_difference']:.1e} |")
    table.publish(args.out, "embed-memory", "\n".join(lines), rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
