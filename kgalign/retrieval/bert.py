"""A BERT sentence encoder in plain numpy, for the few hundred texts most runs embed.

The retrieval cascade settles most entities on the lexical channel and embeds only the
contested rest: a few hundred texts on the benchmark pairs. For those, importing torch
and transformers (5 to 8 s on a 2-core machine) costs more than the forward pass. This
module runs the forward pass of sentence-transformers for the common model family (a
``BertModel`` followed by mean pooling and normalisation, e.g. all-MiniLM-L6-v2) with
the ``tokenizers`` and ``safetensors`` packages and numpy, and imports in a tenth of a
second. Two things differ: GELU is computed in its tanh form (see :func:`_gelu`), and
whole batches run on parallel threads. Its vectors agree with sentence-transformers'
float32 ones to a cosine above 0.9999 (tests/test_bert.py checks it on real texts;
bench/results/embed-engines.md has the figures).

Only what the model folder declares is supported; :func:`supported` says whether a
folder qualifies, and the embedder falls back to sentence-transformers when it does not.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

log = logging.getLogger(__name__)

_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "modules.json")


#: A layer norm's weight and bias.
_Norm: TypeAlias = tuple[np.ndarray, np.ndarray]
#: One encoder layer's weights, in the order :meth:`NumpyBert._forward` unpacks them.
_Block: TypeAlias = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, _Norm, np.ndarray, np.ndarray, np.ndarray, np.ndarray, _Norm]


def _read_json(path: Path) -> Any:
    """The file's JSON value: an object for configs, an array for modules.json."""
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def supported(path: str | Path) -> str | None:
    """None when the folder is a BERT + mean pooling (+ normalise) sentence model, else why not."""
    folder = Path(path)
    for name in _REQUIRED_FILES:
        if not (folder / name).is_file():
            return f"no {name}"
    try:
        config = _read_json(folder / "config.json")
        modules = _read_json(folder / "modules.json")
    except (OSError, ValueError) as exc:
        return f"unreadable model description: {exc}"
    if config.get("model_type") != "bert":
        return f"model type {config.get('model_type')!r} is not bert"
    if config.get("hidden_act") != "gelu":
        return f"activation {config.get('hidden_act')!r} is not gelu"
    if config.get("position_embedding_type", "absolute") != "absolute":
        return "position embeddings are not absolute"
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    if kinds not in (["Transformer", "Pooling", "Normalize"], ["Transformer", "Pooling"]):
        return f"module stack {kinds} is not Transformer, Pooling[, Normalize]"
    pooling_dir = next(m.get("path", "") for m in modules if m.get("type", "").endswith("Pooling"))
    try:
        pooling = _read_json(folder / pooling_dir / "config.json")
    except (OSError, ValueError):
        return "no pooling config"
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v}
    if modes != {"pooling_mode_mean_tokens"}:
        return f"pooling {sorted(modes)} is not mean pooling"
    return None


def _cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, axis=-1, keepdims=True)
    return centred / np.sqrt(var + eps) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    """GELU by its tanh form, in place: seven times faster in numpy than the erf form
    BERT names (scipy's erf is not vectorised), within 5e-4 of it everywhere; the
    sentence vectors stay within a cosine of 0.9999 of sentence-transformers'."""
    inner = x * x
    inner *= np.float32(0.044715)
    inner += np.float32(1.0)
    inner *= x
    inner *= np.float32(np.sqrt(2.0 / np.pi))
    np.tanh(inner, out=inner)
    inner += np.float32(1.0)
    inner *= np.float32(0.5)
    x *= inner
    return x


