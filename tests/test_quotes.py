"""Every quote is its file's own words: ``answer.quote`` and each passage's ``text`` are the stored
file's text at ``[start:end]``, with only entities decoded, whitespace runs folded to one space and a
word hyphenated across a line end joined (and an HTML page's markup left out). Checked here against
the files as this test reads them from disk itself, not through the engine's loader."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csto_qa import cite
from csto_qa.load import load_file
from csto_qa.split import sentence_spans

from conftest import CORPUS, SETS

_BLOCK = r"p|div|br|li|tr|td|th|h[1-6]|section|article|header|footer|blockquote|table|ul|ol|title|pre|hr|dd|dt"


def file_text(path: Path) -> str:
    """The stored text that offsets index: the file's characters (the corpora here are UTF-8)."""
    return path.read_bytes().decode("utf-8-sig")


def reads_as(stored: str, start: int, end: int, suffix: str) -> str:
    """The contract, written out again independently of the engine."""
    span = stored[start:end]
    if suffix in (".html", ".htm"):
        span = re.sub(r"(?is)<(script|style)\b.*?</\1\s*>", "", span)
        span = re.sub(rf"(?i)</?(?:{_BLOCK})\b[^>]*>", " ", span)
        span = re.sub(r"<[^>]*>", "", span)
    span = html.unescape(span)
    span = re.sub(r"(?<=\w)-[ \t]*\r?\n[ \t]*(?=[a-zà-öø-ÿ])", "", span)
    return " ".join(span.split())


@pytest.mark.parametrize("name", list(SETS))
def test_every_quote_of_every_gold_set_is_its_files_own_words(gold_runs, name):
    corpus, _ = SETS[name]
    records = gold_runs(name)["questions"]
    answered = [r for r in records if r["answer"]]
    assert len(answered) >= 0.6 * len(records)
    texts: dict[str, str] = {}
    for r in answered:
        for cited in [r["answer"], *r["passages"]]:
            source = cited["source"]
            texts.setdefault(source, file_text(corpus / source))
            quoted = cited.get("quote", cited.get("text"))
            expected = reads_as(texts[source], cited["start"], cited["end"], Path(source).suffix)
            assert quoted == expected, (name, r["id"], source)
    assert gold_runs(name)["summary"]["faithfulness"] == 1.0


def test_a_footnote_call_stays_in_the_quote_and_the_old_tolerant_check_fails(open_qa):
    """The study (text extracted from a PDF) glues footnote calls to words: "militaire1." The search
    text drops them; the quote keeps them. A quote without the call is no longer accepted."""
    qa = open_qa("csto")
    doc = next(d for d in qa.index.documents if re.search(r"[a-z]\d{1,2}\.", d.stored))
    call = re.search(r"(?<=[a-zé])(\d{1,2})\.\s", doc.stored)
    start = next(s for s, e in sentence_spans(doc.text) if doc.raw_span(s, e)[1] >= call.end() - 1
                 and doc.raw_span(s, e)[0] <= call.start())
    end = next(e for s, e in sentence_spans(doc.text) if s == start)
    raw_start, raw_end = doc.raw_span(start, end)
    answer = cite.answer(doc, start, end, 0.0, None)
    stored = file_text(CORPUS / doc.source)
    assert call.group(0).strip() in answer.quote  # "militaire1." as the file has it
    assert cite.verify(answer.quote, stored, raw_start, raw_end, doc.format)
    dropped = " ".join(doc.text[start:end].split())  # the loaded text, footnote call left out
    assert dropped != answer.quote
    assert not cite.verify(dropped, stored, raw_start, raw_end, doc.format)


def test_any_other_change_fails_the_check():
    stored = "Le traité&#039;OTSC est signé\nà Moscou le 15 mai 1992, rappro-\nchement1. Fin"
    quote = cite.reading(stored, 0, len(stored), "text")
    assert quote == "Le traité'OTSC est signé à Moscou le 15 mai 1992, rapprochement1. Fin"
    assert cite.verify(quote, stored, 0, len(stored), "text")
    for wrong in [quote.replace("1.", "."), quote.replace("15 mai", "15 Mai"), quote.replace("'", "’"),
                  quote + " ", quote.replace("signé à", "signé  à"), quote[:-4]]:
        assert not cite.verify(wrong, stored, 0, len(stored), "text"), wrong


# --- documents built by hypothesis ----------------------------------------------------------------

WORDS = st.sampled_from(["sommet", "traité", "Moscou", "rapprochement", "l’Organisation", "militaire", "membres",
                         "sécurité", "collective", "2026", "Arménie", "coopération", "d'un", "exercice"])


@st.composite
def documents(draw) -> tuple[str, str]:
    """A file (its text, its suffix) with what loaders clean for search: footnote calls glued to
    words, entities, non-breaking spaces, boilerplate lines, hard wraps, words hyphenated at a line end."""
    paragraphs = []
    for _ in range(draw(st.integers(1, 4))):
        sentences = []
        for _ in range(draw(st.integers(1, 4))):
            words = draw(st.lists(WORDS, min_size=3, max_size=14))
            words = [w + str(draw(st.integers(1, 12))) if draw(st.booleans()) and w[-1].isalpha() and i == len(words) - 1
                     else w for i, w in enumerate(words)]
            words = [w.replace("'", draw(st.sampled_from(["'", "&#039;", "&rsquo;"]))) for w in words]
            sep = draw(st.sampled_from([" ", " ", "\u00a0", " &nbsp;"]))
            sentences.append(sep.join(words).capitalize() + ".")
        paragraphs.append(" ".join(sentences))
        if draw(st.booleans()):
            paragraphs.append(draw(st.sampled_from(["Publicité", "Je m'abonne", "Partager cette page"])))
    text = "\n\n".join(paragraphs)
    if draw(st.booleans()):  # hard-wrapped, as text extracted from a PDF, hyphenating some long words
        lines, line = [], ""
        for word in text.replace("\n\n", " \n\n ").split(" "):
            if word == "\n\n":
                lines.append(line.rstrip())
                line = ""
                continue
            if len(line) + len(word) > 60 and line:
                if len(word) > 8 and draw(st.booleans()) and word[:4].isalpha() and word[4].islower():
                    lines.append(line + word[:4] + "-")
                    word = word[4:]
                else:
                    lines.append(line.rstrip())
                line = ""
            line += word + " "
        lines.append(line.rstrip())
        text = "\n".join(lines)
    return text, draw(st.sampled_from([".txt", ".md"]))


@settings(max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow,
                                                                                 HealthCheck.function_scoped_fixture])
@given(documents())
def test_quotes_of_built_documents_are_their_files_own_words(tmp_path, document):
    text, suffix = document
    path = tmp_path / f"doc{suffix}"
    path.write_text(text, encoding="utf-8")
    doc = load_file(path, tmp_path)
    stored = file_text(path)
    for start, end in sentence_spans(doc.text):
        answer = cite.answer(doc, start, end, 0.0, None)
        assert answer.quote == reads_as(stored, answer.start, answer.end, suffix)
        assert cite.verify(answer.quote, stored, answer.start, answer.end, doc.format)
        # and it says what was searched: the sentence's words, give or take spaces and footnote calls
        assert re.sub(r"[\s\d]", "", answer.quote) == re.sub(r"[\s\d]", "", doc.text[start:end])
