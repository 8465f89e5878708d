"""What every file format's reader shares: the text it gives with a map to the stored text, the
interface a format implements (Reader), and the limits on what is read."""

from __future__ import annotations

import os
import re
import zipfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..types import OffsetMap

# Limits. A file is read whole into memory: over MAX_FILE_BYTES it is not even opened. The real limit is
# the time embedding takes: every character of text is embedded about four times (in its chunk, its
# sentence alone, and with the next sentence as its context), and the default model embeds ~3,000
# characters a second on a 2-core CPU, so a build indexes ~750 characters of text a second (the 42 kB
# corpus: ~55 s). One million characters (a long book) is then ~20 minutes; a 20 MB text file would take
# ~7 hours. Longer texts are refused with that reason rather than keeping a build busy for hours;
# $CSTO_QA_MAX_CHARS raises (or lowers) the limit.
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_TEXT_CHARS = 1_000_000
INDEXED_CHARS_PER_SECOND = 750  # measured on the reference 2-core machine; only used to explain the limit
# A text file with more than this share of control characters (other than tab, newlines, form feed) is binary.
MAX_CONTROL_SHARE = 0.01


# An archive (.docx, .odt) is refused when what it unpacks to is out of proportion: a few kB that
# inflate to gigabytes is a decompression bomb, not a document.
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
MAX_PACK_RATIO = 200
MAX_MEMBERS = 10_000


class LoadError(Exception):
    """A file that cannot be indexed; the message says why, in a few words."""


@dataclass
class MappedText:
    """Text plus, for each character, where it begins and ends in the stored text (``pos`` has one
    more entry: the end of the text)."""

    text: str
    pos: np.ndarray  # int64, len(text) + 1
    end: np.ndarray  # int64, len(text)

    @classmethod
    def verbatim(cls, text: str) -> "MappedText":
        return cls(text, np.arange(len(text) + 1, dtype=np.int64), np.arange(1, len(text) + 1, dtype=np.int64))

    def sub(self, pattern: re.Pattern, repl: Callable[[re.Match], str]) -> "MappedText":
        """Every match replaced by ``repl(match)``; a replacement of another length spans, as a whole,
        what its match spanned."""
        parts: list[str] = []
        starts: list[np.ndarray] = []
        ends: list[np.ndarray] = []
        last = 0
        for m in pattern.finditer(self.text):
            new = repl(m)
            if new == m.group(0):
                continue
            a, b = m.start(), m.end()
            parts += [self.text[last:a], new]
            starts.append(self.pos[last:a])
            ends.append(self.end[last:a])
            if len(new) == b - a:
                starts.append(self.pos[a:b])
                ends.append(self.end[a:b])
            else:
                starts.append(np.full(len(new), self.pos[a], dtype=np.int64))
                ends.append(np.full(len(new), self.end[b - 1] if b > a else self.pos[a], dtype=np.int64))
            last = b
        if not parts:
            return self
        parts.append(self.text[last:])
        starts.append(self.pos[last:])
        ends.append(self.end[last:])
        return MappedText("".join(parts), np.concatenate(starts), np.concatenate(ends))

    def offset_maps(self) -> tuple[OffsetMap, OffsetMap]:
        """Where each character begins, and ends, in the stored text, as breakpoint maps."""
        return _breakpoints(self.pos), _breakpoints(self.end)


def _breakpoints(raw: np.ndarray) -> OffsetMap:
    delta = raw - np.arange(len(raw), dtype=np.int64)
    change = np.flatnonzero(np.diff(delta)) + 1
    at = np.concatenate([[0], change]).astype(np.int64)
    return OffsetMap(tuple(int(a) for a in at), tuple(int(d) for d in delta[at]) if len(raw) else (0,))


@dataclass(frozen=True)
class Extracted:
    """What a reader gets from a file: its stored text (the file's decoded characters, or the text
    extracted from it), a title from its metadata or markup ("" when none), and for paged or
    paragraphed formats the offsets in the stored text where each page or paragraph begins."""

    stored: str
    title: str = ""
    units: tuple[int, ...] = ()


class Reader(ABC):
    """One file format: how its stored text is got from the file's bytes, and how a reader sees it."""

    kind: str  # the format's name, recorded with each document
    suffixes: tuple[str, ...]
    unit: str | None = None  # what a citation names inside a file of this format: "page", "paragraph"

    @abstractmethod
    def read(self, data: bytes, limit: int) -> Extracted:
        """The stored text of a file's bytes; LoadError when it is not a readable file of this format."""

    def layer(self, stored: str) -> tuple[MappedText, str]:
        """The text a person reads in the stored text (the markup of a markup format left out), mapped
        to it, and the title the markup gives."""
        return MappedText.verbatim(stored), ""


def max_text_chars() -> int:
    try:
        return max(1, int(os.environ.get("CSTO_QA_MAX_CHARS", MAX_TEXT_CHARS)))
    except ValueError:
        return MAX_TEXT_CHARS


def too_long(n: int, limit: int) -> LoadError:
    minutes = n / INDEXED_CHARS_PER_SECOND / 60
    took = f"{minutes / 60:.0f} h" if minutes >= 90 else f"{max(minutes, 1):.0f} min"
    return LoadError(f"too long: {n:,} characters of text, over the limit of {limit:,} (embedding it would take "
                     f"about {took} on a CPU); split it into smaller files or raise $CSTO_QA_MAX_CHARS")


def check_archive(data: bytes, member: str, what: str) -> zipfile.ZipFile:
    """A ZIP-based document (``member``: the part its format must have), opened once its listing
    shows it is not a decompression bomb."""
    import io

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise LoadError(f"not {what} file (not a ZIP archive)") from None
    if member not in archive.namelist():
        raise LoadError(f"not {what} file ({member} is missing)")
    unpacked = sum(i.file_size for i in infos)
    ratio = max((i.file_size / max(i.compress_size, 1) for i in infos), default=0)
    if len(infos) > MAX_MEMBERS or unpacked > MAX_UNPACKED_BYTES or ratio > MAX_PACK_RATIO and unpacked > 10 * 2**20:
        raise LoadError(f"refused: {what} archive unpacking to {unpacked / 2**20:,.0f} MB in {len(infos)} parts "
                        "(a decompression bomb?)")
    return archive


def paragraphs(lines: list[str], title: str, limit: int) -> Extracted:
    """Paragraph texts as the stored text, one per line, with where each begins."""
    lines = [" ".join(line.split("\n")) for line in lines]
    starts, n = [], 0
    for line in lines:
        starts.append(n)
        n += len(line) + 1
    if n > limit:
        raise too_long(n, limit)
    return Extracted("\n".join(lines), title.strip(), tuple(starts))


def table_row(cells) -> str:
    """A table row as one line, its cells between "|" (a Markdown table row), each cell's whitespace
    folded."""
    return "| " + " | ".join(" ".join(c.split()) for c in cells) + " |"
