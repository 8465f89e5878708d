"""Picks the translator: the option, else $CSTO_QA_TRANSLATOR, else Apertium where it is installed."""

from __future__ import annotations

import os

from .base import Translator
from .null import NullTranslator

ENV = "CSTO_QA_TRANSLATOR"
NAMES = ("apertium", "none")


class TranslatorError(Exception):
    pass


def create(name: str | None = None) -> Translator:
    """"apertium" (the default): Apertium, or no translation with its reason when it is not
    installed; "none": no translation."""
    name = (name or os.environ.get(ENV) or "apertium").strip().lower()
    if name == "none":
        return NullTranslator("turned off")
    if name != "apertium":
        raise TranslatorError(f"unknown translator '{name}' (expected one of {', '.join(NAMES)})")
    from .apertium import ApertiumTranslator

    translator = ApertiumTranslator()
    return translator if translator.available else NullTranslator(translator.reason)


def status(translator: Translator) -> str:
    """One line for the start of build and serve: whether questions are translated, and if not, how
    to turn it on."""
    if translator.available:
        return (f"translation: on ({translator.name}; questions are also searched in the documents' language, "
                "and the documents' sentences are translated when indexed)")
    return (f"translation: off ({translator.reason}); to turn it on: sudo apt-get install apertium "
            "apertium-eng-spa apertium-fr-es, or make setup")
