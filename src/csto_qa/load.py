"""Step 1, load: corpus files -> Documents (clean text + a map back to the stored file's lines).

Every cleaning step is a substitution that also rewrites the position map, so whatever the
cleaning does, a span of the loaded text still names the characters and lines of the file it
came from. No library keeps such a map through regex rewrites, hence the small MappedText here.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from . import lang
from .types import Document, OffsetMap

SUFFIXES = {".txt": "text", ".md": "markdown", ".markdown": "markdown", ".pdf": "pdf", ".html": "html", ".htm": "html"}
MAX_FILE_BYTES = 64 * 1024 * 1024


class LoadError(Exception):
    """A file that cannot be indexed; the message says why, in a few words."""


@dataclass
class MappedText:
    """Text plus, for each character and the end position, its offset in the raw text."""

    text: str
    pos: np.ndarray  # int64, len(text) + 1

    @classmethod
    def verbatim(cls, text: str) -> "MappedText":
        return cls(text, np.arange(len(text) + 1, dtype=np.int64))

    def sub(self, pattern: re.Pattern, repl: Callable[[re.Match], str]) -> "MappedText":
        parts: list[str] = []
        maps: list[np.ndarray] = []
        last = 0
        for m in pattern.finditer(self.text):
            new = repl(m)
            if new == m.group(0):
                continue
            parts.append(self.text[last : m.start()])
            maps.append(self.pos[last : m.start()])
            parts.append(new)
            if len(new) == m.end() - m.start():
                maps.append(self.pos[m.start() : m.end()])
            else:
                maps.append(np.full(len(new), self.pos[m.start()], dtype=np.int64))
            last = m.end()
        if not parts:
            return self
        parts.append(self.text[last:])
        maps.append(self.pos[last:])
        return MappedText("".join(parts), np.concatenate(maps))

    def offset_map(self) -> OffsetMap:
        delta = self.pos - np.arange(len(self.pos), dtype=np.int64)
        change = np.flatnonzero(np.diff(delta)) + 1
        at = np.concatenate([[0], change])
        return OffsetMap(tuple(int(a) for a in at), tuple(int(d) for d in delta[at]))


# --- reading --------------------------------------------------------------------------------


def _decode(data: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16/32 with a BOM, else Windows-1252, the legacy encoding of
    French and English text; other encodings are guessed by charset-normalizer."""
    for bom, codec in ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
                       (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            try:
                return data.decode(codec)
            except UnicodeDecodeError:
                raise LoadError(f"damaged {codec} text") from None
    if b"\x00" in data[:8192]:
        raise LoadError("binary file (NUL bytes)")
    for codec in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise LoadError("unknown text encoding")
    return str(best)


class _HTMLText(HTMLParser):
    """Keeps text nodes with their raw offsets; block elements become line breaks."""

    BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article",
             "header", "footer", "blockquote", "table", "ul", "ol", "title", "pre", "hr", "dd", "dt"}
    SKIP = {"script", "style", "noscript", "template", "svg", "head"}

    def __init__(self, raw: str):
        super().__init__(convert_charrefs=False)
        self.raw = raw
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", raw)]
        self.parts: list[tuple[str, int, bool]] = []  # text, raw offset, verbatim
        self.skip = 0
        self.title = ""
        self._title_done = False  # the first <title> or <h1> with text gives the title
        self._in = ""

    def _offset(self) -> int:
        line, col = self.getpos()
        return self.line_starts[line - 1] + col

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP and tag != "head":
            self.skip += 1
        if tag in ("title", "h1") and not self._title_done:
            self._in = tag
        if tag in self.BLOCK:
            self.parts.append(("\n", self._offset(), False))

    def handle_endtag(self, tag):
        if tag in self.SKIP and tag != "head" and self.skip:
            self.skip -= 1
        if tag == self._in:
            self._in = ""
            self._title_done = bool(self.title.strip())
        if tag in self.BLOCK:
            self.parts.append(("\n", self._offset(), False))

    def handle_data(self, data):
        if self._in:
            self.title += data
        if not self.skip and self._in != "title":
            self.parts.append((data, self._offset(), True))

    def _ref(self, text):
        if self._in and not self.skip:
            self.title += text  # the title is unescaped as a whole, with its entities
        if not self.skip and self._in != "title":
            self.parts.append((text, self._offset(), True))  # decoded later with all entities

    def handle_entityref(self, name):
        self._ref(f"&{name};")

    def handle_charref(self, name):
        self._ref(f"&#{name};")


