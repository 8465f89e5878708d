"""Word, OpenDocument and PDF files: loaded, quoted and cited by paragraph or page; added and removed
while the server answers, with hostile uploads refused and nothing written."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import pytest

from csto_qa import QA, cite
from csto_qa.library import EditError, Library, safe_name
from csto_qa.load import load_file, stored_text
from csto_qa.split import sentence_spans

from conftest import DATA, assert_cited
from documents import make_docx, make_odt, make_pdf

BLOCKS = [("h", "Observatoire astronomique de Valmont"),
          ("p", "L'observatoire a été inauguré en 1987 sur la colline des Tilleuls."),
          ("t", [["Instrument", "Diamètre"], ["Grande lunette", "62 centimètres"]]),
          ("p", "Les nuits d'observation publiques ont lieu le premier vendredi de chaque mois.")]
PAGES = [["Guide du planétarium de Valmont", "Le planétarium compte 84 fauteuils inclinables."],
         ["Horaires", "Les séances pour les scolaires commencent à 9 h 15."],
         ["Tarifs", "Une séance coûte 7 euros pour un adulte."]]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    make_docx(root / "observatoire.docx", "Observatoire (Word)", BLOCKS)
    make_odt(root / "observatoire.odt", "Observatoire (OpenDocument)", BLOCKS)
    make_pdf(root / "planetarium.pdf", "Guide du planétarium", PAGES)
    return root


def _own_text(path: Path) -> str:
    """The stored text as this test reads the file itself, with the format's own library."""
    if path.suffix == ".pdf":
        import pypdf

        return "\n\n".join(page.extract_text() for page in pypdf.PdfReader(str(path)).pages)
    if path.suffix == ".docx":
        import docx

        document, lines = docx.Document(str(path)), []
        for block in document.iter_inner_content():
            if hasattr(block, "rows"):
                lines += ["| " + " | ".join(c.text for c in row.cells) + " |" for row in block.rows]
            else:
                lines.append(block.text)
        return "\n".join(lines)
    from odf import teletype
    from odf.opendocument import load

    lines = []
    for node in load(str(path)).text.childNodes:
        if node.qname[1] == "table":
            lines += ["| " + " | ".join(teletype.extractText(c) for c in row.childNodes if c.qname[1] == "table-cell")
                      + " |" for row in node.childNodes if row.qname[1] == "table-row"]
        elif node.qname[1] in ("h", "p"):
            lines.append(teletype.extractText(node))
    return "\n".join(lines)


@pytest.mark.parametrize("name, unit, number", [("observatoire.docx", "paragraph", 5),
                                                ("observatoire.odt", "paragraph", 5),
                                                ("planetarium.pdf", "page", 3)])
def test_each_format_is_loaded_quoted_and_cited(made, name, unit, number):
    doc = load_file(made / name, made)
    assert doc.title.startswith(("Observatoire", "Guide du planétarium"))
    assert doc.stored == _own_text(made / name)
    needle = "premier vendredi" if unit == "paragraph" else "7 euros"
    start = doc.text.index(needle)
    sentence = next((s, e) for s, e in sentence_spans(doc.text) if s <= start < e)
    answer = cite.answer(doc, *sentence, 0.0, None)
    assert needle in answer.quote and getattr(answer, unit) == number
    assert cite.verify(answer.quote, stored_text(made / name), answer.start, answer.end, doc.format)
    if unit == "paragraph":  # a table row is one paragraph, its cells between bars, as the row of a table
        row = doc.text.index("Grande lunette")
        assert cite.answer(doc, row, row + 14, 0.0, None).paragraph == 4


