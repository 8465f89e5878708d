"""Word (.docx, python-docx): the body's paragraphs and tables in order, one line each (a heading is a
paragraph; a table row is one line, its cells between "|", as a Markdown table row); citations name
the paragraph: the 1-based index of that line, headings and table rows counting as paragraphs."""

from __future__ import annotations

import io

from .base import Extracted, LoadError, Reader, check_archive, paragraphs, table_row


class DocxReader(Reader):
    kind = "docx"
    suffixes = (".docx",)
    unit = "paragraph"

    def read(self, data: bytes, limit: int) -> Extracted:
        import docx
        from docx.table import Table
        from docx.text.paragraph import Paragraph

        check_archive(data, "word/document.xml", "a Word (.docx)")
        try:
            document = docx.Document(io.BytesIO(data))
            lines = []
            for block in document.iter_inner_content():
                if isinstance(block, Paragraph):
                    lines.append(block.text)
                elif isinstance(block, Table):
                    for row in block.rows:
                        cells = list(dict.fromkeys(row.cells))  # a merged cell is listed once per column
                        lines.append(table_row(c.text for c in cells))
            title = document.core_properties.title or ""
        except Exception as exc:  # noqa: BLE001 - a damaged document may break python-docx in any way
            raise LoadError(f"unreadable Word file ({type(exc).__name__})") from None
        return paragraphs(lines, title, limit)

