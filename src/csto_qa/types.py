"""The typed records that flow through the pipeline: documents, chunks, sentences, passages, answers."""

from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class OffsetMap:
    """Maps a position in the loaded text to a character position in the file as stored.

    Stored as breakpoints: from loaded position ``at[i]`` on, ``raw = loaded + delta[i]``.
    Loading changes little (entities, spaces, joined wraps), so a few breakpoints cover a file.
    """

    at: tuple[int, ...]
    delta: tuple[int, ...]

    def raw(self, pos: int) -> int:
        i = bisect.bisect_right(self.at, pos) - 1
        return pos + (self.delta[i] if i >= 0 else 0)


@dataclass(frozen=True)
class Document:
    """A loaded source file: cleaned text, its title, and the way back to the stored file."""

    source: str  # path relative to the corpus folder, with forward slashes
    title: str
    text: str  # the loaded text: every offset in this project indexes it
    lang: str
    sha256: str
    offsets: OffsetMap
    line_starts: tuple[int, ...]  # raw character offset at which each stored line begins

    def raw_span(self, start: int, end: int) -> tuple[int, int]:
        """The span of the stored file's text that ``text[start:end]`` was loaded from."""
        if end <= start:
            return self.offsets.raw(start), self.offsets.raw(start)
        return self.offsets.raw(start), self.offsets.raw(end - 1) + 1

    def lines(self, start: int, end: int) -> tuple[int, int]:
        """1-based first and last line, in the stored file, of ``text[start:end]``."""
        raw_start, raw_end = self.raw_span(start, end)
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

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "lang": self.lang,
            "abstained": self.abstained,
            "answer": self.answer.to_dict() if self.answer else None,
            "passages": [p.to_dict() for p in self.passages],
            "message": self.message,
            "notice": self.notice,
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }
