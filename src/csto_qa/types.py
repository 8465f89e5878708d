"""The typed records that flow through the pipeline: documents, chunks, sentences, passages, answers."""

from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .conversation import Context
    from .translate import Translation


@dataclass(frozen=True)
class OffsetMap:
    """Maps a position in the loaded text to a character position in the stored text.

    Stored as breakpoints: from loaded position ``at[i]`` on, ``stored = loaded + delta[i]``.
    Loading changes little (entities, spaces, joined wraps), so a few breakpoints cover a file.
    """

    at: tuple[int, ...]
    delta: tuple[int, ...]

    def raw(self, pos: int) -> int:
        i = bisect.bisect_right(self.at, pos) - 1
        return pos + (self.delta[i] if i >= 0 else 0)


@dataclass(frozen=True)
class Document:
    """A loaded source file: the text it is searched by, its title, and its stored text.

    Two texts, two coordinate systems:
    - ``stored``: the file's text as stored (decoded characters; for a PDF, the text extracted
      from it). Citations index it: ``start``/``end`` of an answer or passage, its lines.
    - ``text``: the loaded text, cleaned for search (entities decoded, hard wraps joined, footnote
      calls, boilerplate and markup dropped). Chunks and sentences are spans of it; it is what is
      embedded and keyword-indexed, never what is quoted.
    ``starts`` / ``ends`` map each loaded character to where it begins / ends in ``stored`` (an
    entity decoded to one character spans its whole entity).
    """

    source: str  # path relative to the corpus folder, with forward slashes
    title: str
    text: str
    lang: str
    sha256: str
    starts: OffsetMap
    ends: OffsetMap
    line_starts: tuple[int, ...]  # offset in ``stored`` at which each stored line begins
    stored: str = ""
    format: str = "text"  # the format's reader (formats.READERS): how ``stored`` reads (cite.reading)
    units: tuple[int, ...] = ()  # offsets in ``stored`` where each page (PDF) or paragraph (.docx, .odt) begins

    def raw_span(self, start: int, end: int) -> tuple[int, int]:
        """The span of ``stored`` that ``text[start:end]`` was loaded from."""
        if end <= start:
            return self.starts.raw(start), self.starts.raw(start)
        return self.starts.raw(start), self.ends.raw(end - 1)

    def unit(self, raw_start: int) -> int | None:
        """The 1-based page or paragraph holding ``stored[raw_start]`` (None: not a paged format)."""
        return bisect.bisect_right(self.units, raw_start) or None if self.units else None

    def lines(self, raw_start: int, raw_end: int) -> tuple[int, int]:
        """1-based first and last line of ``stored[raw_start:raw_end]``."""
        first = bisect.bisect_right(self.line_starts, raw_start)
        last = bisect.bisect_right(self.line_starts, max(raw_start, raw_end - 1))
        return first, last


@dataclass(frozen=True)
class Chunk:
    doc: int  # index into the index's documents
    start: int
    end: int


@dataclass(frozen=True)
class Sentence:
    doc: int
    start: int
    end: int


@dataclass
class Passage:
    rank: int
    source: str
    title: str
    text: str
    start: int
    end: int
    line_start: int
    line_end: int
    score: float
    page: int | None = None  # of a PDF
    paragraph: int | None = None  # of a .docx or .odt file
    chunk: int = field(default=-1, repr=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        del d["chunk"]
        return d


@dataclass
class Answer:
    quote: str
    short_answer: str | None
    source: str
    title: str
    start: int
    end: int
    line_start: int
    line_end: int
    score: float
    page: int | None = None  # of a PDF
    paragraph: int | None = None  # of a .docx or .odt file
    confidence: float | None = None  # the reader's probability (0 to 1) that the quote answers the question

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Result:
    question: str
    lang: str
    abstained: bool
    answer: Answer | None
    passages: list[Passage]
    message: str  # what to tell the user: the quote's lead-in, or why there is no answer
    timings_ms: dict[str, float]
    notice: str | None = None  # e.g. that an over-long question was truncated
    translation: "Translation | None" = None  # the question in the documents' language, as also searched
    context: "Context | None" = None  # what a follow-up was read with, from earlier turns
    # why there is no answer, as a code the page words in its own language: "no_passage" (nothing
    # retrieved), "unsure" (the best sentence's confidence is below the reader's threshold)
    reason: str | None = None
    confidence: float | None = None  # the best sentence's confidence, answered or not

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "lang": self.lang,
            "abstained": self.abstained,
            "answer": self.answer.to_dict() if self.answer else None,
            "passages": [p.to_dict() for p in self.passages],
            "translation": self.translation.to_dict() if self.translation else None,
            "context": self.context.to_dict() if self.context else None,
            "reason": self.reason,
            "confidence": None if self.confidence is None else round(self.confidence, 4),
            "message": self.message,
            "notice": self.notice,
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }
