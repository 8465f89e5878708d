"""The index on disk: round trip, incremental rebuild, atomic generations, damage and staleness."""

from __future__ import annotations

import json

import numpy as np
import pytest

from csto_qa import QA, translate
from csto_qa.index import IndexProblem, build, open_index, read_manifest
from csto_qa.split import SplitSettings

from conftest import CORPUS


def test_round_trip(index_dir, embedder):
    index = open_index(index_dir, CORPUS, embedder.identity, SplitSettings())
    manifest = read_manifest(index_dir)
    assert manifest["embedder"]["identity"] == embedder.identity
    assert set(manifest["files"]) == {p.name for p in CORPUS.iterdir()}
    assert index.chunk_vectors.ntotal == len(index.chunks) == manifest["counts"]["chunks"]
    assert index.context_vectors.ntotal == len(index.sentences) == len(index.sentence_vectors)
    for i, chunk in enumerate(index.chunks):
        doc = index.documents[chunk.doc]
        # the stored vector is the embedding of that very text
        if i % 20 == 0:
            again = embedder.embed_passages([doc.text[chunk.start : chunk.end]])[0]
            assert float(again @ index.chunk_vectors.reconstruct(i)) > 0.999


def test_incremental_rebuild_embeds_only_what_changed(index_copy, corpus_copy, embedder):
    index_dir = index_copy
    same = build(corpus_copy, index_dir, embedder, progress=False, log=lambda *_: None)
    assert same.embedded_files == [] and same.reused_files == 5

    changed = corpus_copy / "004_da209c28aa551ef6.txt"
    changed.write_text(changed.read_text() + "\nUn paragraphe ajouté sur le sommet de Douchanbé.\n")
    (corpus_copy / "001_0524aefe3f3059a2.txt").unlink()
    (corpus_copy / "new.md").write_text("# Nouveau\n\nLa réunion suivante aura lieu à Minsk.\n")
    with pytest.raises(IndexProblem, match="stale"):
        open_index(index_dir, corpus_copy, embedder.identity, SplitSettings())
    again = build(corpus_copy, index_dir, embedder, progress=False, log=lambda *_: None)
    assert sorted(again.embedded_files) == ["004_da209c28aa551ef6.txt", "new.md"]
    index = open_index(index_dir, corpus_copy, embedder.identity, SplitSettings())
    assert sorted(d.source for d in index.documents) == sorted(p.name for p in corpus_copy.iterdir())
    # one live generation only; the superseded ones were removed
    assert len([p for p in index_dir.iterdir() if p.name.startswith("gen-")]) == 1


