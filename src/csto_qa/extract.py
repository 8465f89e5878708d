"""Step 8, extract: the retrieved passages -> the sentence that answers, a short answer inside it,
or an abstention when no sentence does.

Each sentence of the top passages is a candidate, described by the signals the engine measures
without generating text (``Extractor.candidates``, reader/decide.py's FEATURES): the reader's
similarity of the sentence to the question, alone and after the sentence before it (vectors made at
build time by the fine-tuned encoder; across languages, through the sentence's translation); the
share of the question's words it and its document's title hold; whether it holds what the question
asks for (a date for "when"...); whether it is a fragment; its passage's similarity. The reader's
learned model (reader/decide.py) ranks the candidates and gives the best one's confidence; below
its threshold the engine declines. Around the best sentence, the quote takes in a neighbour that
scores nearly as well or holds the answer's type, and the list a sentence ending with a colon opens.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import analyze
from .index import Index
from .reader import decide
from .retrieve import Hit, Query
from .split import list_item


@dataclass(frozen=True)
class ExtractSettings:
    passages: int = 5  # sentences are taken from this many top passages
    # a neighbouring sentence whose score is at most this far below the best's joins the quote
    # (log-odds of the reader's ranking). On PIAF dev: 0.5 -> 0.719 right (median quote 193 chars),
    # 1.0 -> 0.740 (208), 2.0 -> 0.759 (233), 3.0 -> 0.765 (254); 2.0 lost nothing on the gold sets' dev parts
    join_margin: float = 2.0
    abstain: bool = True  # off: the best sentence is quoted whatever its confidence (evaluate's "hybrid")


@dataclass(frozen=True)
class Extraction:
    doc: int
    start: int
    end: int
    score: float
    short_answer: str | None
    confidence: float


@dataclass(frozen=True)
class Reading:
    """What the reader made of the passages: the quote (None when it declines), the best
    sentence's confidence, why it declined, and the time of its model work."""
    extraction: Extraction | None
    confidence: float | None
    reason: str | None
    seconds: float


SHORT = 50
LIST_CHARS = 800  # a quote that takes in the list its sentence opens stops before this length
# A picture credit closing a caption: "(Jane Doe/Agency via AP)", "(© AFP)".
_CREDIT = re.compile(r"\([^()\n]*(?:/|\bvia\b|©)[^()\n]*\)$")
_TABLE_SEPARATOR = re.compile(r"\|?[ \t]*:?-{2,}")
_TYPED = {"when": "typed_when", "how_many": "typed_count", "where": "typed_where"}


def fragment(text: str) -> bool:
    """Not a full sentence: too short, or no closing punctuation (a heading, a caption), or a caption
    with its picture credit. A sentence ending with a colon (it opens a quotation or a list) is one."""
    text = text.rstrip()
    return len(text) < SHORT or text[-1] not in ".!?…»\"”):" or bool(_CREDIT.search(text))


def table_row(doc_text: str, start: int, end: int) -> bool:
    """A body row of a Markdown (pipe) table: its cells are an answer as good as a sentence. The
    header row (followed by the |---| line) is not one."""
    line = doc_text[start:end].strip()
    if not (line.startswith("|") and line.endswith("|") and line.count("|") >= 3):
        return False
    following = doc_text[end:].lstrip(" \t\n").split("\n", 1)[0]
    return not _TABLE_SEPARATOR.match(following) and not _TABLE_SEPARATOR.match(line)


@dataclass(frozen=True)
class Candidates:
    """A question's candidate sentences and their signals (rows of ``features``, in FEATURES order)."""
    ids: np.ndarray
    features: np.ndarray
    # the question-level signals the decision reads (decide.decision_row), and "typed": for each
    # candidate, whether it holds a span of the type asked for
    extra: dict


