"""Step 1, load: corpus files -> Documents: the file's stored text (formats/: one reader per format),
the text cleaned for search, and the map from one to the other.

Every cleaning step is a substitution that also rewrites the position map, so whatever the cleaning
does, a span of the loaded text still names the characters, lines and pages of the file it came from.
No library keeps such a map through regex rewrites, hence formats.MappedText.
"""

from __future__ import annotations

import errno
import hashlib
import html
import os
import re
import stat
from pathlib import Path
from typing import Iterator

from . import lang
from .formats import (MAX_FILE_BYTES, READERS, SUFFIXES, LoadError, MappedText,  # noqa: F401 (re-exported)
                      max_text_chars, too_long)
from .types import Document


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
    mt, title = READERS[kind].layer(stored)
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
    extracted = READERS[kind].read(data, limit)
    mt, title = text_layer(extracted.stored, kind)
    if len(mt.text) > limit:  # checked before cleaning, which would take long on a huge text
        raise too_long(len(mt.text), limit)
    mt = clean(mt, kind)
    if not any(ch.isalnum() for ch in mt.text):
        raise LoadError("no text" + (" (scanned PDF?)" if kind == "pdf" else " (no letter or digit)"))
    starts, ends = mt.offset_maps()
    return Document(
        source=path.relative_to(root).as_posix(),
        title=_title(mt.text, extracted.title or title),
        text=mt.text,
        lang=lang.detect(mt.text),
        sha256=hashlib.sha256(data).hexdigest(),
        starts=starts,
        ends=ends,
        line_starts=(0,) + tuple(m.end() for m in re.finditer("\n", extracted.stored)),
        stored=extracted.stored,
        format=kind,
        units=extracted.units,
    )


def stored_text(path: Path) -> str:
    """The text of a stored file that citations' offsets, lines, pages and paragraphs refer to: the
    file's characters, or the text extracted from a PDF, Word or OpenDocument file."""
    return READERS[SUFFIXES[path.suffix.lower()]].read(path.read_bytes(), max_text_chars()).stored


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
