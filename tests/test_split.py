"""Splitting the real documents: chunk and sentence offsets are exact, sentences survive abbreviations."""

from __future__ import annotations

import pytest

from csto_qa.load import corpus_files, load_file
from csto_qa.split import SplitSettings, chunk_spans, list_item, list_lead, sentence_spans

from conftest import CORPUS, ROOT


@pytest.fixture(scope="module")
def docs():
    return [load_file(p, CORPUS) for p in corpus_files(CORPUS)]


@pytest.mark.parametrize("settings", [SplitSettings(), SplitSettings(400, 80), SplitSettings(1200, 200)])
def test_chunks_are_exact_spans_that_cover_the_text(docs, settings):
    for doc in docs:
        spans = chunk_spans(doc.text, settings)
        assert spans
        covered = set()
        for start, end in spans:
            piece = doc.text[start:end]
            assert piece == piece.strip() and piece
            assert end - start <= settings.chunk_size + settings.min_chunk  # a short piece joined
            covered.update(range(start, end))
        letters = {i for i, ch in enumerate(doc.text) if ch.isalnum()}
        assert letters <= covered


@pytest.mark.parametrize("size", [800, 400])
def test_short_pieces_join_a_neighbour(docs, size):
    """Headings cut off from their section, separators, lone footnotes: the splitter leaves such short
    pieces (the corpus has some), and each ends up inside a chunk long enough to be a passage."""
    settings, bare = SplitSettings(size, size // 5), SplitSettings(size, size // 5, min_chunk=0)
    short = 0
    for doc in docs:
        spans = chunk_spans(doc.text, settings)
        assert all(end - start >= settings.min_chunk for start, end in spans) or len(spans) == 1
        for start, end in chunk_spans(doc.text, bare):
            if end - start < settings.min_chunk:
                short += 1
                assert any(a <= start and end <= b and b - a >= settings.min_chunk for a, b in spans)
    assert short >= 3


def test_sentences_keep_abbreviations_and_initials_inside():
    text = ("M. Poutine a parlé. Voir W. H. Hill, No Place for Russian, p. 7. Le traité de 1992 fixe n° 3 "
            "règles. Qui l'a signé ? Neuf États !")
    sentences = [text[s:e] for s, e in sentence_spans(text)]
    assert sentences == ["M. Poutine a parlé.", "Voir W. H. Hill, No Place for Russian, p. 7.",
                         "Le traité de 1992 fixe n° 3 règles.", "Qui l'a signé ?", "Neuf États !"]


def test_sentences_of_the_pdf_text_are_whole(docs):
    doc = next(d for d in docs if d.source.startswith("003"))
    sentences = [doc.text[s:e] for s, e in sentence_spans(doc.text)]
    assert ("Un traité de sécurité collective a été signé à Tachkent en mai 1992 par la Russie, l’Arménie, "
            "le Bélarus, le Kazakhstan, le Kirghizstan, l’Ouzbékistan et le Tadjikistan, auxquels se sont "
            "joints en 1993 l’Azerbaïdjan et la Géorgie.") in sentences
    for s in sentences:
        assert "\n" not in s


def test_list_items_know_the_line_that_opens_their_list():
    """An item's subject is in the line before its list ("... réservée à certains publics :"); the
    index embeds the item with that line, and extract does not count the item as a fragment."""
    folder = ROOT / "tests" / "data" / "corpus_faq"
    doc = load_file(folder / "0155_acre_exoneration.txt", folder)
    starts = [s for s, _ in sentence_spans(doc.text)]
    items = [s for s in starts if list_item(doc.text, s)]
    assert [doc.text[s:s + 12] for s in items] == ["- demandeurs", "- bénéficiai", "- jeunes de ", "- créateurs "]
    assert {list_lead(doc.text, s) for s in items} == {"Depuis 2026, l'ACRE est réservée à certains publics :"}