def test_questions_are_answered_from_each_format_with_their_citation(made, tmp_path, embedder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for p in made.iterdir():
        (corpus / p.name).write_bytes(p.read_bytes())
    qa = QA.open(corpus, tmp_path / "index", embedder=embedder, progress=False, log=lambda *_: None)
    pdf = qa.ask("Combien de fauteuils compte le planétarium ?")
    assert not pdf.abstained and "84 fauteuils" in pdf.answer.quote and pdf.answer.page == 1
    assert pdf.to_dict()["answer"]["paragraph"] is None
    word = qa.ask("Quand l'observatoire a-t-il été inauguré ?")
    assert not word.abstained and "1987" in word.answer.quote and word.answer.paragraph == 2
    for result in (pdf, word):
        assert_cited(corpus, result.answer)


# --- uploads ---------------------------------------------------------------------------------


@pytest.fixture()
def library(tmp_path, embedder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for p in (DATA / "corpus_fr2").iterdir():
        if p.name.startswith(("01_", "05_")):
            (corpus / p.name).write_bytes(p.read_bytes())
    qa = QA.open(corpus, tmp_path / "index", embedder=embedder, progress=False, log=lambda *_: None)
    return Library(qa, corpus, tmp_path / "index", allow_edits=True, log=lambda *_: None)


def _wait(library: Library, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while library.progress.running:
        assert time.monotonic() < deadline, "the background build did not end"
        time.sleep(0.2)


def _bomb(path: Path) -> Path:
    """A .docx that unpacks to 64 MB of zeros from about 64 kB: the shape of a decompression bomb."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", b"\0" * (64 * 2**20))
    path.write_bytes(buffer.getvalue())
    return path


def test_hostile_uploads_are_refused_and_nothing_is_written(library, tmp_path, monkeypatch):
    before = sorted(p.name for p in library.corpus.iterdir())
    text = tmp_path / "note.txt"
    text.write_text("Une note sans importance.", encoding="utf-8")
    fake = tmp_path / "fake.pdf"
    fake.write_text("not a pdf at all", encoding="utf-8")
    not_zip = tmp_path / "rapport.docx"
    not_zip.write_bytes(b"PK\x03\x04 broken")
    odd_odt = tmp_path / "x.odt"
    make_docx(odd_odt, "t", [("p", "un document Word sous un nom .odt")])
    added, refused = library.add([("programme.exe", text), ("fake.pdf", fake), ("rapport.docx", not_zip),
                                  ("x.odt", odd_odt), ("bomb.docx", _bomb(tmp_path / "bomb.docx"))])
    lines = [str(exc) for exc in refused]
    assert not added and len(lines) == 5, lines
    assert "unsupported file type '.exe'" in lines[0] and "not a PDF" in lines[1]
    assert "not a Word" in lines[2] and "not an OpenDocument" in lines[3] and "decompression bomb" in lines[4]
    # and as data, for the page to word in its own language
    assert [exc.code for exc in refused] == ["type", "refused", "refused", "refused", "refused"]
    assert refused[0].params["name"] == "programme.exe" and refused[0].params["suffix"] == ".exe"
    monkeypatch.setattr("csto_qa.library.MAX_FILE_BYTES", 10)
    assert "too large" in str(library.add([("note.txt", text)])[1][0])
    assert sorted(p.name for p in library.corpus.iterdir()) == before  # nothing written, not even hidden
    assert not library.progress.running


@pytest.mark.parametrize("client, expected", [
    ("../../etc/passwd.txt", "passwd.txt"), ("/abs/path/notes.md", "notes.md"), ("C:\\Users\\x\\rapport.pdf", "rapport.pdf"),
    ("..\\..\\evil.html", "evil.html"), (".hidden.txt", "hidden.txt"), ("rapp\u202eort\u0000.txt", "rapport.txt"),
    ("e\u0301te\u0301.txt", "\u00e9t\u00e9.txt"), ("01_mairie.txt", "01_mairie (2).txt"), ("x<y>|z.TXT", "x_y__z.txt"),
])
def test_safe_names(client, expected):
    assert safe_name(client, {"01_mairie.txt"}) == expected


def test_a_read_only_library_refuses_edits(library, tmp_path):
    library.allow_edits = False
    with pytest.raises(EditError, match="read-only"):
        library.add([("a.txt", tmp_path)])
    with pytest.raises(EditError, match="read-only"):
        library.remove("01_mairie_horaires_contacts.txt")


def test_add_answer_remove_and_questions_during_the_rebuild(library, made):
    question = "Combien de fauteuils compte le planétarium ?"
    assert library.qa.ask(question).abstained
    old = library.qa
    assert library.add([("planetarium.pdf", made / "planetarium.pdf")]) == (["planetarium.pdf"], [])
    answered_during = 0
    while library.progress.running:  # the previous generation answers meanwhile
        assert not library.qa.ask("À quelle heure ouvre la mairie le samedi ?").abstained
        answered_during += 1
    _wait(library)
    assert library.qa is not old and library.progress.outcome == "ready" and library.progress.files == 3
    result = library.qa.ask(question)
    assert not result.abstained and result.answer.source == "planetarium.pdf" and result.answer.page == 1
    with pytest.raises(EditError):
        library.remove("../index/CURRENT")
    assert library.remove("planetarium.pdf") == "removed planetarium.pdf"
    _wait(library)
    assert library.qa.ask(question).abstained
    assert answered_during >= 1


def test_watch_indexes_files_dropped_in(library, made):
    library.watch(seconds=0.5)
    (library.corpus / "observatoire.odt").write_bytes((made / "observatoire.odt").read_bytes())
    deadline = time.monotonic() + 300
    while "observatoire.odt" not in {d.source for d in library.qa.index.documents}:
        assert time.monotonic() < deadline, "the file dropped in was not indexed"
        time.sleep(0.5)
    assert library.qa.ask("En quelle année l'observatoire a-t-il été inauguré ?").answer.paragraph == 2
