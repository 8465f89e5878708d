"""Any sentence-transformers model, by Hugging Face name or local folder (never downloaded here:
HF_HUB_OFFLINE is honoured, and a name must already be in the local cache)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import Embedder, normalise


def _digest(folder: Path) -> str:
    """Short digest of a model folder: its configuration files, and the names and sizes of the rest."""
    import hashlib

    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode())
        h.update(path.read_bytes() if path.suffix == ".json" else str(path.stat().st_size).encode())
    return h.hexdigest()[:12]


class SentenceTransformerEmbedder(Embedder):
    def __init__(self, model: str):
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(model, device="cpu")
        dimension = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(dimension())
        folder = Path(model)
        # a folder's name says little ("model"): its files' digest tells two local models apart
        name = f"{folder.name}@{_digest(folder)}" if folder.exists() else model
        self.identity = f"sentence-transformers:{name}:{self.dim}"
        self._query_prompt, self._passage_prompt = self._prompts(model)

    def _prompts(self, model: str) -> tuple[str, str]:
        """The model's own prompts if it declares them, else e5's convention for e5 models."""
        prompts = getattr(self._model, "prompts", None) or {}
        query = prompts.get("query")
        passage = prompts.get("passage", prompts.get("document"))
        if query is not None or passage is not None:
            return query or "", passage or ""
        if "e5" in Path(model).name.lower():
            return "query: ", "passage: "
        return "", ""

    def _encode(self, texts: list[str], prompt: str) -> np.ndarray:
        vectors = self._model.encode([prompt + t for t in texts], batch_size=32, show_progress_bar=False,
                                     convert_to_numpy=True, normalize_embeddings=True)
        return normalise(vectors.reshape(len(texts), self.dim))

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self._query_prompt)

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self._passage_prompt)
