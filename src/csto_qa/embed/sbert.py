"""Any sentence-transformers model, by Hugging Face name or local folder. Never downloaded: the hub
is switched off before the library is imported, and a name must already be in the local cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .base import Embedder, Progress, normalise

BATCH = 32


def offline() -> None:
    """No download, ever: read by huggingface_hub and transformers when they are first imported."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


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
        offline()
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(model, device="cpu", local_files_only=True)
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

    def embed_queries(self, texts: list[str], progress: Progress | None = None) -> np.ndarray:
        return self._embed(texts, self._query_prompt, progress)

    def embed_passages(self, texts: list[str], progress: Progress | None = None) -> np.ndarray:
        return self._embed(texts, self._passage_prompt, progress)

    def _embed(self, texts: list[str], prompt: str, progress: Progress | None) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i in range(0, len(texts), BATCH):
            batch = [prompt + t for t in texts[i : i + BATCH]]
            out[i : i + len(batch)] = self._model.encode(batch, batch_size=BATCH, show_progress_bar=False,
                                                         convert_to_numpy=True, normalize_embeddings=True)
            if progress:
                progress(len(batch), int(self._model.tokenize(batch)["attention_mask"].sum()))
        return normalise(out)
