"""OpenDocument text (.odt, odfpy): paragraphs and headings in order, one line each, and tables one
line per row, as .docx; citations name the paragraph (its 1-based line)."""

from __future__ import annotations

import io

from .base import Extracted, LoadError, Reader, check_archive, paragraphs, table_row


class OdtReader(Reader):
    kind = "odt"
    suffixes = (".odt",)
    unit = "paragraph"

    def read(self, data: bytes, limit: int) -> Extracted:
        from odf import teletype
        from odf.namespaces import TABLENS, TEXTNS
        from odf.opendocument import load
        from odf.table import TableCell, TableRow

        archive = check_archive(data, "content.xml", "an OpenDocument (.odt)")
        if "mimetype" not in archive.namelist() or (
                archive.read("mimetype").strip() != b"application/vnd.oasis.opendocument.text"):
            raise LoadError("not an OpenDocument text file (mimetype)")
        try:
            document = load(io.BytesIO(data))
            lines = []

            def walk(node):
                for child in node.childNodes:
                    if child.nodeType != child.ELEMENT_NODE:
                        continue
                    if child.qname == (TABLENS, "table"):
                        for row in child.getElementsByType(TableRow):
                            lines.append(table_row(teletype.extractText(c) for c in row.getElementsByType(TableCell)))
                    elif child.qname in ((TEXTNS, "p"), (TEXTNS, "h")):
                        lines.append(teletype.extractText(child))
                    else:
                        walk(child)  # sections, lists and the like hold paragraphs

            walk(document.text)
            title = ""
            for meta in document.meta.childNodes:
                if meta.qname[1] == "title":
                    title = teletype.extractText(meta)
        except Exception as exc:  # noqa: BLE001 - a damaged document may break odfpy in any way
            raise LoadError(f"unreadable OpenDocument file ({type(exc).__name__})") from None
        return paragraphs(lines, title, limit)