class Extractor:
    def __init__(self, index: Index, settings: ExtractSettings = ExtractSettings(), model: decide.Decider | None = None):
        self.index = index
        self.settings = settings
        self.model = model or decide.load()
        self._idf = _idf(index)
        self._idf_unknown = math.log(1 + len(index.chunks))
        self._titles: dict[int, frozenset[str]] = {}  # a document's title stems, read when a question first needs them

    def coverage(self, terms: list[str], text: str, doc: int | None = None) -> float:
        """Share of the question's terms present in the text, or in the title of its document
        ``doc``, each weighted by its IDF."""
        wanted = set(terms)
        if not wanted:
            return 0.0
        present = _stems(text, self.index.lang)
        if doc is not None:
            present = present | self._title(doc)
        total = sum(self._idf.get(t, self._idf_unknown) for t in wanted)
        return sum(self._idf.get(t, self._idf_unknown) for t in wanted & present) / total

    def candidates(self, hits: list[Hit], query: Query, qtype: str) -> Candidates:
        seen: dict[int, int] = {}
        for rank, hit in enumerate(hits[: self.settings.passages]):
            for sid in self.index.chunk_sentences[hit.chunk]:
                seen.setdefault(sid, rank)
        extra = {"relevance": self.relevance(hits, query), "cross_lingual": query.lang != self.index.lang,
                 "asks_typed": qtype in ("when", "how_many"), "typed": [], "known": query.known}
        ids = np.fromiter(seen, dtype=np.int64, count=len(seen))
        if not len(ids):
            return Candidates(ids, np.zeros((0, len(decide.FEATURES))), extra)
        q = query.vector.astype(np.float32)
        alone = self.index.sentence_vectors[ids].astype(np.float32) @ q
        context = self.index.context_vectors.reconstruct_batch(ids) @ q
        if self.index.translated_vectors is not None:
            # a sentence in another language than the question's is read in context through its
            # translation into the question's language (made at build time)
            docs = self.index.documents
            foreign = np.fromiter((docs[self.index.sentences[i].doc].lang != query.lang for i in ids.tolist()),
                                  dtype=bool, count=len(ids))
            if foreign.any():
                context[foreign] = self.index.translated_vectors[ids[foreign]].astype(np.float32) @ q
        typed_column = _TYPED.get(qtype)
        rows = []
        for sid, a, c in zip(ids.tolist(), alone.tolist(), context.tolist()):
            sent = self.index.sentences[sid]
            doc_text = self.index.documents[sent.doc].text
            text = doc_text[sent.start : sent.end]
            typed = bool(_typed_spans(text, qtype, query.text, self.index.lowercase))
            partial = not table_row(doc_text, sent.start, sent.end) and not list_item(doc_text, sent.start) and fragment(text)
            f = dict.fromkeys(decide.FEATURES, 0.0)
            f.update(alone=a, context=c, coverage=self.coverage(query.terms, text, sent.doc), fragment=float(partial),
                     passage=hits[seen[sid]].dense)
            if typed_column:
                f[typed_column] = float(typed)
            rows.append([f[name] for name in decide.FEATURES])
            extra["typed"].append(typed)
        return Candidates(ids, np.asarray(rows, dtype=np.float64), extra)

    def relevance(self, hits: list[Hit], query: Query) -> float:
        """Similarity of the best passage to the question, less that of the corpus's background (the
        mean of its words' vectors): a question about nothing in the corpus is as close to that
        generic centre as to any passage; one the corpus covers comes clearly closer to a passage."""
        return hits[0].dense - float(self.index.background @ query.vector) if hits else -1.0

    def read(self, hits: list[Hit], query: Query, continues: str | None = None) -> Reading:
        """The quote that answers, or a decline with its reason. ``continues``: the earlier question
        an ellipsis continues; a question of no type of its own asks what that one asked ("Et sa
        force de maintien de la paix ?" after "Combien d'hommes compte la force d'intervention
        rapide ?" asks how many)."""
        qtype = answer_type(query.text)
        if qtype == "other" and continues:
            qtype = answer_type(continues)
        cands = self.candidates(hits, query, qtype)
        if not len(cands.ids):
            return Reading(None, None, "no_passage", 0.0)
        t = time.perf_counter()
        scores = self.model.scores(cands.features)
        order = np.argsort(-scores, kind="stable")
        confidence = self.model.confidence(decide.decision_row(scores, cands.features, order, cands.extra))
        seconds = time.perf_counter() - t
        if self.settings.abstain and confidence < self.model.threshold:
            return Reading(None, confidence, "unsure", seconds)
        d, start, end = self.quote(cands, scores, order)
        spans = typed_spans(self.index.documents[d].text[start:end], qtype, query.text, self.index.lowercase)
        found = Extraction(d, start, end, float(scores[order[0]]), spans[0] if len(spans) == 1 else None, confidence)
        return Reading(found, confidence, None, seconds)

    def quote(self, cands: Candidates, scores: np.ndarray, order: np.ndarray) -> tuple[int, int, int]:
        """(document, start, end) of the quote: the best sentence, joined by the sentence next to it
        in its paragraph when that one scores nearly as well (answers often span two sentences)."""
        ids = cands.ids.tolist()
        by_id = {sid: float(s) for sid, s in zip(ids, scores.tolist())}
        typed = {sid for sid, t in zip(ids, cands.extra["typed"]) if t}
        best = ids[order[0]]
        score = by_id[best]
        if self._asks(best):
            best += 1  # a question is no answer: an FAQ heading or a rhetorical question is followed by its answer
        first = last = best
        # the answer the question asks for (a name, a date...) often sits in the next sentence or the
        # one before: a neighbour holding it joins a best sentence that does not
        neighbours = [n for n in (best - 1, best + 1)
                      if n in by_id and (by_id[n] >= score - self.settings.join_margin or (n in typed and best not in typed))
                      and self._same_paragraph(min(n, best), max(n, best))]
        if neighbours:
            n = max(neighbours, key=by_id.get)
            first, last = min(n, first), max(n, last)
        last = self._list_after(last)
        a, b = self.index.sentences[first], self.index.sentences[last]
        return a.doc, a.start, b.end

    def _list_after(self, sentence: int) -> int:
        """The last sentence of the list a sentence ending with a colon opens ("L'ACRE est réservée à
        certains publics :" is answered by the items after it), up to LIST_CHARS; the sentence itself
        when no list follows."""
        sents = self.index.sentences
        if not self.index.sentence_text(sentence).rstrip().endswith(":"):
            return sentence
        doc_text = self.index.documents[sents[sentence].doc].text
        last = sentence
        while last + 1 < len(sents) and sents[last + 1].doc == sents[sentence].doc:
            nxt = sents[last + 1]
            if nxt.end - sents[sentence].start > LIST_CHARS:
                break
            # an item, or the rest of an item already taken (an item of two sentences)
            same_item = last > sentence and "\n" not in doc_text[sents[last].end : nxt.start]
            if not (list_item(doc_text, nxt.start) or same_item):
                break
            last += 1
        return last

    def _asks(self, sentence: int) -> bool:
        """The sentence is a question, and the next one in its document can answer it."""
        sents = self.index.sentences
        return (sentence + 1 < len(sents) and sents[sentence + 1].doc == sents[sentence].doc
                and self.index.sentence_text(sentence).rstrip().endswith("?"))

    def _title(self, doc: int) -> frozenset[str]:
        if doc not in self._titles:
            self._titles[doc] = frozenset(analyze.stems(self.index.documents[doc].title, self.index.lang))
        return self._titles[doc]

    def _same_paragraph(self, first: int, second: int) -> bool:
        a, b = self.index.sentences[first], self.index.sentences[second]
        return a.doc == b.doc and "\n" not in self.index.documents[a.doc].text[a.end : b.start]


