"""``--engine ray`` on a real Ray cluster started here on 127.0.0.1 (``ray start --head``,
two CPUs: two worker actors), against ``--engine local`` on the same inputs.

The outputs must be the same files: the embedder's batches and the judge's blocks are
computed on the actors exactly as one process computes them. A judge actor killed in the
middle of a run is restarted by Ray; the run finishes with the same links and loses no
answer given before the kill.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import cli, development_split, free_port, kgalign_process, require

from kgalign.config import AlignConfig, VoteConfig
from kgalign.judging.testing import ScriptedJudge, pick
from kgalign.pipeline import align
from kgalign.selection.profile_file import ProfileFile

require("ray")

SAME = ("links.ttl", "fused.ttl", "alignment.rdf", "votes.jsonl", "entities.json.gz")


def _ray_command() -> str:
    return str(Path(sys.executable).with_name("ray"))


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A Ray head on 127.0.0.1 with two CPUs, stopped after the module."""
    port = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    temp = tmp_path_factory.mktemp("ray")
    started = subprocess.run(
        [
            _ray_command(), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
            "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}",
        ],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr[-2000:]
    os.environ["RAY_AUTH_MODE"] = "disabled"
    try:
        yield f"127.0.0.1:{port}"
    finally:
        import ray

        ray.shutdown()
        subprocess.run([_ray_command(), "stop", "--force"], env=env, capture_output=True, timeout=120)


@pytest.fixture
def cluster(ray_head: str) -> str:
    """The head's address, this process connected to it: the runs of the tests take the
    connection as it is (a run connects, and disconnects, only where it is not connected:
    test_outputs_equal_the_local_engine_without_a_judge), which saves every run a job's
    start on the cluster."""
    import ray

    if not ray.is_initialized():
        ray.init(address=ray_head, log_to_driver=False, logging_level="WARNING")
    return ray_head


def _on_ray(cluster: str) -> list[str]:
    """The options of `kgalign run` that send it to the test's cluster."""
    return ["--engine", "ray", "--ray-address", cluster]


def _links(result) -> list[tuple[str, str]]:
    """An alignment result's links as (left, right) IRI pairs, in order."""
    return [(link.left, link.right) for link in result.links]


def _votes(folder: Path) -> list[dict]:
    """The decision records, less the time each took (the one field a clock decides)."""
    records = [json.loads(line) for line in (folder / "votes.jsonl").read_text().splitlines()]
    for record in records:
        record.pop("latency_s")
    return records


def _same_outputs(a: Path, b: Path) -> None:
    for name in SAME:
        if name != "votes.jsonl":
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert _votes(a) == _votes(b)
    left, right = (json.loads((d / "run.json").read_text()) for d in (a, b))
    for key in ("links", "matches", "llm_questions", "candidates", "embedded_entities", "clusters"):
        assert left["counts"][key] == right["counts"][key], key


def _both_engines(args: list, tmp_path: Path, cluster: str, before=lambda engine: None, logs: dict | None = None) -> dict:
    """``kgalign run ARGS`` with --engine local into tmp_path/local, then with --engine ray
    into tmp_path/ray (``before(engine)`` first); asserts the outputs equal and gives the
    ray run's run.json (and each run's log in ``logs``)."""
    for engine in ("local", "ray"):
        before(engine)
        on_ray = _on_ray(cluster) if engine == "ray" else []
        done = cli(["run", *args, "-o", tmp_path / engine, *on_ray])
        assert done.exit_code == 0, done.output
        if logs is not None:
            logs[engine] = done.output
    _same_outputs(tmp_path / "local", tmp_path / "ray")
    return json.loads((tmp_path / "ray" / "run.json").read_text())


def test_outputs_equal_the_local_engine_without_a_judge(ray_head, persons, tmp_path, monkeypatch) -> None:
    import ray

    import kgalign.runtime.ray_engine as ray_engine
    import kgalign.runtime.ray_load as ray_load

    cluster = ray_head
    ray.shutdown()  # the run connects to the cluster itself, and disconnects at its end

    # A batch a call and a call in flight per actor: the vectors are read back in order
    # while later calls are still being sent.
    monkeypatch.setattr(ray_engine, "EMBED_BATCHES_PER_CALL", 1)
    monkeypatch.setattr(ray_engine, "EMBED_WINDOW", 1)
    # The inputs are loaded by partitions, in blocks of about 2 KB (a dozen or more each).
    monkeypatch.setattr(ray_load, "BLOCK_BYTES", 2048)
    args = [persons["left"], persons["right"], "--gold", persons["gold"], "--quiet", "--no-cache", "--retrieval", "full"]
    # Fusion runs in the driver alone: the actors' CPUs are back in the cluster by then.
    import kgalign.pipeline as pipeline

    free_at_fusion = []

    def fuse(*args, **kwargs):
        import ray

        if ray.is_initialized():
            deadline = time.monotonic() + 30
            while ray.available_resources().get("CPU", 0.0) < 2 and time.monotonic() < deadline:
                time.sleep(0.2)
            free_at_fusion.append(ray.available_resources().get("CPU", 0.0))
        return real_fuse(*args, **kwargs)

    real_fuse = pipeline.fuse
    monkeypatch.setattr(pipeline, "fuse", fuse)
    # Each run with an empty vector cache: the actors compute every vector.
    info = _both_engines(args, tmp_path, cluster, lambda engine: monkeypatch.setenv("KGALIGN_CACHE", str(tmp_path / f"cache-{engine}")))
    assert info["engine"]["name"] == "ray" and info["engine"]["actors"] == 2 and info["engine"]["embed_calls"] > 2
    # left.nt and right.ttl (parsed by the driver as a stream of lines) by the two partitions.
    assert info["engine"]["partitions"] == 2 and info["engine"]["partitioned_inputs"] == 2
    assert free_at_fusion == [2.0]
    assert not ray.is_initialized()
    assert info["engine"]["address"] == cluster and info["config"]["ray"]["address"] == cluster
    assert json.loads((tmp_path / "local" / "run.json").read_text())["engine"] == {"name": "local"}


def test_the_lexical_search_on_the_actors_finds_what_one_process_finds(cluster, persons, tmp_path, monkeypatch) -> None:
    """Every lexical search of the run (the cardinality detection's, the cascade's two
    passes) cut into one slice of the targets per actor, each slice's best merged: the
    same candidates, votes and links as --engine local."""
    import kgalign.runtime.ray_engine as ray_engine

    monkeypatch.setattr(ray_engine, "SHARD_FROM_CELLS", 0)  # the example is small: search it on the actors anyway
    args = [persons["left"], persons["right"], "--gold", persons["gold"], "--quiet", "--no-cache"]
    info = _both_engines(args, tmp_path, cluster)
    assert info["engine"]["search_calls"] >= 2 * 3  # two slices, three searches at least
    assert info["counts"]["links"] > 0


def test_the_neighbour_search_on_the_actors_finds_what_one_process_finds(cluster, shared_data, tmp_path, monkeypatch) -> None:
    """SRPRS en-fr's real graphs (the development split of tests/test_neighbour_search.py):
    the cascade's second pass searches the neighbour channel too, its TF-IDF rows cut
    into the actors' slices like the names'; the same outputs as --engine local."""
    import kgalign.runtime.ray_engine as ray_engine
    from kgalign.io.importers.common import write_pairs

    monkeypatch.setattr(ray_engine, "SHARD_FROM_CELLS", 0)  # every search on the actors
    out, seeds, gold = development_split(shared_data)
    write_pairs(tmp_path / "seeds.tsv", seeds)
    write_pairs(tmp_path / "gold.tsv", gold)
    args = [out / "left.ttl", out / "right.ttl", "--seed-links", tmp_path / "seeds.tsv", "--test-gold", tmp_path / "gold.tsv", "--only-gold-entities", "--quiet", "--no-cache"]
    info = _both_engines(args, tmp_path, cluster)
    assert info["config"]["retrieval"]["neighbour_search"] and info["effective"]["retrieval"]["structure_weight"] == 0.5
    assert info["engine"]["search_calls"] > 0
    assert json.loads((tmp_path / "ray" / "metrics.json").read_text())["hits@1"] > 0.985  # 0.9879 with the search, 0.9775 without


def test_the_assignments_components_are_solved_on_the_actors(cluster, tmp_path, monkeypatch) -> None:
    """Also: more actors asked for than the cluster holds are capped, with a warning."""
    import kgalign.resolution.resolve as resolve
    import kgalign.runtime.ray_engine as ray_engine

    # The Abt-Buy excerpt's assignment has three components that need the solver (3, 10
    # and 3 edges): all are shipped, each alone, one call each.
    monkeypatch.setattr(resolve, "SHIP_FROM_EDGES", 1)
    monkeypatch.setattr(resolve, "GROUP_SOURCES", 1)
    monkeypatch.setattr(ray_engine, "COMPONENT_CALL_EDGES", 1)
    tables = Path(__file__).parent / "data" / "abt_buy_mini"
    logs: dict[str, str] = {}
    info = _both_engines([tables / "Abt.csv", tables / "Buy.csv", "--quiet", "--ray-actors", "8"], tmp_path, cluster, logs=logs)
    assert info["engine"]["resolve_calls"] == 3
    assert info["counts"]["links"] >= 25
    assert info["engine"]["actors"] == 2 and "--ray-actors 8" in logs["ray"] and "--ray-actors" not in logs["local"]


@pytest.mark.parametrize(("index", "graph"), [("exact", 0), ("hnsw", 20)])
def test_the_dense_search_on_the_actors_finds_what_one_process_finds(cluster, persons, tmp_path, monkeypatch, index, graph) -> None:
    """Every entity embedded (--retrieval full), the targets' vectors indexed on the
    actors, each slice's best merged: the same candidates, votes and links as --engine
    local. Exact indexes: one slice per actor, the best of all. HNSW graphs (past
    hnsw_threshold, lowered here): the graphs of at most hnsw_slice targets one process
    builds, each on one thread from the same parts: three, two on the first actor and one
    on the second (tests/test_retrieve.py checks the graphs an actor holds against those
    of one process on larger graphs, whose shape matters)."""
    import kgalign.retrieval.retrieve as retrieve
    import kgalign.runtime.ray_engine as ray_engine

    monkeypatch.setattr(ray_engine, "SHARD_FROM_CELLS", 0)
    monkeypatch.setattr(ray_engine, "DENSE_BLOCK_ROWS", 16)  # several blocks of sources
    monkeypatch.setattr(retrieve, "GRAPH_PART_ROWS", 7)  # each slice indexed in several parts, in both engines
    settings = tmp_path / "settings.toml"
    # A pool of 45 (FAISS finds 53): more than a slice of 30 targets holds.
    threshold = 10 if index == "hnsw" else 200_000
    settings.write_text(f"[retrieval]\npool = 45\nhnsw_threshold = {threshold}\nhnsw_slice = {graph or 250_000}\n")
    args = [persons["left"], persons["right"], "--gold", persons["gold"], "--quiet", "--retrieval", "full", "--config", settings]
    dense = []
    real = ray_engine.RayDenseSearch.topk

    def topk(self, left, right, k, graphs):
        found = real(self, left, right, k, graphs)
        dense.append((graphs, found is not None, type(left).__name__, type(right).__name__))
        return found

    monkeypatch.setattr(ray_engine.RayDenseSearch, "topk", topk)
    info = _both_engines(args, tmp_path, cluster)
    # The driver's vectors are views of a temporary file (kgalign.retrieval.vector_file), not arrays.
    graphs = {0: None, 20: [0, 20, 40, 60]}[graph]
    assert dense == [(graphs, True, "VectorRows", "VectorRows")]
    assert info["engine"]["dense_calls"] == 2 * 4  # two actors, the 60 sources in four blocks of 16
    assert info["counts"]["links"] > 0 and info["counts"]["embedded_entities"] == 120


def _related_pair(folder: Path) -> dict[str, Path]:
    """Two small graphs whose persons live in cities that are entities (labelled): the
    neighbour channel is on. The right side misspells a third of the names."""
    folder.mkdir()
    names = ["ada", "bo", "cy", "di", "ed", "flo", "gus", "hal", "ivy", "jo", "kim", "lu"]
    sides = {}
    for side, base in (("left", "http://l.example/"), ("right", "http://r.example/")):
        lines = []
        for i in range(36):
            name = f"{names[i % 12]} {names[(i * 5) % 12]}son {i}"
            if side == "right" and i % 3 == 0:
                name = name.replace("son", "sen")
            lines.append(f'<{base}p{i}> <{base}name> "{name}" .')
            lines.append(f"<{base}p{i}> <{base}livesIn> <{base}c{i % 6}> .")
        lines += [f'<{base}c{j}> <http://www.w3.org/2000/01/rdf-schema#label> "city {j}" .' for j in range(6)]
        sides[side] = folder / f"{side}.nt"
        sides[side].write_text("\n".join(lines) + "\n")
    gold = folder / "gold.tsv"
    gold.write_text("".join(f"http://l.example/p{i}\thttp://r.example/p{i}\n" for i in range(36)))
    return {**sides, "gold": gold}


def test_full_retrieval_with_neighbours_reads_the_vectors_once(cluster, tmp_path, monkeypatch) -> None:
    """--retrieval full on related graphs: the neighbour channel averages every entity's
    vectors, so the driver reads them from the file into memory once, and the dense search
    gets those arrays (not the file's rows again); the outputs are --engine local's."""
    import kgalign.runtime.ray_engine as ray_engine

    pair = _related_pair(tmp_path / "pair")
    monkeypatch.setattr(ray_engine, "SHARD_FROM_CELLS", 0)
    seen = []
    real = ray_engine.RayDenseSearch.topk

    def topk(self, left, right, k, graphs):
        seen.append((type(left).__name__, type(right).__name__))
        return real(self, left, right, k, graphs)

    monkeypatch.setattr(ray_engine.RayDenseSearch, "topk", topk)
    args = [pair["left"], pair["right"], "--gold", pair["gold"], "--quiet", "--retrieval", "full"]
    info = _both_engines(args, tmp_path, cluster)
    assert seen == [("ndarray", "ndarray")]
    assert info["effective"]["retrieval"]["structure_weight"] > 0 and info["effective"]["retrieval"]["structure_vectors"] == "dense"
    assert info["counts"]["links"] > 0


def test_the_local_judge_on_the_actors_answers_as_in_one_process(cluster, mini_persons, small_lm, tmp_path, monkeypatch) -> None:
    """The same answers, log-probabilities included. Each actor's model runs on the one
    thread its CPU gives it, so the local run's does too: on some CPUs torch's float32
    products are cut by thread, and their sums then differ in the last bits. The output
    folder is named relative to the working folder, which the actors do not share: the
    answers still go to its cache. The model is SmolLM2 cut to two layers (conftest's
    ``small_lm``): the engines must agree, whatever the answers mean.

    The Ray run is a user's command in its own process: it says nothing on the console
    but its result line. (Ray Core logs one line of its own for each actor of a Ray Data
    pool, which kgalign cannot switch off: ray-project/ray#57838.)"""
    import sqlite3

    import torch

    pair = mini_persons(tmp_path, 6)
    args = [pair["left"], pair["right"], "--judge", "local", "--model", small_lm, "--no-gate", "--rounds", "1", "--quiet", "--dtype", "float32"]
    threads = torch.get_num_threads()
    try:
        monkeypatch.chdir(tmp_path)
        torch.set_num_threads(1)
        done = cli(["run", *args, "-o", "local"])
        assert done.exit_code == 0, done.output
    finally:
        torch.set_num_threads(threads)
    ray_run = kgalign_process("run", *args, "-o", "ray", *_on_ray(cluster), cwd=tmp_path)
    assert ray_run.returncode == 0, ray_run.stderr
    assert ray_run.stdout.count("\n") == 1 and " links from " in ray_run.stdout, ray_run.stdout
    ray_core = re.compile(r"core_worker\.cc:\d+: Actor with class name: 'MapWorker\(MapBatches\(BlockAsker\)\)' .* has constructor arguments in the object store")
    assert [line for line in ray_run.stderr.splitlines() if line.strip() and not ray_core.search(line)] == [], ray_run.stderr
    _same_outputs(tmp_path / "local", tmp_path / "ray")
    info = json.loads((tmp_path / "ray" / "run.json").read_text())
    assert info["counts"]["llm_questions"] > 0 and info["engine"]["judge_batches"] > 0
    with sqlite3.connect(tmp_path / "ray" / "judge-cache.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == info["counts"]["llm_questions"]
    assert info["engine"]["judge_blocks"] == 1  # asked as a Ray dataset: 6 sources, one block
    assert info["judge"] == json.loads((tmp_path / "local" / "run.json").read_text())["judge"]


def _by_value() -> None:
    """Ship this module's classes to the actors by value (they cannot import tests/)."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _die_once(folder: Path) -> None:
    """Exit this process unless one has already died here: FOLDER/died is created
    exclusively, so two actors past the count at once cannot both die."""
    try:
        handle = os.open(folder / "died", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(handle, str(os.getpid()).encode())
    os.close(handle)
    os._exit(1)


class DyingJudge(ScriptedJudge):
    """Picks the gold target; on its ``die_at``-th batch (counted across processes in
    ``folder``) the process it runs in exits, once. Every batch asked is logged there.
    It asks its sources in blocks of BLOCK (as the local judge does, of its prefix cache's size)."""

    BLOCK = 25

    def __init__(self, gold: dict[str, str], folder: Path, die_at: int) -> None:
        super().__init__(lambda q: pick(gold.get(q.source.iri)), params={"gold": sorted(gold.items())}, batch_size=4)
        self.folder = str(folder)
        self.die_at = die_at
        self.source_block = self.BLOCK

    def answer(self, questions):
        folder = Path(self.folder)
        with (folder / "asked.log").open("a") as log:
            log.write(json.dumps([q.text() for q in questions]) + "\n")
        calls = sum(1 for _ in (folder / "asked.log").open())
        if self.die_at and calls >= self.die_at:
            _die_once(folder)
        return super().answer(questions)


@pytest.mark.parametrize("cached", [True, False], ids=["cache", "no-cache"])
def test_a_killed_actor_loses_no_answer(cluster, persons, tmp_path, cached) -> None:
    """With the cache file or without it (the store keeps what the run was given), the
    restarted block asks only the batch in flight again, and counts as one process does."""
    from kgalign.evaluation.metrics import read_pairs

    _by_value()
    gold = dict(read_pairs(persons["gold"]))
    cache = str(tmp_path / "ray" / "judge-cache.sqlite") if cached else None
    config = AlignConfig(vote=VoteConfig(gate=False), gold=str(persons["gold"]), cache_path=cache)
    logs = tmp_path / "logs"
    logs.mkdir()
    result = align(persons["left"], persons["right"], config.replace(engine="ray", ray={"address": cluster}), judge=DyingJudge(gold, logs, die_at=5))
    assert (logs / "died").exists(), "the actor was not killed"
    asked = [json.loads(line) for line in (logs / "asked.log").read_text().splitlines()]
    # The batch in flight when its actor died was asked again; no other question twice.
    texts = [text for batch in asked for text in batch]
    seen: dict[str, int] = {}
    for text in texts:
        seen[text] = seen.get(text, 0) + 1
    twice = {text for text, n in seen.items() if n > 1}
    assert max(seen.values()) == 2 and any(set(batch) == twice for batch in asked[4:])
    assert result.metrics is not None and result.metrics["f1"] == 1.0
    # Asked as a Ray dataset of blocks of BLOCK sources, on both actors.
    judged = sum(1 for d in result.decisions if d.rounds)
    assert result.engine["judge_blocks"] == -(-judged // DyingJudge.BLOCK) >= 2
    # The answers read back after the restart were given in this run: neither hits nor cached.
    assert result.counts["llm_questions"] == len(set(texts)) and result.counts["cache_hits"] == 0
    assert not any(r.cached for d in result.decisions for r in d.rounds)
    if not cached:
        return
    local_logs = tmp_path / "local-logs"
    local_logs.mkdir()
    local = align(persons["left"], persons["right"], config.replace(cache_path=None), judge=DyingJudge(gold, local_logs, die_at=0))
    assert _links(result) == _links(local)
    assert result.counts["llm_questions"] == local.counts["llm_questions"]
    # Every answer is in the driver's cache: the same run again asks nothing.
    again = align(persons["left"], persons["right"], config.replace(engine="ray", ray={"address": cluster}), judge=DyingJudge(gold, logs, die_at=0))
    assert again.counts["llm_questions"] == 0 and again.counts["cache_hits"] == len(set(texts))
    assert _links(again) == _links(result)


class AlwaysDying(DyingJudge):
    """Ends the process it runs in on its first batch, every time."""

    def answer(self, questions):
        os._exit(1)


def test_a_block_that_kills_every_actor_stops_the_run(cluster, mini_persons, tmp_path) -> None:
    from kgalign.errors import KgalignError

    _by_value()
    pair = mini_persons(tmp_path, 6)  # one block of sources
    # Started twice at most (4 by default): the second start stops the run.
    config = AlignConfig(vote=VoteConfig(gate=False), cache_path=None).replace(engine="ray", ray={"address": cluster, "block_attempts": 1})
    with pytest.raises(KgalignError, match="judging stopped: RuntimeError: block \\d+ of the sources was started 2 times; its actors died each time$"):
        align(pair["left"], pair["right"], config, judge=AlwaysDying({}, tmp_path, die_at=0))


class DyingSearchWorker:
    """Made a subclass of the engine's worker in the test (the module imports no Ray
    engine at load): logs every lexical search block it is asked, and on the ``DIE_AT``-th
    (counted across processes in ``FOLDER``) exits, once."""

    FOLDER = ""
    DIE_AT = 0

    def lexical_block(self, left, start, stop, targets, offset, k):
        folder = Path(self.FOLDER)
        with (folder / "searched.log").open("a") as log:
            log.write(f"{os.getpid()} {offset} {start}\n")
        calls = sum(1 for _ in (folder / "searched.log").open())
        if calls >= self.DIE_AT:
            _die_once(folder)
        return super().lexical_block(left, start, stop, targets, offset, k)


def test_an_actor_killed_during_the_search_is_restarted_and_the_search_finishes(cluster, persons, tmp_path, monkeypatch) -> None:
    """The search keeps no state in an actor: the block in flight when its actor died is
    searched again by the restarted actor, and the outputs are those of one process."""
    logs = _dying_at_third_block(DyingSearchWorker, tmp_path, monkeypatch)
    args = [persons["left"], persons["right"], "--gold", persons["gold"], "--quiet", "--no-cache"]
    info = _both_engines(args, tmp_path, cluster)
    assert (logs / "died").exists(), "the actor was not killed"
    searched = [line.split(" ", 1) for line in (logs / "searched.log").read_text().splitlines()]
    # Every call the driver made ran once, and the one in flight at the kill once more.
    assert len(searched) == info["engine"]["search_calls"] + 1
    dead = (logs / "died").read_text()
    last = max(i for i, (pid, _) in enumerate(searched) if pid == dead)
    assert any(block == searched[last][1] and pid != dead for pid, block in searched[last + 1 :])


def _dying_at_third_block(dying: type, tmp_path: Path, monkeypatch) -> Path:
    """The run's actors made of ``dying`` (a Dying*Worker) and the engine's worker, every
    search shipped to them; the folder of their logs."""
    import kgalign.runtime.ray_engine as ray_engine

    _by_value()
    logs = tmp_path / "logs"
    logs.mkdir()
    worker = type("Worker", (dying, ray_engine.KgalignWorker), {"FOLDER": str(logs), "DIE_AT": 3})
    monkeypatch.setattr(ray_engine, "KgalignWorker", worker)
    monkeypatch.setattr(ray_engine, "SHARD_FROM_CELLS", 0)
    return logs


class DyingDenseWorker:
    """As :class:`DyingSearchWorker`, for the blocks of the dense search: its restarted
    actor holds no slice of the search any more."""

    FOLDER = ""
    DIE_AT = 0

    def dense_block(self, key, sources, k):
        folder = Path(self.FOLDER)
        with (folder / "dense.log").open("a") as log:
            log.write(f"{os.getpid()} {len(sources)}\n")
        if sum(1 for _ in (folder / "dense.log").open()) >= self.DIE_AT:
            _die_once(folder)
        return super().dense_block(key, sources, k)


def test_an_actor_killed_during_the_dense_search_leaves_it_to_the_driver(cluster, persons, tmp_path, monkeypatch) -> None:
    """An actor holds its slice's index: restarted, it has none, so the search is done
    again in the driver (one warning), and the outputs are those of one process."""
    import kgalign.runtime.ray_engine as ray_engine

    logs = _dying_at_third_block(DyingDenseWorker, tmp_path, monkeypatch)
    monkeypatch.setattr(ray_engine, "DENSE_BLOCK_ROWS", 16)
    args = [persons["left"], persons["right"], "--gold", persons["gold"], "--retrieval", "full"]
    output: dict[str, str] = {}
    info = _both_engines(args, tmp_path, cluster, logs=output)
    assert (logs / "died").exists(), "the actor was not killed"
    said = " ".join(output["ray"].split())  # the log's lines are wrapped
    assert "the dense search on the actors failed" in said and "searching in the driver" in said
    assert "Unhandled error" not in output["ray"]  # every block's error was read
    assert info["engine"]["dense_calls"] == 0 and info["counts"]["links"] > 0


@pytest.mark.parametrize(("missing", "judge", "said"), [("ray", "none", "needs Ray"), ("ray.data", "local", "through Ray Data")])
def test_without_ray_installed_the_run_stops_in_one_line(persons, tmp_path, missing, judge, said) -> None:
    """A Python without Ray (or, for a run that asks a judge, without Ray Data): one line
    naming the extra, before the cluster starts; nothing written."""
    code = (
        f"import sys; sys.modules[{missing!r}] = None\n"
        "from kgalign.cli.main import main\n"
        f"main(['run', {str(persons['left'])!r}, {str(persons['right'])!r}, '-o', {str(tmp_path / 'out')!r}, '--engine', 'ray', '--judge', {judge!r}, '--quiet'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert said in done.stderr and "pip install 'kgalign[ray]'" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    shutil.rmtree(tmp_path / "out", ignore_errors=True)


def test_explanations_come_from_the_actors(cluster, mini_persons, tmp_path) -> None:
    _by_value()
    from kgalign.evaluation.metrics import read_pairs

    pair = mini_persons(tmp_path, 6)
    gold = dict(read_pairs(pair["gold"]))
    judge = ScriptedJudge(lambda q: pick(gold.get(q.source.iri)), explanations="same name and birth date")
    config = AlignConfig(vote=VoteConfig(gate=False), explain=True).replace(engine="ray", ray={"address": cluster})
    result = align(pair["left"], pair["right"], config, judge=judge)
    judged = [d for d in result.decisions if d.rounds and d.kind in ("match", "none")]
    assert judged and all((d.explanation or "").startswith("same name and birth date") for d in judged)
    assert result.counts["explained"] == len(judged)


def test_gpus_the_cluster_lacks_stop_the_run_in_one_line(cluster, persons, tmp_path) -> None:
    out = tmp_path / "out"
    result = cli(["run", persons["left"], persons["right"], "-o", out, "--quiet", *_on_ray(cluster), "--ray-gpus", "1"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "--ray-gpus 1" in lines[0] and "0 GPUs" in lines[0], result.output
    assert not out.exists() or not any(out.iterdir())


def test_inputs_split_in_blocks_and_partitions_give_the_tables_of_one_process(cluster, persons, tmp_path, monkeypatch) -> None:
    """A folder of N-Triples files (an entity described in two of them) and a gzipped
    file, loaded by three partitions on the actors in blocks of about 1 KB: the same
    entity tables as the driver's own load, and the same links and decisions as --engine
    local (test_outputs_equal_the_local_engine_without_a_judge compares the files)."""
    import gzip

    import kgalign.runtime.ray_load as ray_load
    from kgalign.io.entities import load_entities

    monkeypatch.setattr(ray_load, "BLOCK_BYTES", 1024)
    lines = persons["left"].read_text().splitlines(keepends=True)
    folder = tmp_path / "left"
    folder.mkdir()
    (folder / "a.nt").write_text("".join(lines[::2]))
    (folder / "b.nt").write_text("".join(lines[1::2]))
    right = tmp_path / "right.nt.gz"
    from rdflib import Graph

    right.write_bytes(gzip.compress(Graph().parse(persons["right"]).serialize(format="nt").encode()))
    config = AlignConfig(gold=str(persons["gold"])).replace(engine="ray", ray={"address": cluster, "partitions": 3})
    result = align(folder, right, config)
    assert result.engine["partitions"] == 3 and result.engine["partitioned_inputs"] == 2
    for side, path in (("left", folder), ("right", right)):
        _, expected = load_entities(path, side)
        table = result.prepared.left_table if side == "left" else result.prepared.right_table
        assert table.triple_count == expected.triple_count
        assert list(table.hashes or {}) == list(expected.entities)
    local = align(folder, right, AlignConfig(gold=str(persons["gold"])))
    assert _links(result) == _links(local) and result.links
    assert [(d.source, d.kind, d.target) for d in result.decisions] == [(d.source, d.kind, d.target) for d in local.decisions]
    assert result.metrics == local.metrics
    # The driver keeps the profiles in a file, read back by IRI (kgalign/selection/profile_file.py).
    for ray_side, local_side in ((result.prepared.left_profiles, local.prepared.left_profiles), (result.prepared.right_profiles, local.prepared.right_profiles)):
        assert isinstance(ray_side, ProfileFile) and type(local_side) is dict
        assert list(ray_side) == list(local_side) and all(ray_side[iri] == profile for iri, profile in local_side.items())


def test_one_set_of_partitions_loads_both_inputs(cluster, persons, tmp_path) -> None:
    """The partitions that loaded one input load the next (restarted, not started again)
    and give the one-process tables; a file they cannot parse goes to the driver, and
    the input after it gets new partitions."""
    import ray

    from kgalign.io.entities import load_entities
    from kgalign.runtime.ray_load import RayLoader

    bad = tmp_path / "bad.nt"
    bad.write_text(persons["left"].read_text() + '<http://ex/a> <http://ex/p> "unterminated .\n')
    loader = RayLoader(ray, 2)
    try:
        for path, started in ((persons["left"], 1), (persons["right"], 1), (bad, 1), (persons["right"], 2)):
            loaded = loader(path, "side", None, None)
            assert loader.started == started, path
            if path == bad:
                assert loaded is None
                continue
            assert loaded is not None
            _, expected = load_entities(path, "side")
            assert loaded[1].triple_count == expected.triple_count and len(loaded[0]) == expected.triple_count
            assert list(loaded[1].hashes or {}) == list(expected.entities)
    finally:
        loader.close()
    assert loader.started == 2 and loader.used == 3


def test_a_bad_line_stops_the_ray_run_as_it_stops_a_local_one(cluster, persons, tmp_path) -> None:
    """The partitions cannot parse it: the driver loads the file, and its error names the line."""
    bad = tmp_path / "bad.nt"
    bad.write_text(persons["left"].read_text() + '<http://ex/a> <http://ex/p> "unterminated .\n')
    outputs = {}
    for engine in ("local", "ray"):
        on_ray = _on_ray(cluster) if engine == "ray" else []
        done = cli(["run", bad, persons["right"], "-o", tmp_path / engine, "--quiet", *on_ray])
        assert done.exit_code != 0
        outputs[engine] = [line for line in done.output.splitlines() if line.strip()]
        assert not (tmp_path / engine).exists() or not any((tmp_path / engine).iterdir())
    assert outputs["ray"] == outputs["local"] and len(outputs["local"]) == 1 and f"{bad}:1081" in outputs["local"][0], outputs


def test_fusion_by_partitions_writes_the_files_one_process_writes(cluster, persons, tmp_path, monkeypatch) -> None:
    """Past rdflib's pretty Turtle (lowered here to 100 triples) the ray engine fuses by
    partitions (its default): fused.ttl, provenance.trig and the rest are the local run's
    files, under a policy that drops conflicting values (the default policy's partitions:
    test_the_fusion_partitions_write_the_fused_graph_as_shards)."""
    import kgalign.io.turtle as turtle
    import kgalign.runtime.ray_load as ray_load

    monkeypatch.setattr(turtle, "PRETTY_LIMIT", 100)
    monkeypatch.setattr(ray_load, "BLOCK_BYTES", 4096)
    # The right graph in the left one's vocabulary: names, birth dates and phones conflict.
    right = tmp_path / "right.ttl"
    right.write_text(persons["right"].read_text().replace("ontology_person2.owl", "ontology_person1.owl"))
    args = [persons["left"], right, "--gold", persons["gold"], "--quiet", "--ray-partitions", "3", "--conflicts", "most-specific"]
    info = _both_engines(args, tmp_path, cluster)
    assert info["engine"]["partitioned_fusion"] is True and info["counts"]["fused_triples"] > 1500

    def provenance(folder: Path) -> bytes:  # but for the run's IRI (the time it started)
        return re.sub(rb"run/\d+", b"run/N", (folder / "provenance.trig").read_bytes())

    local = provenance(tmp_path / "local")
    assert provenance(tmp_path / "ray") == local and local.count(b"\n") > 1900 and local.count(b"DroppedTriple") > 10
    on_ray = _on_ray(cluster)
    # A policy registered in this process alone is sent to the actors with the work.
    from kgalign.fusion.fuse import CONFLICT_POLICIES

    CONFLICT_POLICIES.register("shortest", lambda left, right: min(left + right, key=lambda value: (len(value), value.n3())), "the shortest value")
    try:
        done = cli(["run", *args, "--conflicts", "shortest", "-o", tmp_path / "shortest", *on_ray])
    finally:
        CONFLICT_POLICIES.unregister("shortest")
    assert done.exit_code == 0, done.output
    assert json.loads((tmp_path / "shortest" / "run.json").read_text())["engine"]["partitioned_fusion"] is True
    assert b"functional-conflict:shortest" in (tmp_path / "shortest" / "provenance.trig").read_bytes()
    # No room to spill the partitions' rows (a temporary directory that is not there): the
    # driver fuses, and writes the local run's files.
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "absent"))
    done = cli(["run", *args, "-o", tmp_path / "no-spill", *on_ray])
    assert done.exit_code == 0, done.output
    assert json.loads((tmp_path / "no-spill" / "run.json").read_text())["engine"]["partitioned_fusion"] is False
    said = " ".join(done.output.split())  # the log's lines are wrapped
    assert "cannot spill the fused triples there" in said and "fusing in the driver" in said
    _same_outputs(tmp_path / "local", tmp_path / "no-spill")


def test_the_fusion_partitions_write_the_fused_graph_as_shards(cluster, persons, tmp_path, monkeypatch) -> None:
    """Each fusion actor writes its share of fused.ttl and provenance.trig into OUTDIR
    (fused/, provenance/); past --ray-single-files-limit the shards alone are written,
    and a later run without shards removes them."""
    import kgalign.io.turtle as turtle

    monkeypatch.setattr(turtle, "PRETTY_LIMIT", 100)
    out = tmp_path / "out"
    args = ["run", persons["left"], persons["right"], "--quiet", "--ray-partitions", "3", *_on_ray(cluster), "-o", out]
    done = cli(args)
    assert done.exit_code == 0, done.output
    engine = json.loads((out / "run.json").read_text())["engine"]
    assert engine["shards"] == {"files": 3, "folders": ["fused", "provenance"], "written_by_partitions": 3, "written_by_driver": 0, "single_files": True}
    shards = sorted((out / "fused").iterdir())
    assert [p.name for p in shards] == ["part-00000.ttl", "part-00001.ttl", "part-00002.ttl"]

    def blocks(text: str) -> list[str]:
        return sorted(block for block in text.split(" .\n") if block.strip())

    fused = (out / "fused.ttl").read_text()
    assert blocks("".join(p.read_text() for p in shards)) == blocks(fused) and len(blocks(fused)) > 300
    assert sorted(p.name for p in (out / "provenance").iterdir())[-1] == "run.trig"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging folder left
    # The shards alone: fused.ttl and provenance.trig of the run before are removed.
    done = cli([*args, "--ray-single-files-limit", "0"])
    assert done.exit_code == 0, done.output
    assert not (out / "fused.ttl").exists() and not (out / "provenance.trig").exists()
    assert blocks("".join(p.read_text() for p in sorted((out / "fused").iterdir()))) == blocks(fused)
    assert json.loads((out / "run.json").read_text())["engine"]["shards"]["single_files"] is False
    # No shards: those of the run before go.
    done = cli([*args, "--no-ray-shards"])
    assert done.exit_code == 0, done.output
    assert (out / "fused.ttl").read_text() == fused
    assert not (out / "fused").exists() and not (out / "provenance").exists()
    assert json.loads((out / "run.json").read_text())["engine"]["shards"] is None
