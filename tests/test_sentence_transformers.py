"""Any sentence-transformers model by folder, offline: a tiny model built here, never downloaded."""

from __future__ import annotations

import re

import pytest

from csto_qa import QA
from csto_qa.embed import EmbedderError, create
from csto_qa.index import read_manifest

from conftest import CORPUS, assert_cited


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from sentence_transformers import SentenceTransformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    try:  # sentence-transformers 6 moved the modules
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:
        from sentence_transformers.models import Pooling, Transformer

    folder = tmp_path_factory.mktemp("tiny-e5-model")
    words = sorted({w.lower() for p in CORPUS.iterdir() for w in re.findall(r"\w+", p.read_text())})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words[:3000]]
    raw = folder / "raw"
    raw.mkdir()
    (raw / "vocab.txt").write_text("\n".join(vocab))
    BertTokenizerFast(vocab_file=str(raw / "vocab.txt")).save_pretrained(raw)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    BertModel(config).save_pretrained(raw)
    model = SentenceTransformer(modules=[Transformer(str(raw)), Pooling(32)], device="cpu")
    model.save(str(folder / "model"))
    return folder / "model"


def test_a_local_model_folder_builds_and_answers_offline(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    embedder = create(str(tiny_model))
    assert embedder.identity.startswith("sentence-transformers:") and embedder.dim == 32
    qa = QA.open(CORPUS, tmp_path / "index", embedder=embedder, progress=False, log=lambda *_: None)
    assert read_manifest(tmp_path / "index")["embedder"]["identity"] == embedder.identity
    result = qa.ask("Où se tiendra le prochain sommet de l'OTSC ?")
    assert result.passages
    for p in result.passages:
        assert_cited(CORPUS, p)


def test_the_environment_variable_picks_the_model(tiny_model, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("CSTO_QA_EMBEDDER", str(tiny_model))
    assert create().identity.startswith("sentence-transformers:")


def test_an_index_is_never_queried_with_another_embedder(tiny_model, tmp_path, embedder, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    QA.open(CORPUS, tmp_path / "index", embedder=create(str(tiny_model)), progress=False, log=lambda *_: None)
    messages = []
    QA.open(CORPUS, tmp_path / "index", embedder=embedder, progress=False, log=messages.append)
    assert any("built by sentence-transformers" in m for m in messages)
    assert read_manifest(tmp_path / "index")["embedder"]["identity"] == embedder.identity


def test_an_unknown_model_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EmbedderError, match="cannot load embedding model"):
        create(str(tmp_path / "no-such-model"))
