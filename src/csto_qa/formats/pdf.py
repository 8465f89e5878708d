"""PDF: the text pypdf extracts, page by page, pages separated by a blank line; citations name the page."""

from __future__ import annotations

import io
import logging

from .base import Extracted, LoadError, Reader, too_long


class PdfReader(Reader):
    kind = "pdf"
    suffixes = (".pdf",)
    unit = "page"

    def read(self, data: bytes, limit: int) -> Extracted:
        """Any failure of the PDF library on a damaged, encrypted or odd file is a LoadError (pypdf
        raises many kinds)."""
        import pypdf

        if not data.startswith(b"%PDF"):
            raise LoadError("not a PDF file")
        logging.getLogger("pypdf").setLevel(logging.ERROR)  # damaged files make pypdf chatty
        try:
            reader = pypdf.PdfReader(io.BytesIO(data))
            if reader.is_encrypted:  # an empty user password still opens many "protected" PDFs
                try:
                    opened = reader.decrypt("")
                except Exception:  # noqa: BLE001 - e.g. AES without the cryptography package
                    opened = 0
                if not opened:
                    raise LoadError("encrypted PDF (password-protected)")
            pages, starts, n = [], [], 0
            for page in reader.pages:
                starts.append(n)
                pages.append(page.extract_text() or "")
                n += len(pages[-1]) + 2
                if n > limit:
                    raise too_long(n, limit)
            title = (reader.metadata.title if reader.metadata else None) or ""
        except LoadError:
            raise
        except RecursionError:
            raise LoadError("unreadable PDF (too deeply nested)") from None
        except Exception as exc:  # noqa: BLE001 - a damaged PDF may break pypdf in any way
            raise LoadError(f"unreadable PDF ({type(exc).__name__})") from None
        return Extracted("\n\n".join(pages), str(title).strip(), tuple(starts))
