"""Conversation, a step of its own: a follow-up question is read with the turns before it.

No language model rewrites the question. A question *depends* on the conversation when it refers to
something it does not name (a pronoun or demonstrative: "qui en est le secrétaire général ?", "who
said that?"), continues the last one ("et en 2022 ?", "and Spain?"), or holds too little of its own
to search on ("pourquoi ?", "dans quelle ville ?"); a question that names a subject of its own (a
capitalised name) and does none of that stands on its own, and is answered exactly as without a
conversation. A dependent question is searched with what it lacks carried over from the last turn
that had something to carry: that turn's names and words (with what it had itself carried), and the
short answer it was given (a person, a place); the document that turn cited is a prior for the
search. All of them join the question's embedding; only the names join its keywords (the terms
BM25 and a sentence's coverage match), unless the question says too little of its own: "Quels pays
en font partie ?" after "Quel est l'objectif principal de l'OTSC ?" is about the OTSC, not about an
objective, and an answer need not say "objectif" (dev follow-ups right 23 -> 24 of 32). The
question's own type is kept (it is still "where?" that is asked), except by an ellipsis, which has
none: "Et sa force de maintien de la paix ?" asks how many, as the question it continues did. Only
the last TURNS_READ turns are read. What was carried, and from which turn, is part of the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import analyze

TURNS_READ = 3
SHORT = 2  # a question with this many content words or fewer says too little to search on
OWN = 3  # a question with more content words than this names enough to stand, "it" or "ce" aside

# Words that point back at something named earlier. A person ("elle", "she", "lui"), a statement
# ("cela", "who said that?"), a demonstrative ("ce poste", "cette année-là", "at that summit") or a
# pronoun standing for a thing ("it", "them", "c'était", "y" but not "il y a") points back even in a
# question naming other things ("Which CSTO member is still part of it?"; "Qu'a-t-il dit à Moscou ?"
# aside). A possessive ("its", "leur", "son") or a pronoun after its verb ("Que craint-il ?", but
# "Quand l'association a-t-elle été fondée ?": the subject may stand before the verb) points back only
# in a question naming nothing ("What did article 6 of the agreement require of its members?" names
# its own subject).
_REFERS = {
    "fr": re.compile(r"(?<![-'’])\b(?:il|elle|ils|elles|lui|cela|ça)\b|\b(?:cet|cette|ces)\b|"
                     r"(?<!-)\bce\s+(?!que?\b|qu['’]|qui\b|dont\b)\w|\bc['’](?:est|était|étaient)\b|"
                     r"\by\b(?!\s+(?:a|avait|aura|ait|eut|aurait)\b)", re.IGNORECASE),
    "en": re.compile(r"\b(?:he|him|his|she|her|hers|it|they|them|this|these|those)\b|\bthat\s*\?|"
                     r"\b(?:said|say|says|did|was|is|about|after|before|at|in|on|during|of|from|since|by|for|"
                     r"with)\s+that\b", re.IGNORECASE),
}
_THING = {
    "fr": re.compile(r"\b(?:leur|leurs|son|sa|ses|ce|celui|celle|ceux|celles|ceci|lequel|laquelle|lesquels|"
                     r"lesquelles)\b|\ben\s+(?:est|sont|font|fait|a|ont|était|compte|comptait)\b|"
                     r"\bl['’](?:a|ont|avait|avaient|est)\b|-(?:t-)?(?:il|elle|ils|elles)\b", re.IGNORECASE),
    "en": re.compile(r"\b(?:its|their)\b", re.IGNORECASE),
}
_CONTINUES = {
    "fr": re.compile(r"^\s*(?:et|mais|puis|alors|ensuite)\b", re.IGNORECASE),
    "en": re.compile(r"^\s*(?:and|but|then|what about|how about)\b", re.IGNORECASE),
}
# A question word of its own, or a verb before its subject: a continuation without one is an ellipsis
# ("Et le Tadjikistan ?", "And in 2004?"), which asks again what the question it continues asked.
_ASKS = {
    "fr": re.compile(r"\b(?:qui|que|qu['’]|quoi|quel|quelle|quels|quelles|lequel|laquelle|lesquels|lesquelles|comment|"
                     r"pourquoi|où|quand|combien|est-ce)\b|-(?:t-)?(?:il|elle|ils|elles|on)\b", re.IGNORECASE),
    "en": re.compile(r"\b(?:what|which|who|whom|whose|how|why|where|when)\b|^\s*(?:and|but|then)?\s*(?:is|are|was|were|"
                     r"do|does|did|has|have|had|can|could|will|would|should)\b", re.IGNORECASE),
}
_NAME = re.compile(r"(?<!^)(?<![.?!]\s)\b(?:[A-ZÀ-Ý][\w'’-]+|[A-Z]{2,})")


@dataclass(frozen=True)
class Context:
    """What a follow-up was read with: words carried from an earlier turn, that turn's number
    (1-based, in the history given) and the document it cited; ``keywords``: the carried words that
    also join the question's keyword terms; ``continues``: the earlier question this one continues
    ("et ...", "and ..."), for the type of answer an ellipsis asks."""

    carried: tuple[str, ...]
    from_turn: int
    source: str | None
    keywords: tuple[str, ...] = ()
    continues: str | None = None

    def to_dict(self) -> dict:
        return {"used": True, "carried": list(self.carried), "from_turn": self.from_turn}


def depends(question: str, lang: str) -> bool:
    """The question needs the conversation to be understood."""
    lang = lang if lang in _REFERS else "en"
    if _CONTINUES[lang].search(question) or _REFERS[lang].search(question):
        return True
    words = len(analyze.words(question))
    if _NAME.search(question) or words > OWN:  # it names its own subject
        return False
    return bool(_THING[lang].search(question)) or words <= SHORT


def _subject(turn: dict) -> tuple[list[str], list[str], str | None]:
    """What an earlier turn was about: the names it asked about, carried or was answered with (a
    person, a place), the other words of its question, and the document it cited."""
    result = turn.get("result") or {}
    question = turn.get("question", "")
    carried = list((result.get("context") or {}).get("carried", []))
    answer = result.get("answer") or {}
    names = [*_NAME.findall(question), *(c for c in carried if c[:1].isupper()),
             *([answer["short_answer"]] if answer.get("short_answer") else [])]
    named = {w for name in names for w in analyze.words(name)}
    words = [w for w in re.findall(r"[\w'’-]+", question) if analyze.words(w) and not named.issuperset(analyze.words(w))]
    return list(dict.fromkeys(names)), words, answer.get("source")


def _continued(question: str, lang: str, history: list[dict]) -> str | None:
    """The earlier question that ``question`` continues, if it is an ellipsis: the last one that did
    not itself continue another ("Et l'Arménie ?" after "Et le Tadjikistan ?" continues what was
    asked before them)."""
    lang = lang if lang in _ASKS else "en"
    pattern = _CONTINUES[lang]
    if not pattern.search(question) or _ASKS[lang].search(question):
        return None
    for turn in reversed(history):
        if not pattern.search(turn.get("question", "")):
            return turn.get("question")
    return None


def resolve(question: str, lang: str, history: list[dict]) -> tuple[str, Context | None]:
    """The text to search for ``question``: itself when it stands on its own (no context), else
    itself followed by what it lacks from the last turn that has something to carry: its names
    (asked about, carried, or answered with), and the words of its question."""
    if not history or not depends(question, lang):
        return question, None
    own = set(analyze.words(question))
    first = max(0, len(history) - TURNS_READ)
    for n in range(len(history) - 1, first - 1, -1):
        names, words, source = _subject(history[n])
        names = [w for w in names if not own.issuperset(analyze.words(w))]
        carried = tuple([*names, *(w for w in words if not own.issuperset(analyze.words(w)))])
        if carried:
            keywords = carried if len(own) <= SHORT else tuple(names)
            return f"{question} {' '.join(carried)}", Context(carried, n + 1, source, keywords,
                                                              _continued(question, lang, history[first : n + 1]))
    return question, None
