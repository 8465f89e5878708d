"""Step 3, embed: text -> vectors, behind one interface (base) picked by name (factory)."""

from .base import Embedder, Progress
from .factory import DEFAULT, ENV, RUNTIMES, EmbedderError, create

__all__ = ["DEFAULT", "ENV", "RUNTIMES", "Embedder", "EmbedderError", "Progress", "create"]