@lru_cache(maxsize=1 << 16)
def _stems(text: str, lang: str) -> frozenset[str]:
    """A sentence's stems, read once: the same sentences are candidates to many questions."""
    return frozenset(analyze.stems(text, lang))


def _idf(index: Index) -> dict[str, float]:
    """IDF of every BM25 vocabulary term, read from the BM25 matrix (a term's column length = df)."""
    bm25 = index.bm25
    vocab = getattr(bm25, "vocab_dict", None) or {}
    scores = getattr(bm25, "scores", None) or {}
    indptr = scores.get("indptr")
    if indptr is None:
        return {}
    df = np.diff(np.asarray(indptr))
    n = max(len(index.chunks), 1)
    return {term: math.log(1 + n / max(int(df[i]), 1)) for term, i in vocab.items() if i < len(df)}


# --- short answers --------------------------------------------------------------------------

_MONTHS = ("janvier|février|fevrier|mars|avril|mai|juin|juillet|août|aout|septembre|octobre|novembre|décembre"
           "|decembre|january|february|march|april|may|june|july|august|september|october|november|december")
_MONTHS_ALONE = "|".join(m for m in _MONTHS.split("|") if m != "may")  # "may" alone: "you may apply"
# durations, with or without accents (raw text and folded spans): "3 mois", "2 années", "10 ans"
_PERIODS = r"(?:jours?|semaines?|mois|ans|ann[ée]es?|days?|weeks?|months?|years?)"
_NUMBER_WORDS = ("deux|trois|quatre|cinq|six|sept|huit|neuf|dix|onze|douze|quinze|vingt|trente|quarante"
                 "|cinquante|cent|mille|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen"
                 "|twenty|thirty|hundred|thousand")