def test_problem_files_are_named_and_the_rest_indexed(index_copy, corpus_copy, embedder):
    (corpus_copy / "empty.txt").write_text("")
    (corpus_copy / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (corpus_copy / "fake.pdf").write_text("hello")
    messages = []
    report = build(corpus_copy, index_copy, embedder, progress=False, log=messages.append)
    assert report.files == 5
    assert set(report.problems) == {"empty.txt", "image.png", "fake.pdf"}
    assert any("fake.pdf" in m and "not a PDF" in m for m in messages)
    # the problem files are part of the recorded state: the index is not stale because of them
    open_index(index_copy, corpus_copy, embedder.identity, SplitSettings())


def test_damaged_index_is_detected_and_rebuilt(index_copy, corpus_copy, embedder):
    index_dir = index_copy
    gen = index_dir / (index_dir / "CURRENT").read_text()
    target = gen / "chunks.faiss"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(IndexProblem, match="damaged"):
        open_index(index_dir, corpus_copy, embedder.identity, SplitSettings())
    messages = []
    qa = QA.open(corpus_copy, index_dir, embedder=embedder, progress=False, log=messages.append)
    assert any("damaged" in m for m in messages)
    assert qa.ask("Quand l'OTSC a-t-elle été fondée ?").answer is not None


def test_missing_pointer_or_other_embedder_or_format_forces_a_rebuild(index_copy, corpus_copy, embedder):
    index_dir = index_copy
    with pytest.raises(IndexProblem, match="built by"):
        open_index(index_dir, corpus_copy, "another-model", SplitSettings())
    gen = index_dir / (index_dir / "CURRENT").read_text()
    manifest = json.loads((gen / "manifest.json").read_text())
    manifest["format_version"] = 0
    (gen / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexProblem, match="format"):
        open_index(index_dir, corpus_copy, embedder.identity, SplitSettings())
    (index_dir / "CURRENT").write_text("gen-nothing")
    with pytest.raises(IndexProblem, match="damaged"):
        open_index(index_dir, corpus_copy, embedder.identity, SplitSettings())


def test_an_interrupted_build_leaves_the_previous_index_in_use(index_copy, corpus_copy, embedder, monkeypatch):
    index_dir = index_copy
    before = (index_dir / "CURRENT").read_text()
    (corpus_copy / "extra.txt").write_text("Le traité a été signé à Tachkent. " * 20)

    import csto_qa.index as index_module

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(index_module.faiss, "write_index", crash)
    with pytest.raises(KeyboardInterrupt):
        build(corpus_copy, index_dir, embedder, progress=False, log=lambda *_: None)
    monkeypatch.undo()
    assert (index_dir / "CURRENT").read_text() == before
    index = open_index(index_dir)  # still whole and readable (stale for the new corpus, as it should be)
    assert len(index.documents) == 5
    # the work done before the crash is kept: the new file's vectors are cached
    report = build(corpus_copy, index_dir, embedder, progress=False, log=lambda *_: None)
    assert report.embedded_files == []
    assert np.isfinite(open_index(index_dir).sentence_vectors).all()


def _live(index_dir):
    return (index_dir / "CURRENT").read_text()


def test_a_build_with_nothing_changed_keeps_the_live_index_unless_forced_or_damaged(index_copy, corpus_copy,
                                                                                    embedder):
    (corpus_copy / "empty.txt").write_text("")
    build(corpus_copy, index_copy, embedder, progress=False, log=lambda *_: None)
    before = _live(index_copy)
    messages = []
    kept = build(corpus_copy, index_copy, embedder, progress=False, log=messages.append)
    assert kept.generation == before == _live(index_copy) and kept.embedded_files == []
    assert kept.files == 5 and kept.chunks == read_manifest(index_copy)["counts"]["chunks"]
    assert set(kept.problems) == {"empty.txt"} and any("skipped empty.txt" in m for m in messages)

    forced = build(CORPUS, index_copy, embedder, progress=False, log=lambda *_: None, force=True)
    assert forced.generation != before and forced.embedded_files == []  # a new generation, from the cache
    assert [p.name for p in index_copy.iterdir() if p.name.startswith("gen-")] == [forced.generation]

    target = index_copy / forced.generation / "sentences.npy"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    repaired = build(CORPUS, index_copy, embedder, progress=False, log=lambda *_: None)
    assert repaired.generation != forced.generation  # a damaged index is never kept as "unchanged"
    open_index(index_copy, CORPUS, embedder.identity, SplitSettings())


def test_a_change_to_the_indexing_code_makes_the_index_stale(index_copy, embedder, monkeypatch):
    import csto_qa.index as index_module

    monkeypatch.setattr(index_module, "engine_code", lambda: "0" * 16)
    with pytest.raises(IndexProblem, match="indexing code changed"):
        open_index(index_copy, CORPUS, embedder.identity, SplitSettings())


def test_approximate_search_above_the_threshold_answers_as_exact_search(index_copy, embedder, qa, gold,
                                                                         monkeypatch):
    """HNSW forced on the real corpus from 100 vectors: the 320 sentences in context go through HNSW,
    the 77 chunks stay exact; the answers must be those of the exact index."""
    monkeypatch.setenv("CSTO_QA_HNSW_MIN", "100")
    build(CORPUS, index_copy, embedder, progress=False, log=lambda *_: None, force=True)
    approx = QA.open(CORPUS, index_copy, embedder=embedder, progress=False, log=lambda *_: None)
    assert type(approx.index.context_vectors).__name__ == "IndexHNSWSQ"
    assert type(approx.index.chunk_vectors).__name__ == "IndexFlatIP"
    same = [(a.answer and a.answer.quote) == (b.answer and b.answer.quote)
            for a, b in ((approx.ask(g.question), qa.ask(g.question)) for g in gold)]
    assert np.mean(same) >= 0.95, np.mean(same)


def test_a_line_in_the_other_language_stays_out_of_the_chunk_vector_but_not_out_of_the_text(tmp_path):
    """An English caption in a French article would pull English questions to its chunk."""
    from csto_qa.index import _native
    from csto_qa.load import load_file

    path = tmp_path / "article.txt"
    path.write_text("Le sommet s'est tenu à Minsk en novembre, en présence des chefs d'État.\n"
                    "Russian troops arrive in the capital city\n"
                    "Vladimir Poutine et Alexandre Loukachenko\n"
                    "Les ministres ont signé trois accords sur la défense aérienne commune.\n", encoding="utf-8")
    doc = load_file(path, tmp_path)
    embedded = _native(doc, 0, len(doc.text))
    assert "Russian troops" not in embedded and "Russian troops" in doc.text
    assert "Minsk" in embedded and "Loukachenko" in embedded and "trois accords" in embedded


def test_an_index_built_without_translation(tmp_path, embedder):
    """Where translation is off, the index holds no translated sentences, the engine answers an English
    question all the same, and an engine with translation on rebuilds it rather than read it without."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "summit.txt").write_text((CORPUS / "001_0524aefe3f3059a2.txt").read_text(encoding="utf-8"), encoding="utf-8")
    build(corpus, tmp_path / "index", embedder, progress=False, log=lambda *_: None, translator=translate.create("none"))
    index = open_index(tmp_path / "index", corpus, embedder.identity, SplitSettings(), translated=None)
    assert index.manifest["translation"] is None and index.translated_vectors is None
    assert not list(index.path.glob("gen-*/translated.npy"))
    result = QA(index, embedder, translator=translate.create("none")).ask("How many soldiers were sent to Kazakhstan?")
    assert result.translation is None and "2500 soldats" in result.answer.quote
    with pytest.raises(IndexProblem, match="translation is now apertium"):
        open_index(tmp_path / "index", corpus, embedder.identity, SplitSettings(), translated="apertium")
