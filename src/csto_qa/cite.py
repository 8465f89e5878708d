"""Step 9, cite: spans of loaded text -> passages and answers that name file, lines and offsets, and
the one check that a quote is its file's own words.

The contract (docs/contracts.md): a quote, like a passage's text, is the stored file's text for the
cited span ``stored[start:end]``, read as a reader reads it (``reading``): HTML entities decoded,
runs of whitespace (line wraps included) folded to one space, a word hyphenated across a line end
joined, and for an HTML page its text without the markup. Nothing else is added, dropped or
replaced: a footnote call glued to a word stays, and so does any boilerplate inside the span.
"""

from __future__ import annotations

import re

from .formats import READERS
from .load import HYPHENATED, text_layer
from .types import Answer, Document, Passage

_SPACES = re.compile(r"\s+")


class CitationError(AssertionError):
    """A quote that is not exactly its cited span: a bug, never shown to a user as an answer."""


def reading(stored: str, start: int, end: int, fmt: str) -> str:
    """The words a reader finds at ``stored[start:end]``: the quote the span gives."""
    text, _ = text_layer(stored[start:end], fmt)
    return _SPACES.sub(" ", HYPHENATED.sub("", text.text)).strip()


def place(doc: Document, raw_start: int) -> dict:
    """The page (PDF) or paragraph (.docx, .odt) a span starts in, as Answer's and Passage's fields."""
    unit = READERS[doc.format].unit
    return {"page": doc.unit(raw_start) if unit == "page" else None,
            "paragraph": doc.unit(raw_start) if unit == "paragraph" else None}


def passage(doc: Document, start: int, end: int, rank: int, score: float, chunk: int = -1) -> Passage:
    raw_start, raw_end = doc.raw_span(start, end)
    line_start, line_end = doc.lines(raw_start, raw_end)
    return Passage(rank=rank, source=doc.source, title=doc.title, text=reading(doc.stored, raw_start, raw_end, doc.format),
                   start=raw_start, end=raw_end, line_start=line_start, line_end=line_end, score=round(score, 4),
                   chunk=chunk, **place(doc, raw_start))


def answer(doc: Document, start: int, end: int, score: float, short: str | None,
           confidence: float | None = None) -> Answer:
    """The answer quoting ``doc.text[start:end]`` (loaded offsets) from the stored file. A short
    answer found in the loaded text is kept only if the quote holds it as it stands."""
    raw_start, raw_end = doc.raw_span(start, end)
    quote = reading(doc.stored, raw_start, raw_end, doc.format)
    if not quote:
        raise CitationError(f"quote {start}:{end} of {doc.source} is empty")
    line_start, line_end = doc.lines(raw_start, raw_end)
    return Answer(quote=quote, short_answer=short if short and short in quote else None, source=doc.source,
                  title=doc.title, start=raw_start, end=raw_end, line_start=line_start, line_end=line_end,
                  score=round(score, 4), confidence=None if confidence is None else round(confidence, 4),
                  **place(doc, raw_start))


def verify(quote: str, stored: str, start: int, end: int, fmt: str) -> bool:
    """Faithfulness, strictly: the quote is exactly what ``stored[start:end]`` reads as (``stored``:
    the file's text as read from disk)."""
    return 0 <= start < end <= len(stored) and bool(quote) and quote == reading(stored, start, end, fmt)
