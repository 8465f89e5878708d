"""The one interface where the embedding backend varies."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class Embedder(ABC):
    """Turns queries and passages into L2-normalised float32 vectors of size ``dim``.

    ``identity`` names the backend, model and variant: an index built by one identity is never
    queried with another (vectors from two embedders do not share a space).
    """

    identity: str
    dim: int

    @abstractmethod
    def embed_queries(self, texts: list[str]) -> np.ndarray: ...

    @abstractmethod
    def embed_passages(self, texts: list[str]) -> np.ndarray: ...


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
