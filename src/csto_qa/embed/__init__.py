"""Step 3, embed: text -> vectors, behind one interface (base) picked by name (factory)."""

from .base import Embedder
from .factory import DEFAULT, ENV, EmbedderError, create

__all__ = ["DEFAULT", "ENV", "Embedder", "EmbedderError", "create"]
