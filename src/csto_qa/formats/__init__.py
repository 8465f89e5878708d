"""The file formats a corpus may hold, behind one interface (base.Reader), one module each."""

from .base import (MAX_FILE_BYTES, MAX_TEXT_CHARS, Extracted, LoadError, MappedText, Reader, max_text_chars,
                   too_long)
from .docx import DocxReader
from .html import HtmlReader
from .odt import OdtReader
from .pdf import PdfReader
from .text import MarkdownReader, TextReader

READERS: dict[str, Reader] = {r.kind: r for r in (TextReader(), MarkdownReader(), HtmlReader(), PdfReader(),
                                                  DocxReader(), OdtReader())}
SUFFIXES = {suffix: r.kind for r in READERS.values() for suffix in r.suffixes}

__all__ = ["MAX_FILE_BYTES", "MAX_TEXT_CHARS", "READERS", "SUFFIXES", "Extracted", "LoadError", "MappedText", "Reader",
           "max_text_chars", "too_long"]
