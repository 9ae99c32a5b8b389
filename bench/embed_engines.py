"""The embedder's two engines side by side: plain numpy (kgalign.retrieval.bert) and torch
(sentence-transformers), on real texts of three lengths, each engine in a fresh process
so that its import and model loading count as they do in a `kgalign run`.

    python -m bench.embed_engines [--data ../shared/data] [--texts 600]

Prints one markdown table: per text set, the word pieces, each engine's whole-process
seconds and encode-only seconds, and the smallest cosine between the two engines'
vectors of a text. AUTO_NUMPY_MAX_TOKENS in kgalign/retrieval/embed.py is read off this table.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

WORKER = """
import json, sys, time
started = time.perf_counter()
import numpy as np
from kgalign.retrieval.embed import SentenceTransformerEmbedder
texts = json.load(open(sys.argv[1], encoding="utf-8"))
embedder = SentenceTransformerEmbedder(engine=sys.argv[2])
begun = time.perf_counter()
vectors = embedder.encode(texts)
ended = time.perf_counter()
np.save(sys.argv[3], vectors)
print(json.dumps({"encode_s": ended - begun, "process_s": ended - started}))
"""


def text_sets(data: Path, n: int) -> dict[str, list[str]]:
    names = json.loads((data / "seu_dbp_fr_en" / "translated_names.json").read_text(encoding="utf-8"))
    short = [" ".join(words) for _, words in names[:n]]
    restaurants = []
    for line in (data / "oaei2010_restaurants" / "restaurant2.nt").read_text(encoding="utf-8", errors="replace").splitlines():
        if '"' in line:
            restaurants.append(line.split('"', 2)[1])
    # Restaurant texts as kgalign writes them: a few attribute values joined.
    medium = [" | ".join(restaurants[i : i + 5]) for i in range(0, min(len(restaurants), 5 * n), 5)]
    long = []
    for table in ("Abt.csv", "Buy.csv"):
        with (data / "leipzig_abt-buy" / table).open(encoding="latin-1") as handle:
            long += [" | ".join(value for key, value in row.items() if key != "id" and value) for row in csv.DictReader(handle)]
    return {"short (DBP15K names)": short, "medium (restaurant records)": medium, "long (Abt-Buy products)": long[:n]}


def run_engine(texts_file: Path, engine: str, out: Path) -> dict[str, float]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", WORKER, str(texts_file), engine, str(out)], capture_output=True, text=True, cwd=ROOT, check=True)
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["wall_s"] = time.perf_counter() - started
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="Folder of the public benchmark data (default ../shared/data).")
    parser.add_argument("--texts", type=int, default=600, help="Texts per set.")
    args = parser.parse_args()
    import numpy as np

    from kgalign.retrieval.bert import NumpyBert
    from kgalign.retrieval.embed import DEFAULT_MAX_TOKENS, default_model_path

    counter = NumpyBert(default_model_path(), max_tokens=DEFAULT_MAX_TOKENS)
    lines = [
        "| texts | n | word pieces | numpy: process s | numpy: encode s | torch: process s | torch: encode s | torch/numpy (process) | min cosine |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as work:
        for name, texts in text_sets(args.data, args.texts).items():
            path = Path(work) / "texts.json"
            path.write_text(json.dumps(texts), encoding="utf-8")
            figures = {engine: run_engine(path, engine, Path(work) / f"{engine}.npy") for engine in ("numpy", "torch")}
            a, b = np.load(Path(work) / "numpy.npy"), np.load(Path(work) / "torch.npy")
            cosine = float(np.min(np.sum(a * b, axis=1)))
            n, pieces = len(texts), counter.count_tokens(texts)
            fn, ft = figures["numpy"], figures["torch"]
            lines.append(
                f"| {name} | {n} | {pieces:,} | {fn['process_s']:.1f} | {fn['encode_s']:.1f} | {ft['process_s']:.1f} | {ft['encode_s']:.1f} | "
                f"{ft['process_s'] / fn['process_s']:.1f} | {cosine:.6f} |"
            )
            print(lines[-1], file=sys.stderr, flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
