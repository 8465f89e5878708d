"""The one entry class: ``QA.open(corpus, index).ask(question)`` runs question -> cited answer."""

from __future__ import annotations

import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from . import cite, conversation, lang, translate
from .embed import Embedder, create
from .extract import ExtractSettings, Extractor
from .index import Index, IndexProblem, build, open_index
from .reader.decide import Decider
from .retrieve import MODES, Hit, Query, Retriever
from .split import SplitSettings
from .types import Document, Result

MAX_QUESTION_CHARS = 1000
MAX_PASSAGES = 20

MESSAGES = {
    "answer": {"fr": "D'après les sources :", "en": "According to the sources:"},
    "abstain": {
        "fr": "Les documents ne permettent pas de répondre à cette question.",
        "en": "The documents do not answer this question.",
    },
    "truncated": {
        "fr": f"Question tronquée à {MAX_QUESTION_CHARS} caractères.",
        "en": f"Question truncated to {MAX_QUESTION_CHARS} characters.",
    },
}


@dataclass
class Search:
    """A question as searched: what ``QA.search`` hands to the reader."""
    text: str
    truncated: bool
    lang: str
    query: Query
    hits: list[Hit]
    k: int
    context: "conversation.Context | None"
    translation: "translate.Translation | None"
    timings: dict[str, float]
    started: float


class QuestionError(ValueError):
    """A question that cannot be asked (empty, say); the message is for the user."""


def clean_question(question: str) -> tuple[str, bool]:
    """Control characters dropped, spaces folded, over-long questions cut; raises on empty."""
    if not isinstance(question, str):
        raise QuestionError("the question must be text")
    text = "".join(" " if unicodedata.category(ch).startswith(("C", "Z")) else ch for ch in question)
    text = " ".join(text.split())
    if not any(ch.isalnum() for ch in text):
        raise QuestionError("empty question: type a question in French or English")
    truncated = len(text) > MAX_QUESTION_CHARS
    return text[:MAX_QUESTION_CHARS], truncated


class QA:
    def __init__(self, index: Index, embedder: Embedder, extract: ExtractSettings = ExtractSettings(),
                 translator: translate.Translator | None = None, decider: Decider | None = None):
        self.index = index
        self.embedder = embedder
        self.translator = translator or translate.create("none")
        self.retriever = Retriever(index, embedder)
        self.extractor = Extractor(index, extract, decider)
        self._documents = {d.source: i for i, d in enumerate(index.documents)}

    def document(self, source: str) -> Document | None:
        """The indexed document of that file, if any."""
        i = self._documents.get(source)
        return None if i is None else self.index.documents[i]

    @classmethod
    def open(cls, corpus: str | Path = "corpus", index: str | Path = "index", embedder: str | Embedder | None = None,
             split: SplitSettings = SplitSettings(), extract: ExtractSettings = ExtractSettings(),
             progress: bool = True, log=print, translator: str | translate.Translator | None = None,
             decider: Decider | None = None) -> "QA":
        """Open the index for ``corpus``, (re)building it first when it is missing, stale or damaged.
        ``translator``: a Translator, or a name for translate.create (default: Apertium where installed).
        ``decider``: the reader's ranking and decision (default: the shipped one, reader/decide.py)."""
        emb = embedder if isinstance(embedder, Embedder) else create(embedder, log=log)
        tr = translator if isinstance(translator, translate.Translator) else translate.create(translator)
        try:
            idx = open_index(Path(index), Path(corpus), emb.identity, split, tr.identity)
        except IndexProblem as problem:
            log(f"{problem}: building the index")
            report = build(Path(corpus), Path(index), emb, split, progress=progress, log=log, translator=tr)
            log(f"index built: {report.files} files, {report.chunks} chunks in {report.seconds:.1f} s")
            idx = open_index(Path(index), Path(corpus), emb.identity, split, tr.identity)
        lang.detect("warm up")  # loads the language model now, not on the first user's question (0.4 s)
        return cls(idx, emb, extract, tr, decider)

    def search(self, question: str, history: list[dict] | None = None, k: int = 5, mode: str = "hybrid") -> Search:
        """Steps before reading: the question cleaned, its language, what a follow-up carries, its
        translation, its embedding and the retrieved passages."""
        t0 = time.perf_counter()
        text, truncated = clean_question(question)
        if mode not in MODES:
            raise QuestionError(f"unknown retrieval mode '{mode}' (expected one of {', '.join(MODES)})")
        k = max(1, min(int(k), MAX_PASSAGES))
        timings = {}
        qlang = lang.detect(text, default=self.index.lang)
        searched, context = conversation.resolve(text, qlang, _turns(history))
        translation = None
        if qlang != self.index.lang:
            t = time.perf_counter()
            translation = self.translator.translate(searched, qlang, self.index.lang)
            timings["translate"] = (time.perf_counter() - t) * 1000

        t = time.perf_counter()
        query = self.retriever.query(text, qlang, translation.text if translation else None,
                                     " ".join(context.carried) if context else "",
                                     " ".join(context.keywords) if context else "")
        timings["embed"] = (time.perf_counter() - t) * 1000

        t = time.perf_counter()
        prior = self._documents.get(context.source) if context else None
        hits = self.retriever.search(query, k=max(k, self.extractor.settings.passages), mode=mode, prior=prior)
        timings["retrieve"] = (time.perf_counter() - t) * 1000
        return Search(text, truncated, qlang, query, hits, k, context, translation, timings, t0)

    def ask(self, question: str, history: list[dict] | None = None, k: int = 5, mode: str = "hybrid") -> Result:
        """The cited answer to ``question``, or an abstention. ``history``: the earlier turns of a
        conversation, oldest first, each {"question": ..., "result": <Result.to_dict() or None>}."""
        s = self.search(question, history, k, mode)
        timings = s.timings
        t = time.perf_counter()
        reading = self.extractor.read(s.hits, s.query, s.context.continues if s.context else None)
        found = reading.extraction
        answer = None
        if found is not None:
            answer = cite.answer(self.index.documents[found.doc], found.start, found.end, found.score,
                                 found.short_answer, found.confidence)
        timings["extract"] = (time.perf_counter() - t) * 1000
        # the reader's model work: the question's embedding by the reader's encoder, and its decision
        timings["read"] = timings["embed"] + reading.seconds * 1000

        passages = []
        for rank, hit in enumerate(s.hits[: s.k], start=1):
            c = self.index.chunks[hit.chunk]
            passages.append(cite.passage(self.index.documents[c.doc], c.start, c.end, rank, hit.score, hit.chunk))
        timings["total"] = (time.perf_counter() - s.started) * 1000
        return Result(
            question=s.text, lang=s.lang, abstained=answer is None, answer=answer, passages=passages,
            message=MESSAGES["answer" if answer else "abstain"][s.lang], timings_ms=timings,
            notice=MESSAGES["truncated"][s.lang] if s.truncated else None, translation=s.translation,
            context=s.context, reason=reading.reason, confidence=reading.confidence,
        )


def _turns(history) -> list[dict]:
    """The conversation's turns as given by a caller (a list of {"question", "result"}), checked:
    anything else is a QuestionError, not a crash deep in the engine."""
    if history is None:
        return []
    if not isinstance(history, list) or not all(isinstance(t, dict) and isinstance(t.get("question", ""), str)
                                                and isinstance(t.get("result") or {}, dict) for t in history):
        raise QuestionError("history must be a list of {\"question\": ..., \"result\": ...} turns")
    return history
