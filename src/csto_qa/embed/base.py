"""The one interface where the embedding backend varies."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Callable

import numpy as np

# Called after each batch a backend embeds: (texts, tokens) done in that batch. The build's progress
# bar shows both rates.
Progress = Callable[[int, int], None]
ENV_THREADS = "CSTO_QA_THREADS"


class Embedder(ABC):
    """Turns queries and passages into L2-normalised float32 vectors of size ``dim``.

    ``identity`` names the backend, model and variant: an index built by one identity is never
    queried with another (vectors from two embedders do not share a space).
    """

    identity: str
    dim: int

    @abstractmethod
    def embed_queries(self, texts: list[str], progress: Progress | None = None) -> np.ndarray: ...

    @abstractmethod
    def embed_passages(self, texts: list[str], progress: Progress | None = None) -> np.ndarray:
        """Many texts at once (a backend batches them as suits it), reporting each batch done."""


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def threads() -> int:
    """Threads an embedding runtime uses: $CSTO_QA_THREADS, else the cores this process may run on.
    Set once, when the runtime is created: changing it per call costs a thread-pool rebuild."""
    try:
        return max(1, int(os.environ[ENV_THREADS]))
    except (KeyError, ValueError):
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