# dates with a day or a month: the most specific answers to "when", and never a quantity
_CALENDAR_DATES = [
    rf"\b\d{{1,2}}(?:er)?\s+(?:{_MONTHS})\s+\d{{4}}\b",
    rf"\b(?:{_MONTHS})\s+\d{{1,2}},\s+\d{{4}}\b",
    rf"\b\d{{1,2}}(?:er)?\s+(?:{_MONTHS})\b",
    rf"\b(?:{_MONTHS})\s+\d{{4}}\b",
    r"\b\d{1,2}[./]\d{1,2}[./]\d{4}\b",
]
_YEAR_DIGITS = r"\b(?:1[5-9]|20)\d{2}\b"
_SYMBOLS = ("%", "€", "$", "£")  # units written as a symbol after the number ("75 %", "17 €")
_SYMBOL = f"[{''.join(_SYMBOLS)}]"
_PATTERNS = {
    "when": [
        *_CALENDAR_DATES,
        r"\b\d{4}\s*[-–]\s*\d{4}\b",
        _YEAR_DIGITS,
        # times given against the calendar or an event rather than as a date: "le 28 du mois", "à
        # partir d'avril", "le lendemain", "2 mois après la demande", "dans un délai de 3 mois" (a
        # month alone only after a preposition)
        r"\b(?:le\s+)?\d{1,2}(?:er|e|ème)?\s+(?:du|de\s+chaque)\s+mois\b",
        rf"\b(?:en|d['’]|dès|début|fin|mi-|from|in|until|by)\s*(?:{_MONTHS_ALONE})\b",
        rf"\b\d+(?:\s*(?:à|-|to)\s*\d+)?\s+{_PERIODS}\s+(?:après|avant|after|before)\b",
        r"\b\d+(?:er|re|e|ème|st|nd|rd|th)\s+(?:jour|mois|anniversaire|day|month|anniversary)\b",
        rf"\b(?:dans|sous|within)\s+(?:un\s+délai\s+(?:de\s+|d['’]))?\d+(?:\s*(?:à|-|to)\s*\d+)?\s+{_PERIODS}",
        r"\b(?:lendemain|veille|the\s+day\s+(?:after|before))\b",
        r"\b\d{1,2}\s*h(?:\s*\d{2})?\b|\b\d{1,2}:\d{2}\b",  # a time of day, for "à quelle heure"
    ],
    "how_many": [  # "1 084,43 €" and "1,084.43 $" are one number, not "1 084" and "43 €"
        rf"\b(?:\d{{1,3}}(?:[  ]\d{{3}})+(?:,\d+)?|\d{{1,3}}(?:,\d{{3}})+(?:\.\d+)?|\d+(?:[.,]\d+)?"
        rf"|(?:{_NUMBER_WORDS})\b(?:-(?:{_NUMBER_WORDS})\b)*)"
        rf"(?:\s+(?:{_NUMBER_WORDS}))?"
        rf"(?:\s*{_SYMBOL}|\s+(?:de\s+|d['’]|of\s+)?[A-Za-zÀ-ÿ][\w-]*)?",
    ],
    "who": [r"\b[A-ZÀ-Ý][\w'’-]+(?:\s+(?:de\s+|du\s+|von\s+|van\s+|al-)?[A-ZÀ-Ý][\w'’-]+){1,3}"],
    "where": [r"\b(?:à|au|aux|en|in|at)\s+(?P<span>[A-ZÀ-Ý][\w'’-]+(?:[\s-]+[A-ZÀ-Ý][\w'’-]+)*)"],
}
_COMPILED = {t: [re.compile(p, re.IGNORECASE if t in ("when", "how_many") else 0) for p in ps]
             for t, ps in _PATTERNS.items()}
