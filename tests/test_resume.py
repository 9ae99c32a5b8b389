"""Crash test: a `kgalign run` killed with SIGKILL while judging resumes from its cache.

A real subprocess with the real local judge is killed in the middle of judging (once
the answer cache holds some, but not all, answers), then run again to completion. Its
outputs must equal those of an uninterrupted run with the same seed, and the second run
must ask the judge exactly the questions left unanswered at the kill.

The judge's model is SmolLM2 cut to two layers (conftest's ``small_lm``: what is
resumed does not depend on what the answers mean), and the run is cut to the first
``N_SOURCES`` persons of examples/persons (with their address nodes) against all 60
right persons, three options and three rounds.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rdflib import Graph, URIRef
from rdflib.compare import isomorphic

CACHE_FILE = "judge-cache.sqlite"
N_SOURCES = 8
RUN_LIMIT_S = 600
POLL_S = 0.05
NUMBER_TOLERANCE = 1e-4

pytestmark = pytest.mark.timeout(1800)

PERSON1 = URIRef("http://www.okkam.org/ontology_person1.owl#Person")
RDF_TYPE = URIRef("http://www.w3.org/1999/02/22-rdf-syntax-ns#type")


def subset_of_persons(source: Path, target: Path, count: int) -> None:
    """The first ``count`` persons of ``source`` with every node reachable from them."""
    graph = Graph().parse(source, format="nt")
    persons = sorted(graph.subjects(RDF_TYPE, PERSON1))[:count]
    keep: set = set()
    todo = list(persons)
    while todo:
        node = todo.pop()
        if node in keep:
            continue
        keep.add(node)
        for obj in graph.objects(node, None):
            if isinstance(obj, URIRef) and (obj, None, None) in graph and graph.value(obj, RDF_TYPE) != PERSON1:
                todo.append(obj)
    subset = Graph()
    for node in keep:
        for triple in graph.triples((node, None, None)):
            subset.add(triple)
    subset.serialize(target, format="nt", encoding="utf-8")


def kgalign_command(left: Path, right: Path, outdir: Path, model: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "kgalign.cli.main",
        "--log-level",
        "warning",
        "run",
        str(left),
        str(right),
        "-o",
        str(outdir),
        "--judge",
        "local",
        "--model",
        str(model),
        "--no-gate",
        "--batch-size",
        "2",
        "--options",
        "3",
        "--rounds",
        "3",
        "--seed",
        "7",
        # float32: on a CPU with AMX, bfloat16 kernels block by the batch's shape, and a
        # resumed run asks its remaining questions in other batches than a whole run.
        "--dtype",
        "float32",
        "--quiet",
    ]


def run_to_end(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=RUN_LIMIT_S, env=_env())
    assert done.returncode == 0, done.stderr[-3000:]


def cached_rows(path: Path) -> int:
    """Answers committed to the cache so far (0 while the file or table is missing)."""
    if not path.is_file():
        return 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return int(db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def decisions(outdir: Path) -> tuple[list[tuple], list[float]]:
    """votes.jsonl as its decisions and answers, and apart from them its numbers."""
    records = [json.loads(line) for line in (outdir / "votes.jsonl").read_text(encoding="utf-8").splitlines()]
    structure = [
        (
            r["source"],
            r["decision"],
            r["target"],
            [(tuple(x["order"]), x["raw"], x["choice"], x["target"], x["logprob"] is None) for x in r["rounds"]],
        )
        for r in records
    ]
    numbers = [float(r["confidence"]) for r in records]
    numbers += [float(x["logprob"]) for r in records for x in r["rounds"] if x["logprob"] is not None]
    return structure, numbers


def counts(outdir: Path) -> dict[str, int]:
    return json.loads((outdir / "run.json").read_text(encoding="utf-8"))["counts"]


def test_killed_run_resumes_to_the_same_result(persons, small_lm, tmp_path):
    left = tmp_path / "left.nt"
    subset_of_persons(persons["left"], left, N_SOURCES)
    right = persons["right"]

    reference = tmp_path / "uninterrupted"
    run_to_end(kgalign_command(left, right, reference, small_lm))
    total = counts(reference)["llm_questions"]
    assert total >= 2 * N_SOURCES, "too few questions to interrupt in the middle"

    outdir = tmp_path / "interrupted"
    cache = outdir / CACHE_FILE
    process = subprocess.Popen(
        kgalign_command(left, right, outdir, small_lm), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env()
    )
    deadline = time.monotonic() + RUN_LIMIT_S
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if cached_rows(cache) >= max(2, total // 3):
                break
            time.sleep(POLL_S)
        assert process.poll() is None, "the run ended before it could be killed: " + process.stderr.read().decode()[-2000:]
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    answered_at_kill = cached_rows(cache)  # counted once the process is dead
    assert 0 < answered_at_kill < total
    assert not (outdir / "votes.jsonl").exists()

    run_to_end(kgalign_command(left, right, outdir, small_lm))
    resumed = counts(outdir)
    assert resumed["llm_questions"] == total - answered_at_kill
    assert resumed["cache_hits"] >= answered_at_kill

    # The same links, decisions and answers, and the same numbers up to float32 noise:
    # the local judge lays each prompt out by its own lengths, so the questions asked
    # after the kill, beside other sources than in the first run, see no padding of
    # their neighbours (under bfloat16 that moved log-probabilities by about 0.1). Their
    # products are still blocked by the batch's shape, and CI measured the last bits
    # moving by up to 2e-5 between two such runs, so numbers agree to 1e-4.
    assert (outdir / "links.ttl").read_bytes() == (reference / "links.ttl").read_bytes()
    (cells, measures), (cells_ref, measures_ref) = _cells(outdir), _cells(reference)
    assert cells == cells_ref
    assert measures == pytest.approx(measures_ref, abs=NUMBER_TOLERANCE)
    fused = [Graph().parse(d / "fused.ttl", format="turtle") for d in (outdir, reference)]
    assert len(fused[0]) > 0 and isomorphic(fused[0], fused[1])
    (got, got_numbers), (expected, expected_numbers) = decisions(outdir), decisions(reference)
    assert got == expected
    assert got_numbers == pytest.approx(expected_numbers, abs=NUMBER_TOLERANCE)
    assert len(expected) == N_SOURCES and any(not no_logprob for d in expected for *_, no_logprob in d[3])


_MEASURE = re.compile(r"<measure [^>]*>([^<]*)</measure>")


def _cells(outdir: Path) -> tuple[str, list[float]]:
    """alignment.rdf without its measures, and the measures."""
    text = (outdir / "alignment.rdf").read_text(encoding="utf-8")
    return _MEASURE.sub("<measure/>", text), [float(m) for m in _MEASURE.findall(text)]