class NumpyBert:
    """The encoder of one model folder; :meth:`encode` returns normalised float32 rows."""

    def __init__(self, path: str | Path, max_tokens: int | None = None, batch_size: int = 32, workers: int | None = None) -> None:
        from tokenizers import Tokenizer

        self.folder = folder = Path(path)
        reason = supported(folder)
        if reason:
            raise ValueError(f"{folder}: not a model the numpy encoder runs ({reason})")
        config = _read_json(folder / "config.json")
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.normalize = any(m.get("type", "").endswith("Normalize") for m in _read_json(folder / "modules.json"))
        limit = int(config.get("max_position_embeddings", 512))
        sentence_config = folder / "sentence_bert_config.json"
        if sentence_config.is_file():
            limit = min(limit, int(_read_json(sentence_config).get("max_seq_length") or limit))
        self.max_tokens = min(limit, max_tokens) if max_tokens else limit
        self.batch_size = batch_size
        self.workers = workers or _cores()

        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=self.max_tokens)
        self.dim = int(config["hidden_size"])
        self.blocks: list[_Block] = []

    def _load_weights(self) -> None:
        """Read the weights (on the first :meth:`encode`; counting word pieces needs none)."""
        if self.blocks:
            return
        from safetensors.numpy import load_file

        weights = load_file(str(self.folder / "model.safetensors"))
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""

        def get(name: str) -> np.ndarray:
            return np.ascontiguousarray(weights[prefix + name], dtype=np.float32)

        self.word = get("embeddings.word_embeddings.weight")
        self.position = get("embeddings.position_embeddings.weight")
        self.token_type = get("embeddings.token_type_embeddings.weight")
        self.embed_norm = (get("embeddings.LayerNorm.weight"), get("embeddings.LayerNorm.bias"))
        blocks: list[_Block] = []
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            # Query, key and value in one product: weights stacked as columns.
            qkv_w = np.concatenate([get(p + f"attention.self.{n}.weight") for n in ("query", "key", "value")]).T.copy()
            qkv_b = np.concatenate([get(p + f"attention.self.{n}.bias") for n in ("query", "key", "value")])
            blocks.append(
                (
                    qkv_w,
                    qkv_b,
                    get(p + "attention.output.dense.weight").T.copy(),
                    get(p + "attention.output.dense.bias"),
                    (get(p + "attention.output.LayerNorm.weight"), get(p + "attention.output.LayerNorm.bias")),
                    get(p + "intermediate.dense.weight").T.copy(),
                    get(p + "intermediate.dense.bias"),
                    get(p + "output.dense.weight").T.copy(),
                    get(p + "output.dense.bias"),
                    (get(p + "output.LayerNorm.weight"), get(p + "output.LayerNorm.bias")),
                )
            )
        self.blocks = blocks

    def tokenize(self, texts: list[str]) -> list:
        """The word pieces of each text (truncated, special tokens included), as
        :meth:`encode` reads them; sentence-transformers strips each text first."""
        return self.tokenizer.encode_batch([str(t).strip() for t in texts])

    def count_tokens(self, texts: list[str]) -> int:
        return sum(len(e.ids) for e in self.tokenize(texts))

    def batches(self, encodings: list) -> list[np.ndarray]:
        """The rows :meth:`encode` runs together: sorted by word pieces, ``batch_size`` at a time.
        Each batch's vectors depend on that batch alone, so an engine that spreads the
        batches over workers (--engine ray) gets the vectors one process gets."""
        lengths = np.array([len(e.ids) for e in encodings])
        order = np.argsort(lengths, kind="stable")
        return [order[start : start + self.batch_size] for start in range(0, len(encodings), self.batch_size)]

    def encode(self, texts: list[str], encodings: list | None = None) -> np.ndarray:
        """Vectors of ``texts``; ``encodings`` is their :meth:`tokenize`, when already made."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self._load_weights()
        if encodings is None:
            encodings = self.tokenize(texts)
        lengths = np.array([len(e.ids) for e in encodings])
        out = np.empty((len(texts), self.dim), dtype=np.float32)

        def run(rows: np.ndarray) -> None:
            width = int(lengths[rows].max())
            ids = np.zeros((len(rows), width), dtype=np.int64)
            types = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.float32)
            for j, row in enumerate(rows):
                enc = encodings[row]
                n = len(enc.ids)
                ids[j, :n] = enc.ids
                types[j, :n] = enc.type_ids
                mask[j, :n] = 1.0
            out[rows] = self._forward(ids, types, mask)

        batches = self.batches(encodings)
        # One batch per core, each on a single BLAS thread: numpy's element-wise steps
        # (GELU, softmax, layer norm) run on one core, so whole batches in parallel
        # keep every core busy where a multi-threaded BLAS alone would leave them idle.
        # One BLAS thread also when there is one batch or one core: a batch's vectors are
        # then the same bits on any machine and in any process (--engine ray's actors).
        from threadpoolctl import threadpool_limits

        workers = min(self.workers, len(batches))
        with threadpool_limits(limits=1, user_api="blas"):
            if workers <= 1:
                for rows in batches:
                    run(rows)
                return out
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(run, batches))
        return out

    def _forward(self, ids: np.ndarray, types: np.ndarray, mask: np.ndarray) -> np.ndarray:
        batch, width = ids.shape
        heads, dim = self.heads, self.dim
        head_dim = dim // heads
        x = self.word[ids] + self.position[:width][None, :, :] + self.token_type[types]
        x = _layer_norm(x, *self.embed_norm, self.eps).reshape(batch * width, dim)
        # Padding keys get a large negative score, as transformers' extended mask does.
        key_bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]
        scale = np.float32(1.0 / np.sqrt(head_dim))
        for qkv_w, qkv_b, out_w, out_b, norm1, in_w, in_b, ffn_w, ffn_b, norm2 in self.blocks:
            qkv = (x @ qkv_w + qkv_b).reshape(batch, width, 3, heads, head_dim)
            q = qkv[:, :, 0].transpose(0, 2, 1, 3)
            k = qkv[:, :, 1].transpose(0, 2, 3, 1)
            v = qkv[:, :, 2].transpose(0, 2, 1, 3)
            scores = (q @ k) * scale + key_bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch * width, dim)
            x = _layer_norm(x + context @ out_w + out_b, *norm1, self.eps)
            hidden = _gelu(x @ in_w + in_b)
            x = _layer_norm(x + hidden @ ffn_w + ffn_b, *norm2, self.eps)
        x = x.reshape(batch, width, dim)
        pooled = (x * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        if self.normalize:
            pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled.astype(np.float32)