_QUESTION_TYPES = [
    ("how_many", r"\b(combien|how\s+(many|much|large|big|old|long)|quel\s+[âa]ge|what\s+age"
                 r"|quel(le)?s?\s+((est|sont|était|étaient|sera)\s+(le|la|les|l['’])\s*)?"
                 r"(nombre|effectif|taille|montant|prix|coût|cout|tarif|part|population|budget)"
                 r"|what\s+(is\s+the\s+|was\s+the\s+)?(number|size|amount|price|cost|share|population))\b"),
    ("when", r"\b(quand(?!\s+m[êe]me)|en\s+quelle\s+année|à\s+quelle\s+date|quelle\s+date|quelles?\s+heures?"
             r"|what\s+time|when|what\s+year|which\s+year|what\s+date|depuis\s+quand)\b"),
    ("where", r"\b(où|where|dans\s+quel(le)?\s+(ville|pays|capitale)|in\s+which\s+(city|country)|what\s+city)\b"),
    ("who", r"\b((?<!ce\s)qui|who|whom|quel\s+(président|dirigeant|ministre|chercheur|pays)"
            r"|which\s+(country|president|leader|person))\b"),
]


def question_type(question: str) -> str:
    """The type asked for. A question that opens with its interrogative word is of that type ("Who
    was chairing ... when ...", "Qui a présenté ... l'année où ..."); otherwise the first type that
    matches anywhere, in _QUESTION_TYPES order: a later "qui" / "who" is mostly relative ("c'était
    pas moi qui conduisait, j'ai combien de temps ...")."""
    q = question.casefold().lstrip(" \"'«“¿¡-")
    found = [(qtype, m) for qtype, pattern in _QUESTION_TYPES if (m := re.search(pattern, q))]
    opening = [qtype for qtype, m in found if m.start() == 0]
    return (opening or [qtype for qtype, _ in found] or ["other"])[0]


def answer_type(question: str) -> str:
    """The question's type (question_type)."""
    return question_type(question)


# The unit a "how many" question asks for, read on the folded question, and how a quantity of that
# unit reads (on the folded span: "13,76 €", "2 mois", "12 ans", "75 %"): the short answer to "how
# much does it cost" is the price, not the validity the same sentence gives. Only the short answer:
# as an evidence bonus it moved one dev answer right and one test near-miss wrong (FAQ set).
_PAY_VERBS = r"payer|paie|pay|charged?"
_UNITS = [
    (re.compile(rf"\b(cout\w*|prix|tarifs?|frais|montant|combien\s+ca\s+coute|costs?|prices?|fees?|{_PAY_VERBS})\b"),
     re.compile(r"[€$£]|\b(euros?|dollars?|centimes?|cents?)\b")),
    (re.compile(r"\b(combien\s+de\s+temps|delais?|duree|how\s+long|valable|valid)\b"),
     re.compile(rf"\b(?:{_PERIODS}|an|heures?|minutes?|hours?)\b")),
    (re.compile(r"\b(quel\s+age|how\s+old|what\s+age)\b"),
     re.compile(r"\b(ans?|years?)\b")),
    (re.compile(r"\b(pourcentage|taux|quelle\s+part|percentage|rate|what\s+share)\b"),
     re.compile(r"%|\bpour\s*cent\b|\bpercent\b")),
]


