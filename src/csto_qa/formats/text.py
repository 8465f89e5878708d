"""Plain text and Markdown: the file's characters, in whatever encoding they come."""

from __future__ import annotations

import html
import re

from .base import MAX_CONTROL_SHARE, Extracted, LoadError, Reader

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


def decode(data: bytes) -> str:
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


class TextReader(Reader):
    kind = "text"
    suffixes = (".txt",)

    def read(self, data: bytes, limit: int) -> Extracted:
        return Extracted(decode(data))


class MarkdownReader(Reader):
    kind = "markdown"
    suffixes = (".md", ".markdown")

    def read(self, data: bytes, limit: int) -> Extracted:
        stored = decode(data)
        heading = re.search(r"^#[ \t]+(.+)$", stored, re.MULTILINE)
        return Extracted(stored, html.unescape(heading.group(1)) if heading else "")
