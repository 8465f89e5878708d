"""Step 1, load: corpus files -> Documents (clean text + a map back to the stored file's lines).

Every cleaning step is a substitution that also rewrites the position map, so whatever the
cleaning does, a span of the loaded text still names the characters and lines of the file it
came from. No library keeps such a map through regex rewrites, hence the small MappedText here.
"""

from __future__ import annotations

import errno
import hashlib
import html
import os
import re
import stat
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from . import lang
from .types import Document, OffsetMap

SUFFIXES = {".txt": "text", ".md": "markdown", ".markdown": "markdown", ".pdf": "pdf", ".html": "html", ".htm": "html"}
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


# --- reading --------------------------------------------------------------------------------


def max_text_chars() -> int:
    try:
        return max(1, int(os.environ.get("CSTO_QA_MAX_CHARS", MAX_TEXT_CHARS)))
    except ValueError:
        return MAX_TEXT_CHARS


def _too_long(n: int, limit: int) -> LoadError:
    minutes = n / INDEXED_CHARS_PER_SECOND / 60
    took = f"{minutes / 60:.0f} h" if minutes >= 90 else f"{max(minutes, 1):.0f} min"
    return LoadError(f"too long: {n:,} characters of text, over the limit of {limit:,} (embedding it would take "
                     f"about {took} on a CPU); split it into smaller files or raise $CSTO_QA_MAX_CHARS")


_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f\x80-\x9f]")


def _binary(text: str) -> bool:
    """Control characters (other than tab, newlines and form feed) in more than 1% of the text."""
    return len(_CONTROLS.findall(text)) > MAX_CONTROL_SHARE * len(text)


_FRENCHISH = set("àâäáçéèêëíîïñóôöúùûüÿœæßÀÂÄÁÇÉÈÊËÍÎÏÑÓÔÖÚÙÛÜŸŒÆ")


def _western(text: str) -> bool:
    """Plausibly French, English or another Western European language: few letters outside ASCII, or
    (short texts full of accents: "Été à Noël") only the accented letters of French and its neighbours.
    Cyrillic, Greek, Arabic or CJK bytes read as Windows-1252 come out as runs of letters like ð, þ, ý, ø."""
    letters = [ch for ch in text[:200_000] if ch.isalpha()]  # a sample is enough, and quick
    accented = [ch for ch in letters if ord(ch) > 127]
    return (len(accented) <= 0.3 * len(letters)
            or len(accented) <= 0.6 * len(letters) and all(ch in _FRENCHISH for ch in accented))


