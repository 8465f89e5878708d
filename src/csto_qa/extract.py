"""Step 6, extract: the retrieved passages -> the sentence that answers, a short answer inside it,
or an abstention when the evidence is not there.

Each sentence of the top passages is scored on three signals computed without generating text:
its embedding's similarity to the question (sentence vectors are computed at build time), the
share of the question's content words it contains (weighted by rarity), and the rank of the
passage it sits in. The abstention decision reads the same signals (see ``Extractor.supported``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from . import analyze
from .index import Index
from .retrieve import Hit


@dataclass(frozen=True)
class ExtractSettings:
    passages: int = 5  # sentences are taken from this many top passages
    w_dense: float = 1.0
    w_lexical: float = 0.25
    w_rank: float = 0.02
    # abstention: evidence is accepted when its calibrated score clears this bar (see supported())
    min_dense: float = 0.80
    min_support: float = 0.86


@dataclass(frozen=True)
class Evidence:
    sentence: int
    score: float
    dense: float
    coverage: float
    passage_rank: int


class Extractor:
    def __init__(self, index: Index, settings: ExtractSettings = ExtractSettings()):
        self.index = index
        self.settings = settings
        self._idf = _idf(index)

    def coverage(self, query_stems: list[str], text: str) -> float:
        """Share of the question's content words present in the text, each weighted by its IDF."""
        wanted = set(query_stems)
        if not wanted:
            return 0.0
        present = set(analyze.stems(text, self.index.lang))
        total = sum(self._idf.get(t, self._idf_unknown) for t in wanted)
        return sum(self._idf.get(t, self._idf_unknown) for t in wanted & present) / total

    @property
    def _idf_unknown(self) -> float:
        return math.log(1 + len(self.index.chunks))

    def evidence(self, hits: list[Hit], query_vector: np.ndarray, query_stems: list[str]) -> list[Evidence]:
        s = self.settings
        seen: dict[int, int] = {}
        for rank, hit in enumerate(hits[: s.passages]):
            for sid in self.index.chunk_sentences[hit.chunk]:
                seen.setdefault(sid, rank)
        if not seen:
            return []
        ids = np.fromiter(seen, dtype=np.int64)
        dense = self.index.sentence_vectors[ids] @ query_vector.astype(np.float32)
        out = []
        for sid, d in zip(ids.tolist(), dense.tolist()):
            cov = self.coverage(query_stems, self.index.sentence_text(sid))
            rank = seen[sid]
            score = s.w_dense * d + s.w_lexical * cov - s.w_rank * rank
            out.append(Evidence(sid, score, d, cov, rank))
        out.sort(key=lambda e: -e.score)
        return out

    def supported(self, best: Evidence) -> bool:
        """Accept the best evidence only if the sentence is close to the question and its score clears
        the bar calibrated on the dev questions (``csto-qa eval`` shows the trade-off)."""
        return best.dense >= self.settings.min_dense and best.score >= self.settings.min_support


def _idf(index: Index) -> dict[str, float]:
    """IDF of every BM25 vocabulary term, read from the BM25 matrix (a term's column length = df)."""
    bm25 = index.bm25
    vocab = getattr(bm25, "vocab_dict", None) or {}
    scores = getattr(bm25, "scores", None) or {}
    indptr = scores.get("indptr")
    if indptr is None:
        return {}
    df = np.diff(np.asarray(indptr))
    n = max(len(index.chunks), 1)
    return {term: math.log(1 + n / max(int(df[i]), 1)) for term, i in vocab.items() if i < len(df)}


# --- short answers --------------------------------------------------------------------------

_MONTHS = ("janvier|février|fevrier|mars|avril|mai|juin|juillet|août|aout|septembre|octobre|novembre|décembre"
           "|decembre|january|february|march|april|may|june|july|august|september|october|november|december")
_NUMBER_WORDS = ("deux|trois|quatre|cinq|six|sept|huit|neuf|dix|onze|douze|quinze|vingt|trente|quarante"
                 "|cinquante|cent|mille|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen"
                 "|twenty|thirty|hundred|thousand")
_PATTERNS = {
    "when": [
        rf"\b\d{{1,2}}(?:er)?\s+(?:{_MONTHS})\s+\d{{4}}\b",
        rf"\b(?:{_MONTHS})\s+\d{{1,2}},\s+\d{{4}}\b",
        rf"\b\d{{1,2}}(?:er)?\s+(?:{_MONTHS})\b",
        rf"\b(?:{_MONTHS})\s+\d{{4}}\b",
        r"\b\d{1,2}[./]\d{1,2}[./]\d{4}\b",
        r"\b\d{4}\s*[-–]\s*\d{4}\b",
        r"\b(?:1[5-9]|20)\d{2}\b",
    ],
    "how_many": [
        rf"\b(?:\d{{1,3}}(?:[  ]\d{{3}})+|\d+(?:[.,]\d+)?|{_NUMBER_WORDS})(?:\s+(?:{_NUMBER_WORDS}))?"
        r"(?:\s*%|\s+(?:de\s+|d['’]|of\s+)?[A-Za-zÀ-ÿ][\w-]*)?",
    ],
    "who": [r"\b[A-ZÀ-Ý][\w'’-]+(?:\s+(?:de\s+|du\s+|von\s+|van\s+|al-)?[A-ZÀ-Ý][\w'’-]+){1,3}"],
    "where": [r"\b(?:à|au|aux|en|in|at)\s+(?P<span>[A-ZÀ-Ý][\w'’-]+(?:[\s-]+[A-ZÀ-Ý][\w'’-]+)*)"],
}
_COMPILED = {t: [re.compile(p, re.IGNORECASE if t in ("when", "how_many") else 0) for p in ps]
             for t, ps in _PATTERNS.items()}
_QUESTION_TYPES = [
    ("how_many", r"\b(combien|how\s+(many|much)|quel\s+(nombre|effectif)|what\s+number)\b"),
    ("when", r"\b(quand|en\s+quelle\s+année|à\s+quelle\s+date|quelle\s+date|when|what\s+year|which\s+year|what\s+date|depuis\s+quand)\b"),
    ("where", r"\b(où|where|dans\s+quel(le)?\s+(ville|pays|capitale)|in\s+which\s+(city|country)|what\s+city)\b"),
    ("who", r"\b(qui|who|whom|quel\s+(président|dirigeant|ministre|chercheur|pays)|which\s+(country|president|leader|person))\b"),
]


def question_type(question: str) -> str:
    q = question.casefold()
    for qtype, pattern in _QUESTION_TYPES:
        if re.search(pattern, q):
            return qtype
    return "other"


def short_answer(quote: str, qtype: str, question: str) -> str | None:
    """A typed span of the quote (date, quantity, name, place) that the question does not already
    contain; None unless exactly one such span, or one clearly more specific than the others."""
    patterns = _COMPILED.get(qtype)
    if not patterns:
        return None
    asked = analyze.fold(question)
    for pattern in patterns:  # most specific pattern first
        found = []
        for m in pattern.finditer(quote):
            span = m.group("span" if "span" in pattern.groupindex else 0).strip(" ,.;:")
            if span and analyze.fold(span) not in asked and span not in found:
                found.append(span)
        if qtype == "who":
            found = [f for f in found if not any(f != g and f in g for g in found)]
        if len(found) == 1:
            return found[0]
        if found:
            return None
    return None
