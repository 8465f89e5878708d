"""No translation: where no backend is installed, questions are searched as they were asked."""

from __future__ import annotations

from .base import Translation, Translator


class NullTranslator(Translator):
    name = "none"
    available = False

    def __init__(self, reason: str = ""):
        self.reason = reason

    def translate(self, text: str, source: str, target: str) -> Translation | None:
        return None
