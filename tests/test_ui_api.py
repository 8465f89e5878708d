"""The web app's API (``/ask`` through gradio_client, as design.md promises) and its HTML rendering."""

import html
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from csto_qa import ui
from csto_qa.load import text_layer
from csto_qa.types import Document, OffsetMap

from conftest import CORPUS, assert_cited

MARKUP = "<script>alert(1)</script><b>x</b>"


@pytest.fixture(scope="session")
def client(app_url):
    return Client(app_url, verbose=False)


def _docs(qa):
    return {d.source: d for d in qa.index.documents}


def test_only_ask_and_chat_are_public(client):
    assert list(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == ["/ask", "/chat"]


def test_french_answer_with_citation(client, qa):
    question = "Où se tiendra le prochain sommet de l'OTSC ?"
    r = client.predict(question, api_name="/ask")
    assert r["lang"] == "fr" and r["abstained"] is False
    a = r["answer"]
    assert a["quote"].strip()
    assert a["source"] in _docs(qa)
    assert 1 <= a["line_start"] <= a["line_end"]
    assert_cited(CORPUS, a)
    assert r["passages"] and all(p["source"] in _docs(qa) for p in r["passages"])
    # exactly the object of `ask --json`, apart from the timings
    expected = qa.ask(question).to_dict()
    assert r.keys() == expected.keys()
    assert {k: v for k, v in r.items() if k != "timings_ms"} == {k: v for k, v in expected.items() if k != "timings_ms"}


def test_english_question_gets_its_french_quote(client):
    r = client.predict("Who replaced Imangali Tasmagambetov as CSTO secretary general?", api_name="/ask")
    assert r["lang"] == "en" and not r["abstained"]
    assert "Masadykov" in r["answer"]["quote"]
    assert_cited(CORPUS, r["answer"])


def test_abstention(client):
    r = client.predict("What is the boiling point of water at sea level?", api_name="/ask")
    assert r["abstained"] is True
    assert r["answer"] is None
    assert r["lang"] == "en"


def test_empty_question_is_an_error(client):
    with pytest.raises(AppError) as err:
        client.predict("   ", api_name="/ask")
    message = str(err.value)
    assert "empty question" in message and "\n" not in message and "Traceback" not in message


def test_concurrent_questions_each_get_their_own_answer(app_url, qa):
    """Eight questions at once (two engine slots): each gets the answer it gets alone, quote and
    passages included, or the same abstention."""
    questions = ["Combien de soldats ont été déployés au Kazakhstan en 2022 ?",
                 "Où se tiendra le prochain sommet de l'OTSC ?", "What is the boiling point of water?"] * 3
    alone = {q: qa.ask(q).to_dict() for q in set(questions)}
    assert not alone[questions[0]]["abstained"] and "2500" in alone[questions[0]]["answer"]["quote"]
    assert alone[questions[2]]["abstained"]
    with ThreadPoolExecutor(len(questions)) as pool:
        results = list(pool.map(lambda q: Client(app_url, verbose=False).predict(q, api_name="/ask"), questions))
    for q, r in zip(questions, results):
        assert {k: v for k, v in r.items() if k != "timings_ms"} == {k: v for k, v in alone[q].items()
                                                                   if k != "timings_ms"}


def _result_with_markup() -> tuple[dict, Document]:
    text = f"Intro {MARKUP} then the quoted {MARKUP} sentence. Tail & more."
    start = text.index("the quoted")
    end = text.index(" Tail")
    quote = text[start:end]
    doc = Document(source=f"{MARKUP}.txt", title=f"Title {MARKUP}", text=text, lang="en", sha256="0",
                   starts=OffsetMap((0,), (0,)), ends=OffsetMap((0,), (1,)), line_starts=(0,), stored=text)
    answer = {"quote": quote, "short_answer": "<b>x</b>", "source": doc.source, "title": doc.title,
              "start": start, "end": end, "line_start": 1, "line_end": 1, "score": 1.0}
    passage = {"rank": 1, "source": doc.source, "title": doc.title, "text": text, "start": 0, "end": len(text),
               "line_start": 1, "line_end": 1, "score": 0.5}
    result = {"question": f"Why {MARKUP}?", "lang": "en", "abstained": False, "answer": answer,
              "passages": [passage], "message": "According to the sources:", "notice": MARKUP,
              "timings_ms": {"total": 1.0}}
    return result, doc


def _view(doc):
    return text_layer(doc.stored, doc.format)[0]


def _assert_inert(page: str) -> None:
    assert "<script" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;b&gt;x&lt;/b&gt;" in page


def test_rendering_escapes_markup():
    result, doc = _result_with_markup()
    history = [{"question": result["question"], "status": "done", "result": result}]
    abstained = dict(result, abstained=True, answer=None)
    pages = [
        ui.render_chat(history, "en"),
        ui.render_chat([dict(history[0], result=abstained)], "en"),
        ui.render_chat([{"question": MARKUP, "status": "pending", "result": None}], "fr"),
        ui.render_chat([{"question": MARKUP, "status": "error", "result": None, "error": MARKUP}], "en"),
        ui.render_sources(0, result),
        ui.render_sources(0, abstained),
        ui.render_document(doc, _view(doc), result, 0),
        ui.render_document(doc, _view(doc), result, 1),
    ]
    for page in pages:
        _assert_inert(page)


def test_rendering_marks_quote_short_answer_and_citation():
    result, doc = _result_with_markup()
    chat = ui.render_chat([{"question": result["question"], "status": "done", "result": result}], "en")
    assert 'class="short">&lt;b&gt;x&lt;/b&gt;</mark>' in chat
    assert re.search(r'data-act="show_sources" data-turn="0" data-rank="1"[^>]*>\[1\]</button>', chat)
    assert 'data-act="open_doc" data-turn="0" data-rank="0"' in chat
    sources = ui.render_sources(0, result)
    quoted = "".join(re.findall(r'<mark class="quote">(.*?)</mark>', sources))
    assert quoted.startswith("the quoted ")
    viewer = ui.render_document(doc, _view(doc), result, 0)
    assert viewer.index("data-focus") < viewer.index('<mark class="quote">the quoted')


def test_highlight_overlapping_spans_and_focus():
    out = ui.highlight("abcdef<g", [(1, 5, "psg"), (3, 10, "quote")], focus=3)
    assert out == ('a<mark class="psg">bc</mark><span data-focus=""></span><mark class="psg quote">de</mark>'
                   '<mark class="quote">f&lt;g</mark>')


def test_abstention_looks_different_and_speaks_the_question_language():
    result, _ = _result_with_markup()
    fr = dict(result, lang="fr", abstained=True, answer=None, message="Les documents ne permettent pas de répondre.")
    chat = ui.render_chat([{"question": "q", "status": "done", "result": fr}], "en")
    assert "cq-abstain" in chat and "cq-answer" not in chat
    assert "Pas dans les sources" in chat and "Passages proches (pas une réponse)" in chat
    assert "Aucun ne répond" in ui.render_sources(0, fr)


def test_example_questions_come_from_the_served_corpus(tmp_path):
    """The page's examples are dev questions of a gold set beside the corpus whose sources it holds;
    a folder of the user's own gets none (no CSTO question over someone's documents)."""
    from csto_qa.evaluate import load_gold

    from conftest import DATA, ROOT

    csto = ui.examples_for(CORPUS, {p.name for p in CORPUS.iterdir()})
    dev = {g.question for g in load_gold(ROOT / "gold" / "gold_v1.jsonl") if g.split == "dev"}
    assert len(csto) == 5 and set(csto) <= dev
    fr2 = ui.examples_for(DATA / "corpus_fr2", {p.name for p in (DATA / "corpus_fr2").iterdir()})
    assert fr2 and set(fr2) <= {g.question for g in load_gold(DATA / "gold_fr2.jsonl")}
    own = tmp_path / "mes-documents"
    own.mkdir()
    (own / "note.txt").write_text("Une note.", encoding="utf-8")
    assert ui.examples_for(own, {"note.txt"}) == []


def _shown(page: str) -> str:
    """The text a reader sees in rendered HTML: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def _chat(result: dict) -> str:
    return ui.render_chat([{"question": result["question"], "status": "done", "result": result}], "en")


def test_an_answer_shows_the_readers_confidence_in_the_questions_language(qa):
    """The label from a real result of the engine, with the confidence a learned reader gives it;
    none while the engine gives none."""
    fr = qa.ask("Où se tiendra le prochain sommet de l'OTSC ?").to_dict()
    en = qa.ask("Who replaced Imangali Tasmagambetov as CSTO secretary general?").to_dict()
    assert not fr["abstained"] and not en["abstained"] and (fr["lang"], en["lang"]) == ("fr", "en")
    if fr["answer"]["confidence"] is None:
        assert "cq-conf" not in _chat(fr)
    for value, words in [(0.87, "confiance élevée (87\u00a0%)"), (0.8, "confiance élevée (80\u00a0%)"),
                         (0.62, "confiance moyenne (62\u00a0%)"), (0.41, "confiance faible (41\u00a0%)")]:
        fr["answer"]["confidence"] = fr["confidence"] = value
        lead = re.search(r'<div class="cq-lead">(.*?)</div>', _chat(fr)).group(1)
        assert _shown(lead) == f"D'après les sources :{words}"
    en["answer"]["confidence"] = en["confidence"] = 0.87
    chat = _chat(en)
    assert 'class="cq-conf cq-conf-high"' in chat and "high confidence (87%)" in _shown(chat)
    assert "the probability that this sentence answers" in chat


def test_a_decline_says_why_in_the_questions_language(qa):
    fr = qa.ask("Quel est le point d'ébullition de l'eau au niveau de la mer ?").to_dict()
    en = qa.ask("What is the boiling point of water at sea level?").to_dict()
    assert fr["abstained"] and en["abstained"] and (fr["lang"], en["lang"]) == ("fr", "en")
    if fr["reason"] is None:  # an engine that gives no reason: its own message
        assert fr["message"] in _shown(_chat(fr))
    unsure = dict(fr, reason="unsure", confidence=0.23)
    shown = _shown(_chat(unsure))
    assert ("Les documents ne permettent pas de répondre : la phrase la plus proche n'y répond probablement pas "
            "(confiance 23\u00a0%).") in shown
    assert "Pas dans les sources" in shown and "Passages proches (pas une réponse)" in shown
    assert "(confiance" not in _shown(_chat(dict(unsure, confidence=None)))
    assert ("the closest sentence probably does not answer the question (confidence 23%)."
            in _shown(_chat(dict(en, reason="unsure", confidence=0.23))))
    nothing = dict(fr, reason="no_passage", confidence=None, passages=[])
    assert "Rien de pertinent n'a été trouvé dans les documents." in _shown(_chat(nothing))
    assert 'data-act="show_sources"' not in _chat(nothing)  # no related reading to offer
    assert "Nothing relevant was found in the documents." in _shown(_chat(dict(en, reason="no_passage", passages=[])))


def test_every_language_has_every_string():
    """One table per language: the same keys, nested ones too, with the same placeholders."""
    def shape(value):
        if isinstance(value, dict):
            return {k: shape(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [shape(v) for v in value]
        return sorted(re.findall(r"\{(\w+)", value))
    assert shape(ui.TEXT["fr"]) == shape(ui.TEXT["en"])


def test_the_documents_panel_speaks_french(qa, tmp_path):
    """The panel of the served corpus as a French page shows it, its status messages, and a refusal."""
    from csto_qa.library import EditError, Library, Progress, safe_name

    panel = ui.render_documents(*Library(qa, CORPUS, qa.index.path).documents(), "fr", False)
    headers = [_shown(h) for h in re.findall(r"<th>(.*?)</th>", panel)]
    assert headers == ["document", "format", "taille", "pages / paragraphes / lignes"]
    shown = _shown(panel)
    assert "Ce serveur est en lecture seule" in shown and "read-only" not in shown
    assert re.search(r"\d+,\d\u00a0ko", shown) and re.search(r"\d+ lignes", shown) and "texte" in shown
    assert "kB" not in shown and " lines" not in shown
    assert _shown(ui.render_progress(Progress(running=True, done=3, total=8), "fr")) == \
        "Indexation : 3 textes sur 8 vectorisés"
    assert _shown(ui.render_progress(Progress(outcome="ready", files=6, embedded=1), "fr")) == \
        "Index prêt : 6 documents (vectorisés cette fois : 1)"
    assert "L'index précédent reste en service" in _shown(ui.render_progress(
        Progress(outcome="failed", error="OSError: disk full"), "fr"))
    assert ui.render_progress(Progress(), "fr") == ""
    with pytest.raises(EditError) as refused:
        safe_name("programme.exe", set())
    assert ui.edit_text(refused.value, "fr").startswith(
        "« programme.exe » : type de fichier « .exe » non pris en charge")
    assert ui.edit_text(refused.value, "en").startswith("“programme.exe”: unsupported file type “.exe”")


def test_numbers_in_the_pages_language():
    assert ui._number("fr", 12345.67, 1) == "12\u202f345,7" and ui._number("en", 12345.67, 1) == "12,345.7"