def _asked_unit(question: str) -> re.Pattern | None:
    q = analyze.fold(question)
    return next((unit for asks, unit in _UNITS if asks.search(q)), None)


def _trim_quantity(span: str) -> str:
    """"2022 au" -> "2022": the word after a number is its unit only if it is a content word."""
    words = span.split()
    if len(words) > 1 and not analyze.words(words[-1]) and words[-1] not in _SYMBOLS:
        words = words[:-1]
    return " ".join(words)


@dataclass(frozen=True)
class _Asked:
    """What evidence scoring and the span patterns read in a question, worked out once per question
    rather than once per candidate sentence."""
    folded: str
    tokens: frozenset[str]  # its folded words, as split on spaces
    words: frozenset[str]  # its content words (analyze.words)
    unit: re.Pattern | None  # the unit it asks for (_asked_unit)


@lru_cache(maxsize=64)
def _asked(question: str) -> _Asked:
    folded = analyze.fold(question)
    return _Asked(folded, frozenset(folded.split()), frozenset(analyze.words(question)),
                  _asked_unit(question))


def typed_spans(text: str, qtype: str, question: str, lowercase: frozenset[str] = frozenset()) -> list[str]:
    """Spans of the type asked for (dates for "when", quantities for "how many", names for "who",
    places for "where") that the question does not already contain, most specific pattern first;
    for a question that asks for a unit (a price, a duration, an age, a rate), the quantities in that
    unit when there are any. ``lowercase``: the words the corpus writes in lower case, which do not
    open a name ("la Défense Viktor Khrenin", "au Service central")."""
    spans = _typed_spans(text, qtype, question, lowercase)
    unit = _asked(question).unit if qtype == "how_many" else None
    if not unit:
        return spans
    return [span for span in spans if unit.search(analyze.fold(span))] or spans


def _name(span: str, lowercase: frozenset[str]) -> str:
    """The span without the capitalised common words that open it (a title, a sentence's first word,
    a stop word: "Au Kazakhstan")."""
    words = span.split()
    while words and (words[0].casefold() in lowercase or not analyze.words(words[0])):
        words = words[1:]
    return " ".join(words)


def _typed_spans(text: str, qtype: str, question: str, lowercase: frozenset[str] = frozenset()) -> list[str]:
    quantity = qtype == "how_many"
    patterns = _COMPILED.get(qtype)
    if not patterns:
        return []
    asked = _asked(question)
    for pattern in patterns:
        found = []
        for m in pattern.finditer(text):
            span = m.group("span" if "span" in pattern.groupindex else 0).strip(" ,.;:")
            if quantity:
                span = _trim_quantity(span)
                if not span or analyze.fold(span.split()[0]) in asked.tokens:
                    continue  # the number the question already gives ("in 2022") is no answer
            elif qtype in ("who", "where"):
                span = _name(span, lowercase)
                if qtype == "who" and len(span.split()) < 2:
                    continue  # a person is named by at least two words
                if asked.words.intersection(analyze.words(span)):
                    continue  # "Vladimir Poutine" to "qui a succédé à Poutine": the person asked about
            if span and analyze.fold(span) not in asked.folded and span not in found:
                found.append(span)
        if qtype == "who":
            found = [f for f in found if not any(f != g and f in g for g in found)]
        if found:
            return found
    return []