def _html_text(raw: str) -> tuple[MappedText, str]:
    parser = _HTMLText(raw)
    parser.feed(raw)
    parser.close()
    texts, maps = [], []
    for text, offset, verbatim in parser.parts:
        texts.append(text)
        maps.append(np.arange(offset, offset + len(text)) if verbatim else np.full(len(text), offset))
    maps.append(np.array([len(raw)]))
    return MappedText("".join(texts), np.concatenate(maps).astype(np.int64)), html.unescape(parser.title).strip()


def _pdf_text(path: Path) -> tuple[str, str]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except (PdfReadError, OSError, ValueError, KeyError, TypeError) as exc:
        raise LoadError(f"unreadable PDF ({type(exc).__name__})") from None
    return "\n\n".join(pages), str(meta_title).strip()


# --- cleaning -------------------------------------------------------------------------------

_ENTITY = re.compile(r"&(#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_CRLF = re.compile(r"\r\n?")
_SPACES = re.compile(r"[\u00a0\u2000-\u200a\u202f\u205f\u3000\t\f\v]")
_INVISIBLE = re.compile(r"[\u200b\u200c\u200d\u2060\ufeff\u00ad]")
_APOS = "['’]"
# Site furniture (ads, subscription calls, copyright notices): whole lines that carry no content.
_BOILERPLATE = re.compile(
    rf"^[ \t]*(?:Publicité|Advertisement|Lire la suite|Read more|Je m{_APOS}abonne|S{_APOS}abonner"
    rf"|Abonnez-vous|Subscribe|Partager|Share this|Droits d{_APOS}auteur|Copyright|©|Tous droits réservés"
    rf"|All rights reserved)\b[^\n]*\n?|^[^\n]*(?:Je m{_APOS}abonne|S{_APOS}abonner|Subscribe now)[ \t]*$\n?",
    re.MULTILINE | re.IGNORECASE,
)
# Picture credits glued after a sentence: "...au Kirghizistan.Image: Imago"
_CREDIT = re.compile(r"(?<=[.!?»”])[ \t]*(?:Image|Photo|Crédit|Credit)s?[ \t]*:[^\n]{0,60}$", re.MULTILINE)
_EDGE_SPACES = re.compile(r"^[ \t]+|[ \t]+$", re.MULTILINE)
_BLANK_RUNS = re.compile(r"\n{3,}")
_MD_MARKUP = re.compile(r"^#{1,6}[ \t]+|\*\*|__|(?<!!)\[(?=[^\]\n]*\]\()|\]\([^)\n]*\)", re.MULTILINE)
# PDF extraction: footnote calls glued to a word ("militaire1.", "Crimée10 et").
_FOOTNOTE = re.compile(r"(?<=[a-zà-öø-ÿ\)»”])\d{1,2}(?=[\s.,;:)–—]|$)")
_LINE_BREAK = re.compile(r"[ \t]*\n[ \t]*(?=[^\n])")
_TERMINAL = set(".!?…:;»\"”)")
_NUMBERED = re.compile(r"\d{1,3}\s+[A-ZÀ-Ý]")


def _hard_wrapped(text: str) -> bool:
    """True for text laid out in fixed-width lines (PDF extraction), where a newline is not a break."""
    lines = text.split("\n")
    nonempty = [ln.rstrip() for ln in lines if ln.strip()]
    if len(nonempty) < 5:
        return False
    # a heading followed by its paragraph also runs on; wrapped lines are long ones
    running_on = sum(
        1 for a, b in zip(lines, lines[1:])
        if len(a.strip()) >= 40 and b.strip() and a.rstrip()[-1] not in _TERMINAL
    )
    return running_on >= 0.3 * len(nonempty)


def _join_wrap(m: re.Match) -> str:
    text = m.string
    if m.start() == 0:
        return m.group(0)
    prev, nxt = text[m.start() - 1], text[m.end()] if m.end() < len(text) else ""
    if prev == "\n":
        return m.group(0)
    if prev == "-" and nxt.islower():
        return ""
    if _NUMBERED.match(text, m.end()):  # a footnote or numbered line starts here
        return "\n"
    if prev not in _TERMINAL or nxt.islower():
        return " "
    return "\n"


def clean(mt: MappedText, kind: str) -> MappedText:
    mt = mt.sub(_CRLF, lambda m: "\n")
    mt = mt.sub(_ENTITY, lambda m: html.unescape(m.group(0)))
    mt = mt.sub(_SPACES, lambda m: " ")
    mt = mt.sub(_INVISIBLE, lambda m: "")
    if kind == "markdown":
        mt = mt.sub(_MD_MARKUP, lambda m: "")
    mt = mt.sub(_BOILERPLATE, lambda m: "")
    mt = mt.sub(_CREDIT, lambda m: "")
    if kind == "pdf" or _hard_wrapped(mt.text):
        mt = mt.sub(_FOOTNOTE, lambda m: "")
        mt = mt.sub(_LINE_BREAK, _join_wrap)
    mt = mt.sub(_EDGE_SPACES, lambda m: "")
    mt = mt.sub(_BLANK_RUNS, lambda m: "\n\n")
    return mt


def _title(text: str, given: str) -> str:
    """Metadata or heading title if any, else the first line that reads like a headline."""
    if given:
        return " ".join(given.split())[:200]
    lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
    for line in lines[:12]:
        words = [w for w in line.split() if any(c.isalnum() for c in w)]
        # words, or plain numbers such as a year; not dates, codes or measurements ("2025-11-27", "-1°")
        plain = sum(1 for w in words if w.isdigit() and len(w) <= 4
                    or any(c.isalpha() for c in w) and not any(c.isdigit() for c in w))
        if (4 <= len(words) <= 25 and plain >= 0.8 * len(words) and not line.endswith(".")
                and not line.startswith(("-", "*", "•"))):
            return line
    first = lines[0] if lines else ""
    return first if len(first) <= 100 else first[:100].rsplit(" ", 1)[0] + " …"


def load_file(path: Path, root: Path) -> Document:
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise LoadError(f"unsupported file type '{path.suffix or '(none)'}'")
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise LoadError(f"too large ({size // 2**20} MB > {MAX_FILE_BYTES // 2**20} MB)")
        data = path.read_bytes()
    except OSError as exc:
        raise LoadError(f"unreadable ({exc.strerror or type(exc).__name__})") from None
    given = ""
    if kind == "pdf":
        if not data.startswith(b"%PDF"):
            raise LoadError("not a PDF file")
        raw, given = _pdf_text(path)
        mt = MappedText.verbatim(raw)
    else:
        raw = _decode(data)
        if kind == "html":
            mt, given = _html_text(raw)
        else:
            mt = MappedText.verbatim(raw)
            if kind == "markdown":
                heading = re.search(r"^#[ \t]+(.+)$", raw, re.MULTILINE)
                given = heading.group(1) if heading else ""
    mt = clean(mt, kind)
    if not mt.text.strip():
        raise LoadError("no text" + (" (scanned PDF?)" if kind == "pdf" else ""))
    line_starts = (0,) + tuple(m.end() for m in re.finditer("\n", raw))
    return Document(
        source=path.relative_to(root).as_posix(),
        title=_title(mt.text, given),
        text=mt.text,
        lang=lang.detect(mt.text),
        sha256=hashlib.sha256(data).hexdigest(),
        offsets=mt.offset_map(),
        line_starts=line_starts,
    )


def stored_text(path: Path) -> str:
    """The text of a stored file that citations' line numbers and raw offsets refer to."""
    if path.suffix.lower() == ".pdf":
        return _pdf_text(path)[0]
    return _decode(path.read_bytes())


def corpus_files(root: Path) -> Iterator[Path]:
    """Candidate files under root, sorted; symlinked folders are not followed (no loops)."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
