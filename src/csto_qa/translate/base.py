"""The one interface where the translation backend varies."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True)
class Translation:
    text: str
    source: str  # language codes, as lang.LANGS: "fr", "en"
    target: str

    def to_dict(self) -> dict:
        return {"text": self.text, "from": self.source, "to": self.target}


class Translator(ABC):
    """Machine translation between the two languages the engine speaks. ``translate`` never raises:
    when the backend cannot translate (absent, dead, too slow), it returns None and the question is
    searched as it was asked."""

    name: str
    available: bool
    reason: str = ""  # why it is not available

    @abstractmethod
    def translate(self, text: str, source: str, target: str) -> Translation | None: ...

    @property
    def identity(self) -> str | None:
        """What an index whose sentences this translator translated records (None: it translates none)."""
        return self.name if self.available else None

    def close(self) -> None:
        """Stops what the backend started (processes)."""
