"""Step 5, retrieve: a question -> the best chunks, by dense vectors, BM25, or both fused.

Fusion is reciprocal-rank fusion (Cormack et al., 2009): each list votes 1/(k + rank). It needs no
score calibration between cosine similarities and BM25 scores, whose scales have nothing in common.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .index import Index

MODES = ("hybrid", "dense", "bm25")
RRF_K = 60


@dataclass(frozen=True)
class Hit:
    chunk: int
    score: float  # the score the ranking used (fused in hybrid mode)
    dense: float  # cosine similarity of the chunk to the question
    lexical: float  # BM25 score (0 when no query word occurs)


class Retriever:
    def __init__(self, index: Index, depth: int = 50):
        self.index = index
        self.depth = depth

    def dense(self, query_vector: np.ndarray) -> np.ndarray:
        """Cosine similarity (inner product of unit vectors) of the ``depth`` nearest chunks; 0 elsewhere."""
        n = self.index.chunk_vectors.ntotal
        scores = np.zeros(n, dtype=np.float32)
        if n:
            q = query_vector.reshape(1, -1).astype(np.float32)
            sims, ids = self.index.chunk_vectors.search(q, min(n, self.depth))
            scores[ids[0]] = sims[0]
        return scores

    def similarity(self, query_vector: np.ndarray, chunk: int) -> float:
        return float(self.index.chunk_vectors.reconstruct(chunk) @ query_vector)

    def lexical(self, query_stems: list[str]) -> np.ndarray:
        n = len(self.index.chunks)
        if not n or not query_stems:
            return np.zeros(n, dtype=np.float32)
        known = [t for t in query_stems if t in self.index.bm25.vocab_dict]
        if not known:
            return np.zeros(n, dtype=np.float32)
        return np.asarray(self.index.bm25.get_scores(known), dtype=np.float32)

    def search(self, query_vector: np.ndarray, query_stems: list[str], k: int = 5, mode: str = "hybrid") -> list[Hit]:
        if mode not in MODES:
            raise ValueError(f"unknown retrieval mode '{mode}' (expected one of {', '.join(MODES)})")
        dense = self.dense(query_vector)
        lexical = self.lexical(query_stems)
        if mode == "dense":
            fused = dense
        elif mode == "bm25":
            fused = lexical
        else:
            fused = np.zeros_like(dense)
            for scores in (dense, lexical):
                order = np.argsort(-scores, kind="stable")[: self.depth]
                ranked = order[scores[order] > 0] if scores is lexical else order
                fused[ranked] += 1.0 / (RRF_K + 1 + np.arange(len(ranked)))
        top = np.argsort(-fused, kind="stable")[:k]
        return [Hit(int(i), float(fused[i]), float(dense[i]) or self.similarity(query_vector, int(i)),
                    float(lexical[i])) for i in top]
