"""Benchmark reading the inputs from SPARQL endpoints against reading the same data from files.

    python -m bench.sparql_read [--data ../shared/data] [--dataset seu_dbp_fr_en] [--work DIR] [--out bench/results]

DBP15K fr-en (converted by `kgalign convert dbp15k`) gives each entity no rdf:type, and
an endpoint input is chosen by class, so both sides are first written as N-Triples with
one ``rdf:type <urn:kgalign:bench:Entity>`` triple per subject; the file run reads these
typed files and the endpoint run reads the same triples from two local Oxigraph servers
(`oxigraph serve-read-only`, the PyPI package's binary) on 127.0.0.1. Three runs of the
real command in child processes, each with the seeds, test links and closed-world
protocol of bench/table.py and --judge none:

1. files: the typed files;
2. endpoints: the two servers (fetch into OUTDIR/sources included);
3. copy: the same command again into the same OUTDIR, which reads the fetched copies.

Prints the wall time, the peak memory of the kgalign process (polled) and of the two
servers, the time and requests of the fetch, F1, and whether the links of runs 2 and 3
equal those of run 1; writes OUT/sparql-read.{md,json}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pyoxigraph as ox

from bench.conversions import convert
from bench.large import PeakMemory, run_kgalign

ROOT = Path(__file__).resolve().parent.parent
ENTITY = "urn:kgalign:bench:Entity"
RDF_TYPE = ox.NamedNode("http://www.w3.org/1999/02/22-rdf-syntax-ns#type")


def typed_copy(source: Path, target: Path) -> int:
    """``source`` as N-Triples, plus one rdf:type ENTITY triple per IRI subject; returns the triple count."""
    if target.is_file():
        return sum(1 for _ in target.open("rb"))
    quads = list(ox.parse(path=str(source)))
    subjects = dict.fromkeys(q.subject for q in quads if isinstance(q.subject, ox.NamedNode))
    triples = [ox.Triple(q.subject, q.predicate, q.object) for q in quads]
    triples += [ox.Triple(s, RDF_TYPE, ox.NamedNode(ENTITY)) for s in subjects]
    temporary = target.with_suffix(".part")
    ox.serialize(triples, output=str(temporary), format=ox.RdfFormat.N_TRIPLES)
    temporary.rename(target)
    return len(triples)


class ServerPeaks:
    """Polls the resident memory of the servers (each on its own) while a run reads them."""

    def __init__(self, pids: list[int]) -> None:
        self.polls = [PeakMemory(pid) for pid in pids]

    def __enter__(self) -> ServerPeaks:
        for poll in self.polls:
            poll.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        for poll in self.polls:
            poll.__exit__(*exc)

    @property
    def mb(self) -> list[int]:
        return [round(p.peak_mb) for p in self.polls]


def links(outdir: Path) -> str:
    return (outdir / "links.ttl").read_text(encoding="utf-8")


def summary(outdir: Path) -> dict[str, Any]:
    """What a run's run.json says of it (read before the next run overwrites it)."""
    info = json.loads((outdir / "run.json").read_text())
    return {"load_s": info["stages"]["load"]["seconds"], "f1": info["metrics"]["f1"], "links": info["counts"]["links"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="Folder of the public benchmarks (default: ../shared/data).")
    parser.add_argument("--dataset", default="seu_dbp_fr_en", help="DBP15K-layout folder under --data (default: seu_dbp_fr_en).")
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "kgalign-sparql-bench", help="Working folder (typed copies, stores, outputs).")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="Where sparql-read.md and .json go.")
    args = parser.parse_args(argv)

    from tests.sparql_server import oxigraph_server

    work = args.work
    converted = work / "converted" / args.dataset
    convert("dbp15k", [args.data / args.dataset], converted)
    typed = {}
    for side in ("left", "right"):
        typed[side] = work / f"typed-{side}.nt"
        count = typed_copy(converted / f"{side}.ttl", typed[side])
        print(f"{side}: {count:,} triples (with the rdf:type triples) in {typed[side]}", file=sys.stderr)
    options = ["--class", ENTITY, "--seed-links", str(converted / "gold_train.tsv"), "--only-gold-entities"]
    files = {"left": typed["left"], "right": typed["right"], "gold": converted / "gold_test.tsv"}

    runs: dict[str, dict[str, Any]] = {}
    out_files = work / "out-files"
    runs["files"] = run_kgalign(files, out_files, ["--test-gold", str(converted / "gold_test.tsv"), *options]) | summary(out_files)
    with contextlib.ExitStack() as stack:
        servers = []
        for side in ("left", "right"):
            store = work / f"store-{side}"
            if store.exists():
                import shutil

                shutil.rmtree(store)
            started = time.perf_counter()
            base = stack.enter_context(oxigraph_server(store, [(typed[side], None)]))
            print(f"oxigraph {side}: loaded and serving in {time.perf_counter() - started:.1f} s at {base}", file=sys.stderr)
            servers.append(base)
        pids = [p.pid for p in psutil.process_iter(["name", "cmdline"]) if p.info["name"] == "oxigraph" and any(str(work) in c for c in p.info["cmdline"] or [])]
        endpoint_files = {"left": f"{servers[0]}/query", "right": f"{servers[1]}/query", "gold": converted / "gold_test.tsv"}
        out_endpoints = work / "out-endpoints"
        if out_endpoints.exists():
            import shutil

            shutil.rmtree(out_endpoints)
        with ServerPeaks(pids) as peaks:
            runs["endpoints"] = run_kgalign(endpoint_files, out_endpoints, ["--test-gold", str(converted / "gold_test.tsv"), *options]) | summary(out_endpoints)
        endpoint_links = links(out_endpoints)
        runs["endpoints"]["server_peak_rss_mb"] = peaks.mb
        fetch = {side: json.loads((out_endpoints / "sources" / f"{side}.json").read_text()) for side in ("left", "right")}
        runs["copy"] = run_kgalign(endpoint_files, out_endpoints, ["--test-gold", str(converted / "gold_test.tsv"), *options]) | summary(out_endpoints)
        fetch_after = {side: json.loads((out_endpoints / "sources" / f"{side}.json").read_text()) for side in ("left", "right")}
    runs["endpoints"]["same_links_as_files"] = endpoint_links == links(out_files)
    runs["copy"]["same_links_as_files"] = links(out_endpoints) == links(out_files)
    runs["copy"]["reused_copy"] = fetch == fetch_after

    base = runs["files"]
    lines = [
        f"`python -m bench.sparql_read --dataset {args.dataset}` (DBP15K fr-en, {sum(1 for _ in typed['left'].open('rb')):,} / "
        f"{sum(1 for _ in typed['right'].open('rb')):,} triples with the type triples; --judge none, seeds, closed world)",
        "",
        "| run | wall s | vs files | load stage s (fetch included) | kgalign peak RSS MB | F1 | links |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ("files", "endpoints", "copy"):
        r = runs[name]
        lines.append(f"| {name} | {r['wall_s']:.1f} | {r['wall_s'] / base['wall_s']:.2f}x | {r['load_s']:.1f} | {r['peak_rss_mb_polled']:,} | {r['f1']:.4f} | {r['links']:,} |")
    lines += [
        "",
        "fetch: " + "; ".join(f"{side} {f['entities']:,} entities, {f['triples']:,} triples, {f['requests']} requests, {f['seconds']:.1f} s" for side, f in fetch.items()),
        f"Oxigraph servers' peak RSS during the endpoint run: {', '.join(f'{mb:,} MB' for mb in runs['endpoints']['server_peak_rss_mb'])}",
        f"links equal to the file run's: endpoints {runs['endpoints']['same_links_as_files']}, copy {runs['copy']['same_links_as_files']}; "
        f"the third run read the copies, not the servers: {runs['copy']['reused_copy']}",
    ]
    report = "\n".join(lines)
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sparql-read.md").write_text(report + "\n")
    (args.out / "sparql-read.json").write_text(json.dumps({"dataset": args.dataset, "runs": runs, "fetch": fetch}, indent=2) + "\n")
    return 0 if runs["endpoints"]["same_links_as_files"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
