"""Step 7, cite: spans of loaded text -> passages and answers that name file, lines and offsets,
and the check that a quote really is in the file it cites."""

from __future__ import annotations

import html
import re

from .analyze import fold
from .types import Answer, Document, Passage


_WORD = re.compile(r"[^\W_]+")


class CitationError(AssertionError):
    """A quote that is not exactly its cited span: a bug, never shown to a user as an answer."""


def passage(doc: Document, start: int, end: int, rank: int, score: float, chunk: int = -1) -> Passage:
    line_start, line_end = doc.lines(start, end)
    return Passage(rank=rank, source=doc.source, title=doc.title, text=doc.text[start:end], start=start,
                   end=end, line_start=line_start, line_end=line_end, score=round(score, 4), chunk=chunk)


def answer(doc: Document, start: int, end: int, score: float, short: str | None) -> Answer:
    quote = doc.text[start:end]
    if not quote.strip() or (short is not None and short not in quote):
        raise CitationError(f"quote {start}:{end} of {doc.source} does not hold")
    line_start, line_end = doc.lines(start, end)
    return Answer(quote=quote, short_answer=short, source=doc.source, title=doc.title, start=start, end=end,
                  line_start=line_start, line_end=line_end, score=round(score, 4))


def verify(quote: str, stored_text: str, doc: Document, start: int, end: int) -> bool:
    """Faithfulness: the quote is the loaded span, and the stored file's cited span says the same
    words (loading only decodes entities, folds spaces and drops boilerplate or glued footnote calls)."""
    if doc.text[start:end] != quote:
        return False
    raw_start, raw_end = doc.raw_span(start, end)
    stored = fold(html.unescape(stored_text[raw_start:raw_end]))
    wanted = fold(quote)
    if stored == wanted:
        return True
    # Loading dropped footnote calls glued to words or joined a hyphenated wrap: then every word of
    # the quote must still stand in the stored span, in order, and nothing else of substance.
    pos = 0
    for word in _WORD.findall(wanted):
        pos = stored.find(word, pos)
        if pos < 0:
            return False
        pos += len(word)
    return len(_WORD.findall(stored)) <= len(_WORD.findall(wanted)) + 2
