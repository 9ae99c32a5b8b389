"""The plain-numpy BERT encoder against sentence-transformers, on the real shipped MiniLM."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import kgalign.retrieval.embed as embed_module
from kgalign.retrieval.bert import NumpyBert, supported
from kgalign.retrieval.embed import SentenceTransformerEmbedder, default_model_path
from kgalign.errors import KgalignError

DATA = Path(__file__).parent / "data" / "abt_buy_mini"


def _texts() -> list[str]:
    with (DATA / "Abt.csv").open(encoding="utf-8", errors="replace") as handle:
        rows = list(csv.DictReader(handle))
    texts = [f"{r['name']} | {r['description']} | {r['price']}" for r in rows]
    # Short, empty, padded, non-Latin, and longer than the 128 word pieces kept.
    return texts + ["", "a", "  luke bakes bread  ", "Éléphant à Zürich 東京", "x " * 400, "ignore the above <|im_start|>"]


def test_numpy_vectors_match_sentence_transformers_float32() -> None:
    texts = _texts()
    exact = SentenceTransformerEmbedder(precision="float32", engine="torch").encode(texts)
    numpy_engine = SentenceTransformerEmbedder(engine="numpy")
    fast = numpy_engine.encode(texts)
    assert fast.shape == exact.shape == (len(texts), 384) and fast.dtype == np.float32
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    assert float(np.min(np.sum(fast * exact, axis=1))) > 0.9999
    # Same order in and out, whatever the length sorting inside.
    single = numpy_engine.encode([texts[3]])
    assert float(single[0] @ fast[3]) > 0.99999


def test_numpy_engine_ranks_like_torch(embedder) -> None:
    left = ["sony turntable pslx350h", "bose acoustimass 5 speaker system"]
    right = ["Bose AM5 Acoustimass speakers", "Sony PS-LX350H belt drive turntable", "garden hose 50 ft"]
    a = SentenceTransformerEmbedder(engine="numpy")
    b = SentenceTransformerEmbedder(engine="torch", precision="float32")
    for model in (a, b):
        scores = model.encode(left) @ model.encode(right).T
        assert list(scores.argmax(axis=1)) == [1, 0]


def test_engine_choice_and_cache_ids(monkeypatch) -> None:
    auto = SentenceTransformerEmbedder()
    torch_engine = SentenceTransformerEmbedder(engine="torch")
    numpy_engine = SentenceTransformerEmbedder(engine="numpy")
    assert len({auto.model_id, torch_engine.model_id, numpy_engine.model_id}) == 3
    assert auto.engine_for(["a short text"]) == "numpy"
    assert torch_engine.engine_for(["a short text"]) == "torch"
    monkeypatch.setattr(embed_module, "AUTO_NUMPY_MAX_TOKENS", 20)
    assert auto.engine_for(["a short text"]) == "numpy"
    assert auto.engine_for(["a text that has quite a few more word pieces than twenty, surely, by far: one, two, three, four, five, six"]) == "torch"
    with pytest.raises(KgalignError, match="engine"):
        SentenceTransformerEmbedder(engine="onnx")


def test_models_the_numpy_engine_cannot_run(tmp_path) -> None:
    source = Path(default_model_path())
    assert supported(source) is None
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("config.json", "modules.json", "tokenizer.json", "sentence_bert_config.json"):
        (folder / name).write_bytes((source / name).read_bytes())
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_bytes((source / "1_Pooling" / "config.json").read_bytes())
    assert "model.safetensors" in (supported(folder) or "")
    (folder / "model.safetensors").symlink_to(source / "model.safetensors")
    assert supported(folder) is None
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"model_type": "xlm-roberta"}))
    assert "xlm-roberta" in (supported(folder) or "")
    (folder / "config.json").write_text(json.dumps(config))
    pooling = json.loads((source / "1_Pooling" / "config.json").read_text())
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling | {"pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True}))
    assert "mean pooling" in (supported(folder) or "")
    with pytest.raises(KgalignError, match="numpy embedder engine"):
        SentenceTransformerEmbedder(str(folder), engine="numpy")
    # auto falls back to torch for such a model.
    assert SentenceTransformerEmbedder(str(folder)).engine == "torch"
    with pytest.raises(ValueError, match="not a model"):
        NumpyBert(folder)
