"""Translation (Apertium, by pivot through Spanish): real sentences both ways, a dead or hung pipeline,
and the engine with and without it. Apertium is installed by the project (make setup, CI); where it is
not, these tests are skipped (failed in CI: conftest.require_apertium) and the engine answers
untranslated."""

from __future__ import annotations

import logging
import os
import signal
import time

import numpy as np
import pytest

from csto_qa import QA, translate
from csto_qa.index import IndexProblem, open_index
from csto_qa.split import SplitSettings
from csto_qa.translate.apertium import ApertiumTranslator

from conftest import CORPUS, SETS, assert_cited, require_apertium


@pytest.fixture(scope="module", autouse=True)
def _needs_apertium():
    require_apertium()


@pytest.fixture()
def apertium():
    translator = ApertiumTranslator()
    yield translator
    translator.close()


def test_english_to_french_and_back(apertium):
    t = apertium.translate("Which French minister announced the sale of radars and missiles to Armenia?", "en", "fr")
    assert (t.source, t.target) == ("en", "fr")
    assert "ministre français" in t.text and "radars" in t.text and "missiles" in t.text
    back = apertium.translate("Le prochain sommet de l'OTSC se tiendra à Moscou le 11 novembre 2026.", "fr", "en")
    assert "summit" in back.text and "Moscow" in back.text and "2026" in back.text
    # the stream format's own characters and line ends in a text do not derail the pipeline
    odd = apertium.translate("Where is the summit? [see ^note$ / 2] \n and when?", "en", "fr")
    assert odd and "note" in odd.text and "^" not in odd.text
    assert apertium.translate("  \n ", "en", "fr") is None


def test_a_killed_pipeline_is_restarted(apertium):
    assert apertium.translate("How many members does the alliance have?", "en", "fr")
    process = apertium._pipelines[("en", "fr")].process
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    again = apertium.translate("When was the treaty signed?", "en", "fr")
    assert again and "traité" in again.text


def test_a_hung_pipeline_costs_one_untranslated_answer_and_a_log_line(qa, caplog):
    """The pipeline stops answering (SIGSTOP): the question is answered as asked, after the time
    limit, with a warning in the log; the next question gets a new pipeline."""
    translator = ApertiumTranslator(timeout=0.5)
    engine = QA(qa.index, qa.embedder, qa.extractor.settings, translator)
    try:
        assert engine.ask("Where was the 2025 CSTO summit held?").translation is not None
        os.killpg(translator._pipelines[("en", "fr")].process.pid, signal.SIGSTOP)
        with caplog.at_level(logging.WARNING, logger="csto_qa.translate"):
            t = time.perf_counter()
            result = engine.ask("How many troops were deployed to Kazakhstan in January 2022?")
            elapsed = time.perf_counter() - t
        assert result.translation is None and elapsed < 3
        assert not result.abstained and "2500 soldats" in result.answer.quote
        assert any("searched as asked" in r.getMessage() for r in caplog.records)
        assert engine.ask("When does the Russian presidency begin?").translation is not None
    finally:
        translator.close()


def test_without_a_translator_the_engine_answers_untranslated(qa):
    plain = QA(qa.index, qa.embedder, qa.extractor.settings, translate.create("none"))
    result = plain.ask("How many troops were deployed to Kazakhstan in January 2022?")
    assert result.translation is None and result.to_dict()["translation"] is None
    assert not result.abstained and "2500 soldats" in result.answer.quote
    assert_cited(CORPUS, result.answer)


def test_an_english_question_is_searched_in_french_too(qa):
    result = qa.ask("What did Putin recommend that member states opt for?")
    assert result.to_dict()["translation"]["from"] == "en" and result.translation.target == "fr"
    assert "recommandé aux Etats membres d’opter pour des armes russes" in result.answer.quote
    assert_cited(CORPUS, result.answer)
    french = qa.ask("Qu'a recommandé Poutine aux États membres ?")
    assert french.translation is None  # already in the documents' language


def test_a_french_question_on_the_english_corpus(open_qa):
    qa = open_qa("en")
    assert qa.index.lang == "en"
    result = qa.ask("Combien coûte l'aller-retour en ferry pour un adulte ?")
    assert result.lang == "fr" and result.translation.target == "en"
    assert not result.abstained
    assert_cited(SETS["en"][0], result.answer)


def test_off_topic_questions_stay_declined_when_translated(qa):
    for question in ("Who won the 2018 FIFA World Cup?", "How do I reset my Wi-Fi router to factory settings?"):
        result = qa.ask(question)
        assert result.translation is not None and result.abstained, question


def test_sentences_are_translated_at_build_time(qa):
    """The index holds every sentence translated into English after the sentence before it, embedded:
    the English question is closer to the translation of the sentence that answers it than to its
    French original in context, and the engine quotes it. An index built with translation is stale
    for an engine without it."""
    index = qa.index
    assert index.manifest["translation"] == "apertium"
    assert index.translated_vectors.shape == (len(index.sentences), qa.embedder.dim)
    question = "What did Putin recommend that member states opt for?"
    answer = next(i for i in range(len(index.sentences)) if "opter pour des armes russes" in index.sentence_text(i))
    q = qa.embedder.embed_queries([question])[0]
    translated = float(index.translated_vectors[answer].astype(np.float32) @ q)
    assert translated > float(index.context_vectors.reconstruct(answer) @ q) + 0.02
    assert index.sentence_text(answer) in qa.ask(question).answer.quote
    with pytest.raises(IndexProblem, match="translation is now off"):
        open_index(index.path, CORPUS, qa.embedder.identity, SplitSettings(), translated=None)
