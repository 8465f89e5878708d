"""Real Word, OpenDocument and PDF files, made by the tests (never downloaded): python-docx and odfpy
write the first two; the PDF is written here byte by byte (a catalog, pages, Helvetica in WinAnsi,
one text line per content stream line), the simplest file pypdf and every viewer read."""

from __future__ import annotations

from pathlib import Path


def make_docx(path: Path, title: str, blocks: list) -> Path:
    """``blocks``: ("h", text) a heading, ("p", text) a paragraph, ("t", [[cell, ...], ...]) a table."""
    import docx

    document = docx.Document()
    document.core_properties.title = title
    for kind, content in blocks:
        if kind == "h":
            document.add_heading(content, level=1)
        elif kind == "p":
            document.add_paragraph(content)
        else:
            table = document.add_table(rows=len(content), cols=len(content[0]))
            for r, row in enumerate(content):
                for c, cell in enumerate(row):
                    table.cell(r, c).text = cell
    document.save(str(path))
    return path


def make_odt(path: Path, title: str, blocks: list) -> Path:
    from odf import dc, table, text
    from odf.opendocument import OpenDocumentText

    document = OpenDocumentText()
    document.meta.addElement(dc.Title(text=title))
    for kind, content in blocks:
        if kind == "h":
            document.text.addElement(text.H(outlinelevel=1, text=content))
        elif kind == "p":
            document.text.addElement(text.P(text=content))
        else:
            t = table.Table()
            t.addElement(table.TableColumn(numbercolumnsrepeated=len(content[0])))
            for row in content:
                tr = table.TableRow()
                for cell in row:
                    tc = table.TableCell()
                    tc.addElement(text.P(text=cell))
                    tr.addElement(tc)
                t.addElement(tr)
            document.text.addElement(t)
    document.save(str(path))
    return path


def make_pdf(path: Path, title: str, pages: list[list[str]]) -> Path:
    """A PDF of ``pages``, each a list of lines (Latin-1 characters), with ``title`` in its metadata."""

    def escape(line: str) -> bytes:
        return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").encode("cp1252")

    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", None,
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
               b"<< /Title (" + escape(title) + b") >>"]
    kids = []
    for lines in pages:
        stream = b"BT /F1 11 Tf 14 TL 60 780 Td " + b" ".join(b"(" + escape(l) + b") Tj T*" for l in lines) + b" ET"
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> "
                       b"/Contents %d 0 R >>" % len(objects))
        kids.append(len(objects))
    objects[1] = b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % k for k in kids) + b"] /Count %d >>" % len(kids)
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 4 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(bytes(out))
    return path
