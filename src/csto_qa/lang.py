"""Language of a question or a document: French or English, the two the interface speaks."""

from __future__ import annotations

from functools import lru_cache

LANGS = ("fr", "en")


@lru_cache(maxsize=1)
def _identifier():
    from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

    ident = LanguageIdentifier.from_model_file(MODEL_DIR / MODEL_FILE)
    ident.set_languages(list(LANGS))
    return ident


def detect(text: str, default: str = "fr") -> str:
    sample = text[:4000].strip()
    if not any(ch.isalpha() for ch in sample):
        return default
    return _identifier().classify(sample)[0]


def ranked(text: str) -> list[tuple[str, float]]:
    """Each language with its log-probability for ``text``, best first."""
    return _identifier().rank(text)
