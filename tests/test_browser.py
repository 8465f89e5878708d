"""One real browser session: ask with Enter, read the cited answer, open the source document at the quote."""

import os

import pytest


CHROMIUM = "/usr/bin/chromium"
# No GPU, no sandbox (root in a container), and no calls home: the machines here are offline.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
QUESTION = "Où se tiendra le prochain sommet de l'OTSC ?"




@pytest.fixture()
def page():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is absent (Debian packages chromium and chromium-driver)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900}, locale="en-US")
        page.set_default_timeout(30_000)
        yield page
        browser.close()


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
