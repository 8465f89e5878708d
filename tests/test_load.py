"""Loading the five real documents: clean text, true offsets back to the stored files and lines."""

from __future__ import annotations

import html
import random
import re

import pytest

from csto_qa.analyze import fold
from csto_qa.load import LoadError, corpus_files, load_file, stored_text

from conftest import CORPUS

FILES = sorted(p.name for p in CORPUS.iterdir() if p.suffix == ".txt")


@pytest.fixture(scope="module")
def docs():
    return {p.name: load_file(p, CORPUS) for p in corpus_files(CORPUS)}


def test_the_five_documents_load_with_titles(docs):
    assert sorted(docs) == FILES and len(FILES) == 5
    for doc in docs.values():
        assert doc.title.strip() and len(doc.title) <= 200
        assert doc.lang == "fr"


@pytest.mark.parametrize("name", FILES)
def test_every_span_maps_back_to_the_same_words_and_lines(docs, name):
    doc = docs[name]
    raw = stored_text(CORPUS / name)
    raw_lines = raw.split("\n")
    rng = random.Random(name)
    for _ in range(300):
        start = rng.randrange(len(doc.text))
        end = min(len(doc.text), start + rng.randrange(1, 120))
        raw_start, raw_end = doc.raw_span(start, end)
        assert 0 <= raw_start <= raw_end <= len(raw)
        first, last = doc.lines(raw_start, raw_end)
        # the line numbers are those of the raw span in the stored file
        assert first == raw.count("\n", 0, raw_start) + 1
        assert last == raw.count("\n", 0, max(raw_start, raw_end - 1)) + 1
        assert 1 <= first <= last <= len(raw_lines)
    # every sentence-like line of the loaded text is found, folded, on its cited stored lines
    for line in doc.text.split("\n"):
        if len(line) < 40:
            continue
        start = doc.text.index(line)
        first, last = doc.lines(*doc.raw_span(start, start + len(line)))
        # letters only: loading dropped glued footnote numbers and joined hyphenated wraps
        stored = re.sub(r"[^a-z]", "", fold(html.unescape("".join(raw_lines[first - 1 : last]))))
        words = [re.sub(r"[^a-z]", "", w) for w in fold(line).split()]
        assert words[0] in stored and words[-1] in stored


def test_noise_is_cleaned(docs):
    t001 = docs["001_0524aefe3f3059a2.txt"].text
    assert "&#039;" not in t001 and "l'Organisation du traité" in t001
    assert "Image: Imago" not in t001
    t004 = docs["004_da209c28aa551ef6.txt"].text
    assert "Publicité" not in t004 and "Je m'abonne" not in t004
    assert "20 000 hommes" in t004  # the non-breaking space became a plain one
    assert "\u00a0" not in t004 and "\u202f" not in t004
    t003 = docs["003_bab93556eb12dd7d.txt"].text
    # hard PDF wraps joined, footnote calls dropped, footnotes kept apart
    assert "Les quinze Etats dont il est question" in t003
    assert "sous un seul commandement militaire. Mais" in t003
    assert "\n9 Bases sous juridiction russe" in t003
    assert "Droits d'auteur" not in docs["000_dcc39fe243aa59dd.txt"].text


def test_apostrophes_and_guillemets_are_kept_as_written(docs):
    t001 = docs["001_0524aefe3f3059a2.txt"].text
    assert "«contre-Otan»" in t001 and "l’Organisation" in t001


def test_other_formats(tmp_path):
    (tmp_path / "page.html").write_text(
        "<html><head><title>Une page</title><script>var x=1;</script></head>"
        "<body><h1>Titre</h1><p>Le sommet a eu lieu &agrave; Moscou.</p></body></html>", encoding="utf-8")
    (tmp_path / "note.md").write_text("# Une note\n\nLe **traité** est signé.\n", encoding="utf-8")
    (tmp_path / "old.txt").write_bytes("Café à Genève, première réunion.".encode("cp1252"))
    html_doc = load_file(tmp_path / "page.html", tmp_path)
    assert html_doc.title == "Une page"
    assert "Le sommet a eu lieu à Moscou." in html_doc.text and "var x" not in html_doc.text
    start = html_doc.text.index("Moscou")
    assert html_doc.lines(*html_doc.raw_span(start, start + 6)) == (1, 1)
    md = load_file(tmp_path / "note.md", tmp_path)
    assert md.title == "Une note" and "Le traité est signé." in md.text
    start = md.text.index("traité")
    assert md.lines(*md.raw_span(start, start + 6)) == (3, 3)
    assert "Genève" in load_file(tmp_path / "old.txt", tmp_path).text


def test_pdf(tmp_path):
    pypdf = pytest.importorskip("pypdf")
    writer = pypdf.PdfWriter()
    writer.add_blank_page(200, 200)
    path = tmp_path / "blank.pdf"
    with open(path, "wb") as f:
        writer.write(f)
    with pytest.raises(LoadError, match="no text"):
        load_file(path, tmp_path)
    (tmp_path / "fake.pdf").write_text("not a pdf")
    with pytest.raises(LoadError, match="not a PDF"):
        load_file(tmp_path / "fake.pdf", tmp_path)


@pytest.mark.parametrize("content,reason", [(b"", "no text"), (b"\x00\x01\x02binary", "binary"),
                                            (b"   \n\n ", "no text")])
def test_bad_files_are_refused_with_a_reason(tmp_path, content, reason):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(LoadError, match=reason):
        load_file(path, tmp_path)
    (tmp_path / "x.xlsx").write_bytes(b"PK")
    with pytest.raises(LoadError, match="unsupported"):
        load_file(tmp_path / "x.xlsx", tmp_path)
