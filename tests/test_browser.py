"""One real browser session: ask with Enter, read the cited answer, open the source document at the quote."""

import os

import pytest


CHROMIUM = "/usr/bin/chromium"
# No GPU, no sandbox (root in a container), and no calls home: the machines here are offline.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
QUESTION = "Où se tiendra le prochain sommet de l'OTSC ?"


@pytest.fixture()
def open_page():
    """Opens a page in a browser whose language is ``locale``: the Accept-Language the app reads."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is absent (Debian packages chromium and chromium-driver)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

        def new(locale: str):
            page = browser.new_page(viewport={"width": 1400, "height": 900}, locale=locale)
            page.set_default_timeout(30_000)
            return page

        yield new
        browser.close()


@pytest.fixture()
def page(open_page):
    return open_page("en-US")


def test_ask_read_and_open_the_source(page, app_url, qa, tmp_path):
    expected = qa.ask(QUESTION).answer
    assert expected is not None, "the engine no longer answers the example question"

    page.goto(app_url)
    box = page.locator("#question textarea")
    box.wait_for()
    assert "English or French" in box.get_attribute("placeholder")

    box.fill(QUESTION)
    box.press("Enter")
    answer = page.locator("#chat .cq-answer")
    answer.wait_for()
    assert " ".join(expected.quote.split()) in " ".join(answer.locator(".cq-quote").inner_text().split())
    assert answer.locator("button.cq-cite").count() >= 1
    assert answer.locator("button.cq-cite").first.inner_text().startswith("[")
    assert expected.source in answer.locator(".cq-ref").inner_text()
    # the page now speaks the question's language
    assert "Posez" in box.get_attribute("placeholder")

    sources = page.locator("#sources")
    assert sources.locator(".cq-card").count() == len(qa.ask(QUESTION).passages)
    assert sources.locator(".cq-card mark.quote").count() >= 1

    answer.locator("button[data-act=open_doc]").click()
    viewer = page.locator("#viewer")
    viewer.locator(".cq-doc mark.quote").first.wait_for()
    assert expected.source in viewer.locator(".cq-panel-head").inner_text()
    marked = "".join(m.inner_text() for m in viewer.locator(".cq-doc mark.quote").all())
    assert " ".join(marked.split()) == " ".join(expected.quote.split())
    # scrolled to the quote: it lies inside the visible part of the viewer's scroll box
    page.wait_for_function("""() => {
        const box = document.querySelector('#viewer .cq-scroll').getBoundingClientRect();
        const mark = document.querySelector('#viewer .cq-doc mark.quote').getBoundingClientRect();
        return mark.top >= box.top && mark.bottom <= box.bottom;
    }""")
    page.screenshot(path=tmp_path / "answer.png")

    # an abstention looks different and is not an answer
    box.fill("What is the boiling point of water at sea level?")
    box.press("Enter")
    abstain = page.locator("#chat .cq-abstain")
    abstain.wait_for()
    assert "Not in the sources" in abstain.inner_text()
    assert "not an answer" in abstain.locator("button[data-act=show_sources]").inner_text()
    assert "English" in box.get_attribute("placeholder")
    page.screenshot(path=tmp_path / "abstention.png")

    # markup typed by the user is shown as text, never run
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    markup = "<b>bold</b><img src=x onerror=alert(1)> CSTO members?"
    box.fill(markup)
    box.press("Enter")
    page.wait_for_function("() => document.querySelectorAll('#chat .cq-turn').length === 3"
                           " && !document.querySelector('#chat .cq-pending')")
    question = page.locator("#chat .cq-q").last
    assert markup in question.inner_text()
    assert page.locator("#chat b, #chat img, #sources img").count() == 0
    assert dialogs == []


def test_a_french_page_speaks_french_everywhere(open_page, app_url, qa, tmp_path):
    """A browser that prefers French gets the page in French, Documents panel included, and an
    answer with the reader's confidence when it gives one."""
    from csto_qa import ui

    page = open_page("fr-FR")
    page.goto(app_url)
    box = page.locator("#question textarea")
    box.wait_for()
    page.wait_for_function("() => document.querySelector('#question textarea').placeholder.startsWith('Posez')")
    page.get_by_role("tab", name="Documents").click()
    panel = page.locator("#documents")
    panel.locator("th").first.wait_for()
    assert [th.inner_text().strip() for th in panel.locator("th").all()] == [
        "document", "format", "taille", "pages / paragraphes / lignes"]
    assert "Ce serveur est en lecture seule" in panel.inner_text()
    assert " ko" in panel.inner_text().replace("\u00a0", " ") and "lignes" in panel.inner_text()
    assert "kB" not in panel.inner_text() and "read-only" not in panel.inner_text()

    expected = qa.ask(QUESTION).to_dict()
    box.fill(QUESTION)
    box.press("Enter")
    answer = page.locator("#chat .cq-answer")
    answer.wait_for()
    assert answer.locator(".cq-lead").inner_text().startswith("D'après les sources")
    label = ui.confidence_label("fr", expected["answer"]["confidence"])
    assert answer.locator(".cq-conf").count() == (1 if label else 0)
    page.screenshot(path=tmp_path / "answer-fr.png")
    # an English question turns the page, Documents panel included, into English
    box.fill("Where was the 2025 CSTO summit held?")
    box.press("Enter")
    page.wait_for_function("() => document.querySelectorAll('#chat .cq-turn').length === 2"
                           " && !document.querySelector('#chat .cq-pending')")
    page.get_by_role("tab", name="Documents").click()
    page.wait_for_function("() => document.querySelectorAll('#documents th')[2].innerText.trim() === 'size'")
    assert "This server is read-only" in panel.inner_text() and " kB" in panel.inner_text()


