"""The engine on French corpora it was never tuned on (tests/data: original FAQ-style texts about a
fictional town, and 180 pages of a fictional public-service portal with users' paraphrased questions,
each with its own gold set): nothing in the engine may be specific to the CSTO documents. A regression
guard at the level reached, and the invariants that hold on any corpus."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from csto_qa import QA
from csto_qa.analyze import fold
from csto_qa.extract import Extractor, answer_type
from csto_qa.evaluate import Evaluator, load_gold

from conftest import assert_levels

DATA = Path(__file__).resolve().parent / "data"


def _evaluate(name: str, tmp_path_factory, embedder) -> tuple[QA, dict]:
    """QA over tests/data/corpus_<name>, run on its gold set gold_<name>.jsonl."""
    corpus = DATA / f"corpus_{name}"
    qa = QA.open(corpus, tmp_path_factory.mktemp(f"{name}-index"), embedder=embedder, progress=False,
                 log=lambda *_: None)
    return qa, Evaluator(qa, corpus).run(load_gold(DATA / f"gold_{name}.jsonl"))


@pytest.fixture(scope="module")
def run(tmp_path_factory, embedder):
    return _evaluate("fr2", tmp_path_factory, embedder)


def test_every_format_of_the_second_corpus_is_indexed(run):
    qa, _ = run
    sources = {d.source for d in qa.index.documents}
    assert len(sources) == 10 and {".txt", ".md", ".html"} <= {Path(s).suffix for s in sources}
    html_doc = next(d for d in qa.index.documents if d.source.endswith(".html"))
    assert html_doc.title.startswith("Déchets") and "<script" not in html_doc.text


def test_second_corpus_quality_does_not_regress(run):
    _, out = run
    assert_levels(out["summary"], {"faithfulness": 1.0, "hit@5": 0.80, "answer_accuracy": 0.50,
                                   "abstention_off_topic": 0.75}, {"false_abstention": 0.10})


def test_a_sentence_naming_only_other_weekdays_does_not_answer(run):
    """Asked about Thursdays (in English), the engine quotes the sentence that gives Thursday's hours
    ("le jeudi"), not one about Saturdays; without the penalty for other dates it would."""
    qa, _ = run
    question = "Until what time is the town hall open on Thursdays?"
    query = qa.retriever.query(question)
    hits = qa.retriever.search(query)
    unpenalised = Extractor(qa.index, dataclasses.replace(qa.extractor.settings, w_other_date=0.0)).extract(hits, query)
    assert "jeudi" not in qa.index.documents[unpenalised.doc].text[unpenalised.start : unpenalised.end]
    result = qa.ask(question)
    assert not result.abstained and "jeudi" in result.answer.quote and "19 h 00" in result.answer.quote


@pytest.fixture(scope="module")
def faq_run(tmp_path_factory, embedder):
    return _evaluate("faq", tmp_path_factory, embedder)[1]


def test_faq_portal_meets_the_generality_targets(faq_run):
    # The bar for a few hundred FAQ pages with paraphrased questions: the right page first cited
    # in 60 % of cases, among the first five passages in 85 %. Near-duplicate pages make it hard.
    assert_levels(faq_run["summary"], {"faithfulness": 1.0, "citation_accuracy": 0.60, "hit@5": 0.85,
                                       "abstention_off_topic": 0.75, "answer_accuracy": 0.50},
                  {"false_abstention": 0.06})


def test_list_items_answer_like_sentences(faq_run):
    """Portal pages give conditions, amounts and deadlines as bulleted lists ("- né en 1963 : 62 ans et
    9 mois ;"): an item is a complete answer, not a fragment. Before items were exempted from the
    fragment penalty, 1 right quote of the set was one; now 7 are."""
    items = [r for r in faq_run["questions"] if r["correct"] and r["answer"] and r["answer"]["quote"].startswith("- ")]
    assert len(items) >= 5


def test_a_sentence_opening_a_list_is_quoted_with_the_list(faq_run):
    """"Depuis 2026, l'ACRE est réservée à certains publics :" says nothing alone: the quote takes in
    the items after it (4 quotes of the set ended with a colon before)."""
    quotes = [r["answer"]["quote"] for r in faq_run["questions"] if r["answer"]]
    assert not [q for q in quotes if q.rstrip().endswith(":")]
    assert sum(": - " in q for q in quotes) >= 3  # the items follow (the line ends read as spaces)


def test_the_short_answer_to_an_amount_query_is_in_the_unit_named(faq_run):
    """"prix passeport adulte" is answered first by a sentence holding a price, and only a price is
    highlighted: never the "5 ans" of validity the same page gives."""
    texts = {item.id: item.question for item in load_gold(DATA / "gold_faq.jsonl")}
    shown = [(texts[r["id"]], r["answer"]["short_answer"]) for r in faq_run["questions"]
             if r["answer"] and r["answer"]["short_answer"] and answer_type(texts[r["id"]]) == "amount"]
    assert len(shown) >= 5
    for question, short in shown:
        if re.search(r"\b(prix|montant|cout)\b", fold(question)):
            assert re.search(r"€|\beuros?\b", short), (question, short)


def test_a_question_heading_is_never_the_answer(faq_run):
    # FAQ pages head each answer with its question, which resembles the user's more than any answer
    # does; the quote is then the answer that follows it. Before, 9 of the 230 quotes were questions.
    quotes = [r["answer"]["quote"] for r in faq_run["questions"] if r["answer"]]
    assert len(quotes) >= 150
    assert not [q for q in quotes if q.rstrip().endswith("?")]
