"""Step 2, split: a Document's text -> chunks (for retrieval) and sentences (for quoting), as offsets."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import lru_cache

# A sentence end: terminal punctuation, then space, then something that can open a sentence.
# The look-behinds keep French and English abbreviations and initials ("M. Poutine", "W. H. Hill",
# "p. 7", "n° 3") inside their sentence; loading already turned hard line wraps into spaces.
_ABBREVIATIONS = ("M", "Mme", "Mlle", "MM", "Dr", "Pr", "Me", "St", "Ste", "Mr", "Mrs", "Ms", "Prof",
                  "Gen", "Gén", "Col", "Lt", "Sgt", "p", "pp", "cf", "etc", "vol", "art", "al", "env",
                  "av", "apr", "J.-C", "No", "no", "n°", "vs", "e.g", "i.e", "U.S", "Inc", "Ltd", "Co")
_SENTENCE_END = (
    r"(?<=[.!?…])"
    + "".join(rf"(?<!\b{re.escape(a)}\.)" for a in _ABBREVIATIONS)
    + r"(?<!\b[A-Z]\.)\s+(?=[«\"“(\[A-ZÀ-ÖØ-Þ0-9])"
)


@dataclass(frozen=True)
class SplitSettings:
    chunk_size: int = 800
    chunk_overlap: int = 160

    def to_dict(self) -> dict:
        return asdict(self)


@lru_cache(maxsize=8)
def _splitter(settings: SplitSettings):
    # imported here: answering never splits, and the import costs a quarter of a cold start
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    return RecursiveCharacterTextSplitter(
        chunk_size=settings.chunk_size,
        chunk_overlap=settings.chunk_overlap,
        separators=["\n\n", "\n", _SENTENCE_END, r"(?<=[;:])\s+", r"(?<=,)\s+", r"\s+", ""],
        is_separator_regex=True,
        keep_separator="end",
        add_start_index=True,
        strip_whitespace=True,
    )


def chunk_spans(text: str, settings: SplitSettings) -> list[tuple[int, int]]:
    spans = []
    for piece in _splitter(settings).create_documents([text]):
        start = piece.metadata["start_index"]
        end = start + len(piece.page_content)
        if start < 0 or text[start:end] != piece.page_content:  # never cite a span we cannot prove
            raise AssertionError(f"splitter offset mismatch at {start}")
        spans.append((start, end))
    return spans


_PARAGRAPH = re.compile(r"[^\n]+")
_SENTENCE_BREAK = re.compile(_SENTENCE_END)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Sentences as (start, end) offsets, each within one line, by the rule the chunker splits on."""
    spans = []
    for para in _PARAGRAPH.finditer(text):
        start = para.start()
        for brk in _SENTENCE_BREAK.finditer(text, para.start(), para.end()):
            spans.append((start, brk.start()))
            start = brk.end()
        spans.append((start, para.end()))
    return [(a, b) for a, b in spans if any(ch.isalnum() for ch in text[a:b])]