def test_a_follow_up_is_understood_with_the_conversation(page, app_url):
    page.goto(app_url)
    box = page.locator("#question textarea")
    box.wait_for()
    box.fill("Quand l'OTSC a-t-elle été fondée ?")
    box.press("Enter")
    page.locator("#chat .cq-answer").first.wait_for()
    box.fill("Et qui en est le secrétaire général ?")
    box.press("Enter")
    page.wait_for_function("() => document.querySelectorAll('#chat .cq-answer').length === 2")
    second = page.locator("#chat .cq-turn").nth(1)
    context = second.locator(".cq-context")
    assert "compris avec : OTSC" in context.inner_text() and "de votre question 1" in context.inner_text()
    assert "Masadykov" in second.locator(".cq-quote").inner_text()
    # asked again without the conversation: a third turn, with no context line
    context.locator("button[data-act=ask_alone]").click()
    page.wait_for_function("() => document.querySelectorAll('#chat .cq-turn').length === 3"
                           " && !document.querySelector('#chat .cq-pending')")
    assert page.locator("#chat .cq-turn").nth(2).locator(".cq-context").count() == 0
    page.locator("#new-chat").click()
    page.wait_for_function("() => document.querySelectorAll('#chat .cq-turn').length === 0")


@pytest.fixture()
def editable_app(tmp_path, embedder):
    """A server started with --allow-edits over a copy of the second corpus."""
    from csto_qa import QA, ui
    from csto_qa.library import Library

    from conftest import DATA

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for p in (DATA / "corpus_fr2").iterdir():
        (corpus / p.name).write_bytes(p.read_bytes())
    qa = QA.open(corpus, tmp_path / "index", embedder=embedder, progress=False, log=lambda *_: None)
    library = Library(qa, corpus, tmp_path / "index", allow_edits=True, log=lambda *_: None)
    app = ui.build_app(qa, log=lambda *_: None, corpus=corpus, library=library)
    _, url, _ = ui.launch(app, "127.0.0.1", None, block=False)
    yield url, library
    app.close()


def _ask(page, question: str):
    box = page.locator("#question textarea")
    n = page.locator("#chat .cq-turn").count()
    box.fill(question)
    box.press("Enter")
    page.wait_for_function(f"() => document.querySelectorAll('#chat .cq-turn').length === {n + 1}"
                           " && !document.querySelector('#chat .cq-pending')", timeout=60_000)
    return page.locator("#chat .cq-turn").nth(n)


def test_documents_added_and_removed_from_the_browser(open_page, editable_app, tmp_path):
    from documents import make_docx, make_odt, make_pdf

    url, library = editable_app
    files = [make_docx(tmp_path / "observatoire.docx", "Observatoire", [
                 ("h", "Observatoire astronomique"), ("p", "La grande coupole de l'observatoire mesure 14 mètres.")]),
             make_odt(tmp_path / "herbier.odt", "Herbier", [
                 ("h", "Herbier municipal"), ("p", "L'herbier conserve 3 200 planches de fougères séchées.")]),
             make_pdf(tmp_path / "planetarium.pdf", "Planétarium", [["Planétarium"],
                                                                   ["Le planétarium compte 84 fauteuils inclinables."]])]
    questions = {"Combien mesure la grande coupole de l'observatoire ?": ("observatoire.docx", "paragraphe 2"),
                 "Combien de planches de fougères l'herbier conserve-t-il ?": ("herbier.odt", "paragraphe 2"),
                 "Combien de fauteuils compte le planétarium ?": ("planetarium.pdf", "p. 2")}
    page = open_page("fr-FR")  # the panel's labels and status messages in French
    ready = f"Index prêt : {len(library.qa.index.documents) + len(files)} documents"
    page.goto(url)
    page.get_by_role("tab", name="Documents").click()
    page.locator("#upload").get_by_text("Ajouter des documents").wait_for()
    page.locator("#upload input[type=file]").set_input_files([str(f) for f in files])
    page.locator("#indexing").get_by_text("Indexation").or_(page.locator("#indexing").get_by_text("Index prêt")) \
        .first.wait_for(timeout=60_000)
    page.locator("#indexing").get_by_text(ready).wait_for(timeout=300_000)
    for f in files:
        page.locator(f"#documents button[data-name='{f.name}']").wait_for()
    page.screenshot(path=tmp_path / "documents.png")
    for question, (source, where) in questions.items():
        turn = _ask(page, question)
        assert turn.locator(".cq-answer").count() == 1, question
        assert source in turn.locator(".cq-ref").inner_text() and where in turn.locator(".cq-ref").inner_text()
    page.get_by_role("tab", name="Documents").click()
    for f in files:
        page.locator(f"#documents button[data-name='{f.name}']").click()
        page.locator(f"#documents button[data-name='{f.name}']").wait_for(state="detached", timeout=300_000)
    while library.progress.running:
        page.wait_for_timeout(200)
    for question, (source, _) in questions.items():
        turn = _ask(page, question)  # declined, or at most a low-confidence reading of the rest
        refs = " ".join(turn.locator(".cq-ref").all_inner_texts())
        assert source not in refs, (question, refs)
