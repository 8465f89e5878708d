"""The reader's second stage: the engine, with the fine-tuned encoder, reads questions whose answers
are known, and the ranking and decision of decide.py are fitted on what it measured.

Questions (never a test or sealed part): PIAF's dev articles, in French and in English (Apertium),
with the questions of a fixed quarter of them asked against an index of the rest, which does not
hold their answers; the dev and seen parts of the repository's gold sets, over their corpora; and,
asked of each of those corpora, which cannot answer them, OFF_TOPIC of PIAF's dev questions in each
language: what a question about something else looks like to that corpus.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import decide, piaf

TUNED = ("dev", "seen")
OFF_TOPIC = 60


@dataclass(frozen=True)
class Asked:
    question: str
    answers: tuple[str, ...]
    sources: tuple[str, ...]
    answerable: bool
    group: str


HELD_OUT_SALT = "piaf-bench-unanswerable:"


def held_out(articles: list[piaf.Article]) -> set[str]:
    """The titles of a fixed quarter of the articles (at least one of two or more), left out of their
    part's index: their questions have no answer there. The quarter whose salted title hash is lowest."""
    n = len(articles)
    k = max(1, round(n / 4)) if n >= 2 else 0
    ranked = sorted(articles, key=lambda a: hashlib.sha256((HELD_OUT_SALT + a.title).encode("utf-8")).hexdigest())
    return {a.title for a in ranked[:k]}


def file_name(title: str) -> str:
    slug = re.sub(r"[^\w]+", "_", title, flags=re.ASCII).strip("_")[:60] or "article"
    return f"{slug}_{hashlib.sha256(title.encode('utf-8')).hexdigest()[:6]}.txt"


def write_corpus(articles: list[piaf.Article], folder: Path) -> dict[str, str]:
    """Each article as a text file in ``folder`` (emptied of .txt files first): its title, then its
    paragraphs, a blank line between. Returns title -> file name."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.txt"):
        old.unlink()
    names = {}
    for art in articles:
        names[art.title] = file_name(art.title)
        (folder / names[art.title]).write_text("\n\n".join([art.title, *art.paragraphs]) + "\n", encoding="utf-8")
    return names


def piaf_questions(articles: list[piaf.Article], part: str) -> tuple[list[piaf.Article], list[Asked]]:
    """The articles indexed for a part, and its questions (French and English), answerable or not."""
    out = held_out(articles)
    indexed = [a for a in articles if a.title not in out]
    asked = []
    for art in articles:
        answerable = art.title not in out
        for q in art.questions:
            source = (file_name(art.title),)
            asked.append(Asked(q.text, (q.answer,), source, answerable, f"piaf-{part}-fr"))
            if q.english:
                asked.append(Asked(q.english, (q.answer,), source, answerable, f"piaf-{part}-en"))
    return indexed, asked


def place(work: Path, name: str, identity: str) -> Path:
    """Where a set's corpus (PIAF) and index are kept for an embedder: the benches (bench/quality.py,
    bench/piaf.py) use the same places, so an index built here serves them too."""
    return Path(work) / f"{name}-{''.join(ch if ch.isalnum() else '-' for ch in identity)[-60:]}"


def gold_sets(path: Path) -> list[tuple[str, Path, Path]]:
    """(name, corpus, gold file) of each set a sets file lists (JSON: [{"name", "corpus", "gold"}],
    paths relative to the file's folder's parent, the repository root)."""
    import json

    from ..evaluate import GoldError

    path = Path(path)
    root = path.resolve().parent.parent
    try:
        return [(s["name"], root / s["corpus"], root / s["gold"]) for s in json.loads(path.read_text(encoding="utf-8"))]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise GoldError(f"cannot read the gold sets file {path}: {exc}") from None


def gold_questions(name: str, gold: Path, parts: tuple[str, ...] = TUNED) -> list[Asked]:
    from ..evaluate import load_gold

    return [Asked(g.question, g.answers, g.sources, g.answerable, f"{name}-{g.lang}")
            for g in load_gold(gold) if g.split in parts]


def samples(qa, asked: list[Asked]) -> list[decide.Sample]:
    """What the engine measures of each question's candidates, and which hold its answer."""
    from ..analyze import fold
    from ..extract import answer_type

    out = []
    for a in asked:
        s = qa.search(a.question)
        c = qa.extractor.candidates(s.hits, s.query, answer_type(s.query.text))
        if not len(c.ids):
            continue
        right = []
        for sid in c.ids.tolist():
            sent = qa.index.sentences[sid]
            doc = qa.index.documents[sent.doc]
            if a.answers:
                text = fold(qa.index.sentence_text(sid))
                right.append(any(fold(ans) in text for ans in a.answers))
            else:
                right.append(doc.source in a.sources)
        out.append(decide.Sample(c.features, np.asarray(right, dtype=bool), c.extra, a.answerable, a.group))
    return out


def collect(piaf_path: Path, sets_file: Path, work: Path, log=print) -> list[decide.Sample]:
    """Samples from PIAF's dev part and the tuned parts of the gold sets ``sets_file`` lists, read
    by the default embedder."""
    piaf_dev = _piaf_set(piaf_path, "dev", work)
    sets = [piaf_dev]
    sets += [(name, c, gold_questions(name, g) + _off_topic(piaf_dev[2], name)) for name, c, g in gold_sets(sets_file)]
    return _read(sets, work, log)


def _off_topic(asked: list[Asked], corpus: str) -> list[Asked]:
    """A fixed sample of PIAF questions per language, as questions another corpus cannot answer."""
    out = []
    for lang in ("fr", "en"):
        mine = sorted((a for a in asked if a.group.endswith(lang)),
                      key=lambda a: hashlib.sha256(a.question.encode("utf-8")).hexdigest())
        out += [Asked(a.question, (), (), False, f"{corpus}/off-topic-{lang}") for a in mine[:OFF_TOPIC]]
    return out


def collect_test(piaf_path: Path, work: Path, log=print) -> list[decide.Sample]:
    """Samples from PIAF's test part: reported, never fitted on."""
    return _read([_piaf_set(piaf_path, "test", work)], work, log)


def _piaf_set(piaf_path: Path, part: str, work: Path) -> tuple[str, Path, list[Asked]]:
    from .. import translate

    articles = piaf.parts(piaf.load(piaf_path))[part]
    translator = translate.create()
    try:
        if translator.available:
            piaf.translate_questions(articles, translator)
    finally:
        translator.close()
    indexed, asked = piaf_questions(articles, part)
    return f"piaf-{part}", indexed, asked


def _read(sets: list[tuple[str, "Path | list[piaf.Article]", list[Asked]]], work: Path, log) -> list[decide.Sample]:
    """Each set's questions read by the engine; a set's corpus is a folder, or PIAF articles to write
    into one."""
    from .. import translate
    from ..embed import create
    from ..qa import QA

    embedder = create(log=log)
    translator = translate.create()
    out = []
    try:
        for name, corpus, questions in sets:
            base = place(work, name, embedder.identity)
            if not isinstance(corpus, Path):
                write_corpus(corpus, base / "corpus")
                corpus = base / "corpus"
            qa = QA.open(corpus, base / "index", embedder=embedder, translator=translator, progress=False,
                         log=log, decider=decide.untrained())
            got = samples(qa, questions)
            log(f"{name}: {len(got)} questions read")
            out += got
    finally:
        translator.close()
    return out
