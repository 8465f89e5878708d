"""Property tests (hypothesis): any question is answered with a verbatim, verifiable quote or an
abstention, never an error other than QuestionError; any file content is indexed or named as a problem,
never a crashed build. Real corpus, real default model; examples kept few so the file runs in seconds."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from csto_qa.evaluate import load_gold
from csto_qa.index import build, open_index
from csto_qa.load import stored_text
from csto_qa.qa import MAX_QUESTION_CHARS, QuestionError
from csto_qa.split import SplitSettings

from conftest import CORPUS, GOLD, assert_cited

# database=None: no .hypothesis/ folder in the shared tree; deadline=None: the engine's first call is slow
FAST = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
GOLD_QUESTIONS = [g.question for g in load_gold(GOLD)]


def check_result(qa, question: str) -> str:
    """The contract for one question: QuestionError, or a result whose every span is real."""
    try:
        result = qa.ask(question)
    except QuestionError as exc:
        assert str(exc) and "\n" not in str(exc)
        return "QuestionError"
    assert len(result.question) <= MAX_QUESTION_CHARS
    assert result.abstained == (result.answer is None)
    json.dumps(result.to_dict(), ensure_ascii=False).encode("utf-8")  # serialisable, no lone surrogates
    for cited in [result.answer, *result.passages] if result.answer else result.passages:
        assert_cited(CORPUS, cited)
    return "abstained" if result.abstained else "answered"


@settings(max_examples=60, **FAST)
@given(st.text())
@example("")
@example("\x00\x01\x1b[31m\u202e\ufeff")
@example("😀🎉 " * 5)
@example("Кто генеральный секретарь ОДКБ? ما هي منظمة معاهدة الأمن الجماعي؟ 集体安全条约组织是什么？")
@example("\ud800 Who leads the CSTO? \udfff")
@example("<script>alert(1)</script> Où se tiendra le prochain sommet ?")
@example("Quand " * 400)
def test_any_question_gives_a_verifiable_quote_or_abstains(qa, question):
    event(check_result(qa, question))


@settings(max_examples=40, **FAST)
@given(st.sampled_from(GOLD_QUESTIONS), st.text(max_size=12), st.text(max_size=12), st.integers(0, 200))
def test_gold_questions_with_noise_still_quote_verbatim(qa, question, noise, noise2, at):
    """Answerable questions with junk inserted: these do reach the quoting path most of the time."""
    at = min(at, len(question))
    event(check_result(qa, noise + question[:at] + noise2 + question[at:]))


# --- any file content ------------------------------------------------------------------------

SMALL = {
    "a.txt": "L'Organisation du traité de sécurité collective (OTSC) a été fondée en 2002. Son siège est à Moscou.\n",
    "b.md": "# Sommet\n\nLe sommet de 2025 s'est tenu à Bichkek, au Kirghizistan.\n",
}


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory, embedder):
    """Two short files and one shared index, so each example's build embeds only the random file."""
    root = tmp_path_factory.mktemp("small")
    corpus = root / "corpus"
    corpus.mkdir()
    for name, text in SMALL.items():
        (corpus / name).write_text(text, encoding="utf-8")
    build(corpus, root / "index", embedder, progress=False, log=lambda *_: None)
    return corpus, root / "index"


def _encoded(codec: str):
    return st.text(max_size=400).map(lambda t: t.encode(codec, errors="ignore"))


TEXT_SUFFIXES = st.sampled_from([".txt", ".md", ".html"])
CONTENTS = st.one_of(
    st.tuples(st.binary(max_size=600), TEXT_SUFFIXES),
    st.tuples(_encoded("utf-8"), TEXT_SUFFIXES),
    st.tuples(st.one_of(_encoded("utf-16"), _encoded("cp1252"), _encoded("cp1251")), TEXT_SUFFIXES),
    st.tuples(st.binary(max_size=300).map(lambda b: b"%PDF-1.4\n" + b), st.just(".pdf")),
    st.tuples(st.binary(max_size=50), st.sampled_from([".pdf", ".csv", ""])),
)


@settings(max_examples=60, **FAST)
@given(CONTENTS)
@example((b"", ".txt"))
@example((b"\x00" * 10, ".txt"))
@example(("<p>Le sommet &agrave; Minsk &foo; &amp</p>".encode(), ".html"))
@example(("# Titre\n\n**Le traité** [lien](http://x) ![img](y.png)".encode(), ".md"))
def test_any_file_content_is_indexed_or_named_as_a_problem(small_corpus, embedder, file):
    content, suffix = file
    corpus, index_dir = small_corpus
    for old in corpus.glob("random.*"):
        old.unlink()
    path = corpus / f"random{suffix}"
    path.write_bytes(content)
    messages: list[str] = []
    report = build(corpus, index_dir, embedder, progress=False, log=messages.append)
    index = open_index(index_dir, corpus, embedder.identity, SplitSettings())  # whole, and not stale
    sources = {d.source: d for d in index.documents}
    assert set(SMALL) <= set(sources)
    if path.name in report.problems:
        reason = report.problems[path.name]
        assert reason and any(path.name in m and reason in m for m in messages)
        assert not reason.startswith("could not be"), reason  # a loader or splitter bug, not a refusal
        assert path.name not in sources
        event(f"refused: {reason.split('(')[0].strip()}")
    else:
        event("indexed")
        doc = sources[path.name]
        assert any(ch.isalnum() for ch in doc.text)
        raw = stored_text(path)
        lines = raw.count("\n") + 1
        for start, end in ((0, len(doc.text)), (0, 1), (len(doc.text) // 2, len(doc.text))):
            raw_start, raw_end = doc.raw_span(start, end)
            assert 0 <= raw_start <= raw_end <= len(raw)
            first, last = doc.lines(raw_start, raw_end)
            assert 1 <= first <= last <= lines


@given(st.lists(st.integers(0, 5), max_size=60), st.integers(0, 70))
def test_top_k_by_partition_is_a_stable_sorts_first_k(values, n):
    """Scores with many ties (0 to 5): the order must be a stable sort's, ties in index order."""
    import numpy as np

    from csto_qa.retrieve import top

    scores = np.array(values, dtype=np.float32)
    assert top(scores, n).tolist() == np.argsort(-scores, kind="stable")[:n].tolist()
