"""Step 2, split: a Document's text -> chunks (for retrieval) and sentences (for quoting), as offsets."""

from __future__ import annotations

import bisect
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
    # a shorter chunk (a heading cut off from its section, a lone footnote, "* * *") joins its
    # neighbour: alone it holds too little to be a passage, and it sits close to every question
    min_chunk: int = 100

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
    return _merge_short(spans, settings.min_chunk)


def _merge_short(spans: list[tuple[int, int]], minimum: int) -> list[tuple[int, int]]:
    """Each span shorter than ``minimum`` joins the next one (a heading belongs to what follows it),
    or the one before when it is the last."""
    out: list[tuple[int, int]] = []
    pending: int | None = None  # start of the short spans waiting for the next one (spans are in order)
    for start, end in spans:
        start = start if pending is None else pending
        pending = start if end - start < minimum else None
        if pending is None:
            out.append((start, end))
    if pending is not None:  # short spans at the end join the last chunk, or are the whole text
        out[-1:] = [(out[-1][0] if out else pending, spans[-1][1])]
    return out


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


_HEADING_MAX = 120
_NOT_HEADING_END = tuple(".!;,:…")


def heading_spans(text: str) -> list[tuple[int, int]]:
    """Lines that read like section headings, as (start, end): short, not a list item, table row or
    line of figures (a footnote, a row of extracted table), not ending like a sentence (a question
    may: FAQ headings are questions), followed by more text."""
    out = []
    for line in _PARAGRAPH.finditer(text):
        s = line.group().strip()
        if (s and len(s) <= _HEADING_MAX and s[0].isalpha() and not s.endswith(_NOT_HEADING_END)
                and sum(w.isdigit() for w in s.split()) <= 1 and text[line.end():].strip()):
            out.append((line.start(), line.end()))
    return out


def section_heading(text: str, headings: list[tuple[int, int]], pos: int) -> str:
    """The text of the last heading that starts before ``pos`` ("" when none)."""
    i = bisect.bisect_right(headings, (pos, -1)) - 1
    return text[headings[i][0] : headings[i][1]].strip() if i >= 0 else ""


_LIST_ITEM = re.compile(r"[ \t]*(?:[-*•–]|\d{1,2}[.)])[ \t]+\S")


def list_item(text: str, start: int) -> bool:
    """The sentence at ``start`` opens an item of a bulleted or numbered list: like a table row, a
    complete answer however short ("- échelon 3 : 564 € par an.")."""
    line_start = text.rfind("\n", 0, start) + 1
    return bool(_LIST_ITEM.match(text, line_start)) and not text[line_start:start].strip(" \t-*•–0123456789.)")


def list_lead(text: str, start: int) -> str:
    """The line that opens the list the item at ``start`` belongs to ("L'ACRE est réservée à certains
    publics :"): what the item is about. "" when the line before the list does not end with a colon."""
    pos = text.rfind("\n", 0, start) + 1
    while pos > 0:
        prev = text.rfind("\n", 0, pos - 1) + 1
        line = text[prev : pos - 1]
        if line.strip() and not list_item(text, prev):
            return line.strip() if line.rstrip().endswith(":") else ""
        pos = prev
    return ""
