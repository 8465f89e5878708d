"""Translate, a step of its own: a question in another language than the documents' is also searched
in theirs. One interface (base), picked by name (factory), one file per backend."""

from .base import Translation, Translator
from .factory import ENV, TranslatorError, create, status

__all__ = ["ENV", "Translation", "Translator", "TranslatorError", "create", "status"]
