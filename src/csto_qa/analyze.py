"""Lexical analysis shared by BM25 (index, retrieve) and evidence scoring (extract).

Words are case- and accent-folded, French elisions (l', d', qu'...) are dropped with the apostrophe,
stop words removed, and the rest stemmed with Snowball in the corpus's language.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import Stemmer
from bm25s.tokenization import STOPWORDS_EN_PLUS, STOPWORDS_FRENCH

STEMMERS = {"fr": "french", "en": "english"}
_WORD = re.compile(r"\w+", re.UNICODE)
_APOSTROPHES = str.maketrans({c: "'" for c in "’‘ʼ`´′"})
_ELISION = re.compile(r"\b(?:[ldjmntsc]|qu|jusqu|lorsqu|puisqu|quoiqu)'", re.IGNORECASE)


def fold(text: str) -> str:
    """Case, accents, apostrophes and all kinds of spaces folded: the form used to compare text."""
    text = unicodedata.normalize("NFKD", text.translate(_APOSTROPHES))
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    return " ".join(text.replace("«", '"').replace("»", '"').replace("“", '"').replace("”", '"').split())


def _plain(word: str) -> str:
    word = unicodedata.normalize("NFKD", word)
    return "".join(ch for ch in word if not unicodedata.combining(ch))


STOPWORDS = frozenset(_plain(w) for w in (*STOPWORDS_FRENCH, *STOPWORDS_EN_PLUS)) | {
    # question words and fillers that carry no content in either language
    "quel", "quelle", "quels", "quelles", "combien", "quand", "comment", "pourquoi", "est", "ce", "qu",
    "what", "which", "when", "where", "who", "whom", "whose", "why", "how", "many", "much", "did", "does",
    "do", "is", "are", "was", "were",
}


@lru_cache(maxsize=4)
def _stemmer(lang: str):
    return Stemmer.Stemmer(STEMMERS.get(lang, "french"))


def words(text: str) -> list[str]:
    """Content words, lower-cased and accent-free, in order."""
    text = _ELISION.sub(" ", text.translate(_APOSTROPHES).casefold())
    out = []
    for w in _WORD.findall(text):
        w = _plain(w)
        if len(w) >= 2 and (w.isdigit() or w not in STOPWORDS):
            out.append(w)
    return out


def stems(text: str, lang: str) -> list[str]:
    return _stemmer(lang).stemWords(words(text))


def stem(word: str, lang: str) -> str:
    return _stemmer(lang).stemWord(word)


_LETTERS = re.compile(r"[^\W\d_]{3,}")


def lexicon(text: str) -> set[str]:
    """The text's distinct content words, lower-cased with their accents (for the term bridge)."""
    return {w for w in map(str.casefold, _LETTERS.findall(text)) if _plain(w) not in STOPWORDS}


def lowercase(text: str) -> set[str]:
    """The words (3 letters or more) the text writes in lower case somewhere: capitalised, one of them
    is a sentence's first word or a title ("la Défense Viktor Khrenin"), not a name."""
    return {w for w in _LETTERS.findall(text) if w[0].islower()}