def _decode(data: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16/32 with a BOM (or UTF-16 without one, for mostly-ASCII text),
    else Windows-1252, the legacy encoding of French and English text, when the result reads like it;
    else the legacy encoding charset-normalizer finds (Cyrillic, Greek, Arabic, Central European,
    Chinese, Japanese, Korean...). Binary data and text in no recognisable encoding raise LoadError."""
    for bom, codec in ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
                       (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            try:
                text = data.decode(codec)
            except UnicodeDecodeError:
                raise LoadError(f"damaged {codec.upper()} text") from None
            if _binary(text):
                raise LoadError(f"binary file (control characters in {codec.upper()} text)")
            return text
    if b"\x00" in data[:8192]:
        text = _utf16_without_bom(data)
        if text is None:
            raise LoadError("binary file (NUL bytes)")
        return text
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = None
    if text is not None:
        if _binary(text):
            raise LoadError("binary file (control characters)")
        return text
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        text = None
    if text is not None and _binary(text):
        raise LoadError("binary file (not text in any encoding)")
    if text is not None and _western(text):
        return text
    best = _legacy_guess(data)
    if best is None:
        raise LoadError("not UTF-8 nor a recognisable legacy encoding (binary?)")
    text = str(best)
    if _binary(text):
        raise LoadError("binary file (not text in any encoding)")
    return text


# Among equally plausible readings (short texts fit many code pages), the most common ones first.
_PREFERRED = ("cp1252", "cp1251", "cp1250", "cp1253", "cp1254", "cp1256", "cp1255", "cp1257", "koi8_r", "koi8_u",
              "iso8859_15", "iso8859_2", "iso8859_5", "iso8859_7", "gb18030", "big5", "cp932", "shift_jis",
              "euc_jp", "cp949", "euc_kr")


def _legacy_guess(data: bytes):
    """charset-normalizer's reading of the bytes, or None when none reads as text."""
    from charset_normalizer import from_bytes

    matches = [m for m in from_bytes(data) if m.chaos <= 0.3]
    if not matches:
        return None
    least = min(m.chaos for m in matches)
    tied = [m for m in matches if m.chaos <= least + 0.01]
    rank = {name: i for i, name in enumerate(_PREFERRED)}
    return min(tied, key=lambda m: (-round(m.coherence, 1), rank.get(m.encoding, len(rank))))


def _utf16_without_bom(data: bytes) -> str | None:
    """Windows "Unicode" text saved without a BOM: every other byte is NUL for ASCII characters."""
    if len(data) % 2:
        return None
    for codec, zeros in (("utf-16-le", data[1::2]), ("utf-16-be", data[0::2])):
        if zeros.count(0) < 0.5 * len(zeros):
            continue
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        sample = text[:200_000]
        printable = sum(1 for ch in sample if ch.isprintable() or ch in "\n\r\t")
        if not _binary(text) and printable >= 0.95 * len(sample) and "\x00" not in text:
            return text
    return None


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

    def _ref(self, name: str):
        # the reference as the file writes it ("&amp;", "&#39;", or "&copy" without its semicolon):
        # the text layer keeps the file's characters; entities are decoded later, with all the others
        start = self._offset()
        stop = start + 1 + len(name)
        text = self.raw[start : stop + (self.raw[stop : stop + 1] == ";")]
        if self._in and not self.skip:
            self.title += text  # the title is unescaped as a whole, with its entities
        if not self.skip and self._in != "title":
            self.parts.append((text, start, True))

    def handle_entityref(self, name):
        self._ref(name)

    def handle_charref(self, name):
        self._ref("#" + name)


def _html_text(raw: str) -> tuple[MappedText, str]:
    parser = _HTMLText(raw)
    parser.feed(raw)
    parser.close()
    texts, starts, ends = [], [], []
    for text, offset, verbatim in parser.parts:
        texts.append(text)
        if verbatim:  # the file's own characters, one for one
            starts.append(np.arange(offset, offset + len(text)))
            ends.append(np.arange(offset + 1, offset + len(text) + 1))
        else:  # a line break standing for a tag: it spans nothing of the file
            starts.append(np.full(len(text), offset))
            ends.append(np.full(len(text), offset))
    starts.append(np.array([len(raw)]))
    return (MappedText("".join(texts), np.concatenate(starts).astype(np.int64),
                       np.concatenate(ends or [np.zeros(0)]).astype(np.int64)),
            html.unescape(parser.title).strip())


def _pdf_text(path: Path, limit: int | None = None) -> tuple[str, str]:
    """The text of every page, pages separated by a blank line, and the metadata title. Any failure of
    the PDF library on a damaged, encrypted or odd file is a LoadError (pypdf raises many kinds)."""
    import logging

    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # damaged files make pypdf chatty
    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:  # an empty user password still opens many "protected" PDFs
            try:
                opened = reader.decrypt("")
            except Exception:  # noqa: BLE001 - e.g. AES without the cryptography package
                opened = 0
            if not opened:
                raise LoadError("encrypted PDF (password-protected)")
        pages, n = [], 0
        for page in reader.pages:
            pages.append(page.extract_text() or "")
            n += len(pages[-1]) + 2
            if limit is not None and n > limit:
                raise _too_long(n, limit)
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except LoadError:
        raise
    except RecursionError:
        raise LoadError("unreadable PDF (too deeply nested)") from None
    except Exception as exc:  # noqa: BLE001 - a damaged PDF may break pypdf in any way
        raise LoadError(f"unreadable PDF ({type(exc).__name__})") from None
    return "\n\n".join(pages), str(meta_title).strip()


# --- cleaning -------------------------------------------------------------------------------

# Character references as html.unescape reads them (its own pattern: HTML5 also decodes some without
# a semicolon, "&copy 2025"), so that decoding them one by one is html.unescape of the whole.
_ENTITY = re.compile(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)")
_CRLF = re.compile(r"\r\n?")
_SPACES = re.compile(r"[\u00a0\u2000-\u200a\u202f\u205f\u3000\t\f\v]")
_INVISIBLE = re.compile(r"[\u200b\u200c\u200d\u2060\ufeff\u00ad]")
_SURROGATES = re.compile(r"[\ud800-\udfff]")  # lone halves some decoders let through: not storable as UTF-8
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
# A word hyphenated across a line end ("rappro-\nchement"), the next line going on in lower case: in
# hard-wrapped text it is joined, and quotes join it too (cite.reading).
HYPHENATED = re.compile(r"(?<=\w)-[ \t]*\n[ \t]*(?=[a-zà-öø-ÿ])")
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
    if _NUMBERED.match(text, m.end()):  # a footnote or numbered line starts here
        return "\n"
    if prev not in _TERMINAL or nxt.islower():
        return " "
    return "\n"


def text_layer(stored: str, kind: str) -> tuple[MappedText, str]:
    """The file's text as a reader sees it, mapped to the stored text, and the title its markup
    gives: an HTML page's text nodes (block elements as line breaks, scripts and styles left
    out), line ends as "\n", HTML entities decoded (in any format: the corpus has "&#039;" in
    plain text files). Quotes (cite.reading) and the document view are cut from this."""
    mt, title = _html_text(stored) if kind == "html" else (MappedText.verbatim(stored), "")
    mt = mt.sub(_CRLF, lambda m: "\n")
    return mt.sub(_ENTITY, lambda m: html.unescape(m.group(0))), title


def clean(mt: MappedText, kind: str) -> MappedText:
    """The text layer cleaned for search: what is embedded, keyword-indexed and split into passages
    and sentences; never what is shown."""
    mt = mt.sub(_SURROGATES, lambda m: "\ufffd")
    mt = mt.sub(_SPACES, lambda m: " ")
    mt = mt.sub(_INVISIBLE, lambda m: "")
    if kind == "markdown":
        mt = mt.sub(_MD_MARKUP, lambda m: "")
    mt = mt.sub(_BOILERPLATE, lambda m: "")
    mt = mt.sub(_CREDIT, lambda m: "")
    if kind == "pdf" or _hard_wrapped(mt.text):
        mt = mt.sub(_FOOTNOTE, lambda m: "")
        mt = mt.sub(HYPHENATED, lambda m: "")
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


def check_entry(path: Path, root: Path) -> None:
    """Raises LoadError when a corpus entry is not a regular file that may be read: symbolic links to
    folders are never followed (so no loops), dangling or looping links and links that lead outside the
    corpus folder are refused (the app must serve nothing but the corpus), and so are pipes, sockets and
    devices (reading a pipe would block the build) and names that are not valid UTF-8 (citations name files)."""
    try:
        path.relative_to(root).as_posix().encode("utf-8")
    except UnicodeEncodeError:
        raise LoadError("file name is not valid UTF-8: rename the file") from None
    is_link = path.is_symlink()
    try:
        st = path.stat()  # follows links
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LoadError("symbolic link loop") from None
        if is_link and isinstance(exc, FileNotFoundError):
            raise LoadError("broken symbolic link (its target does not exist)") from None
        raise LoadError(f"unreadable ({exc.strerror or type(exc).__name__})") from None
    if stat.S_ISDIR(st.st_mode):
        raise LoadError("symbolic link to a folder (not followed)" if is_link else "a folder")
    if not stat.S_ISREG(st.st_mode):
        raise LoadError("not a regular file (pipe, socket or device)")
    if is_link:
        target = path.resolve()
        if not target.is_relative_to(Path(root).resolve()):
            raise LoadError("symbolic link to a file outside the corpus folder (not followed)")


def load_file(path: Path, root: Path) -> Document:
    kind = SUFFIXES.get(path.suffix.lower())
    check_entry(path, root)
    if kind is None:
        raise LoadError(f"unsupported file type '{path.suffix or '(none)'}'")
    limit = max_text_chars()
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise LoadError(f"too large: {size / 2**20:.0f} MB, over the limit of {MAX_FILE_BYTES // 2**20} MB "
                            "for a file; split it into smaller files")
        data = path.read_bytes()
    except OSError as exc:
        raise LoadError(f"unreadable ({exc.strerror or type(exc).__name__})") from None
    if kind == "pdf":
        if not data.startswith(b"%PDF"):
            raise LoadError("not a PDF file")
        raw, given = _pdf_text(path, limit)
    else:
        raw, given = _decode(data), ""
        if kind == "html" and len(raw) > 20 * limit:  # markup does not count, but the parser must get through it
            raise _too_long(len(raw), limit)
        if kind == "markdown":
            heading = re.search(r"^#[ \t]+(.+)$", raw, re.MULTILINE)
            given = html.unescape(heading.group(1)) if heading else ""
    mt, title = text_layer(raw, kind)
    if len(mt.text) > limit:  # checked before cleaning, which would take long on a huge text
        raise _too_long(len(mt.text), limit)
    mt = clean(mt, kind)
    if not any(ch.isalnum() for ch in mt.text):
        raise LoadError("no text" + (" (scanned PDF?)" if kind == "pdf" else " (no letter or digit)"))
    starts, ends = mt.offset_maps()
    return Document(
        source=path.relative_to(root).as_posix(),
        title=_title(mt.text, given or title),
        text=mt.text,
        lang=lang.detect(mt.text),
        sha256=hashlib.sha256(data).hexdigest(),
        starts=starts,
        ends=ends,
        line_starts=(0,) + tuple(m.end() for m in re.finditer("\n", raw)),
        stored=raw,
        format=kind,
    )


def stored_text(path: Path) -> str:
    """The text of a stored file that citations' line numbers and raw offsets refer to."""
    if path.suffix.lower() == ".pdf":
        return _pdf_text(path)[0]
    return _decode(path.read_bytes())


def corpus_files(root: Path) -> Iterator[Path]:
    """Every entry under root that may be a document, sorted: files, and also links to folders, pipes
    and the like, which ``check_entry`` refuses with a reason (so the build names them). Symbolic links
    to folders are not followed (no loops); hidden entries (".name") are ignored."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in links)
        entries += [Path(dirpath) / name for name in [*filenames, *links] if not name.startswith(".")]
    yield from sorted(entries, key=lambda p: p.relative_to(root).as_posix())


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
