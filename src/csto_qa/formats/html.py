"""HTML: the page's text nodes, mapped to the characters of its source."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import numpy as np

from .base import Extracted, MappedText, Reader, too_long
from .text import decode


class _HTMLText(HTMLParser):
    """Keeps text nodes with their raw offsets; block elements become line breaks."""

    BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article",
             "header", "footer", "blockquote", "table", "ul", "ol", "title", "pre", "hr", "dd", "dt"}
    SKIP = {"script", "style", "noscript", "template", "svg"}

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
        if tag in self.SKIP:
            self.skip += 1
        if tag in ("title", "h1") and not self._title_done:
            self._in = tag
        if tag in self.BLOCK:
            self.parts.append(("\n", self._offset(), False))

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.skip:
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


def html_text(raw: str) -> tuple[MappedText, str]:
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


class HtmlReader(Reader):
    kind = "html"
    suffixes = (".html", ".htm")

    def read(self, data: bytes, limit: int) -> Extracted:
        stored = decode(data)
        if len(stored) > 20 * limit:  # markup does not count, but the parser must get through it
            raise too_long(len(stored), limit)
        return Extracted(stored)

    def layer(self, stored: str) -> tuple[MappedText, str]:
        return html_text(stored)
