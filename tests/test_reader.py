"""The learned reader: its shipped files, their failure modes, its training command, and what it reads
on the real corpus."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from csto_qa.reader import adapter, decide, piaf, train

ROOT = Path(__file__).resolve().parent.parent
PIAF = ROOT.parent / "shared" / "data" / "piaf"


def test_the_shipped_adapter_is_small_and_records_its_training():
    tensors, meta = adapter.read()
    assert adapter.SHIPPED.stat().st_size <= 16 * 2**20
    assert meta["rank"] > 0 and meta["data"]["train"]["questions"] > 1000
    assert "PIAF" in meta["source"]
    # every adapted layer of the 12 has its two low-rank factors
    assert len(tensors) == 12 * len(adapter.TARGETS) * 2


def test_the_shipped_decision_learned_the_signals_that_tell():
    model = decide.load()
    w = dict(zip(decide.FEATURES, model.weights))
    assert w["context"] > 0 and w["alone"] > 0 and w["coverage"] > 0  # closer and more of its words: better
    assert 0 < model.threshold < 1


@pytest.mark.parametrize("damage", ["missing", "truncated", "not-safetensors"])
def test_a_missing_or_damaged_weights_file_is_one_line_naming_the_command(tmp_path, damage):
    bad = tmp_path / "reader.safetensors"
    if damage == "truncated":
        bad.write_bytes(adapter.SHIPPED.read_bytes()[:5000])
    elif damage == "not-safetensors":
        bad.write_text("hello")
    env = {**os.environ, adapter.ENV: str(bad)}
    done = subprocess.run([sys.executable, "-m", "csto_qa.cli", "ask", "Quand l'OTSC a-t-elle été fondée ?",
                           "--index", str(tmp_path / "index")], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "csto-qa train-reader" in done.stderr and str(bad) in done.stderr


def test_a_damaged_decision_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "decide.json"
    bad.write_text(json.dumps({"features": ["alone"]}))
    with pytest.raises(decide.ModelError, match="train-reader"):
        decide.load(bad)


def test_merging_the_adapter_changes_exactly_the_adapted_weights():
    tensors, meta = adapter.read()
    state = {f"encoder.layer.{i}.{name}.weight": np.zeros(tensors[f"encoder.layer.{i}.{name}.lora_b"].shape[:1]
                                                            + tensors[f"encoder.layer.{i}.{name}.lora_a"].shape[1:],
                                                            dtype=np.float32)
             for i in range(12) for name in adapter.TARGETS}
    state["embeddings.word_embeddings.weight"] = np.ones((3, 4), dtype=np.float32)
    merged = adapter.merge(state, tensors, meta)
    key = "encoder.layer.0.attention.self.query"
    expected = meta["alpha"] / meta["rank"] * tensors[f"{key}.lora_b"] @ tensors[f"{key}.lora_a"]
    assert np.allclose(merged[f"{key}.weight"], expected, atol=1e-6)
    assert merged["embeddings.word_embeddings.weight"] is state["embeddings.word_embeddings.weight"]


@pytest.mark.skipif(not PIAF.is_dir(), reason="PIAF lies in ../shared/data/piaf beside the repository")
def test_piaf_is_split_by_article_and_each_question_has_its_sentence():
    articles = piaf.load(PIAF)
    parts = piaf.parts(articles)
    titles = [{a.title for a in parts[p]} for p in piaf.PARTS]
    assert not (titles[0] & titles[1] or titles[0] & titles[2] or titles[1] & titles[2])
    assert sum(map(len, titles)) == len(articles)
    for art in articles[:20]:
        for q in art.questions:
            assert q.answer.split()[0] in art.sentences[q.sentence] or q.answer[:5] in art.sentences[q.sentence]


@pytest.mark.skipif(not PIAF.is_dir(), reason="PIAF lies in ../shared/data/piaf beside the repository")
def test_training_runs_checkpoints_and_resumes(tmp_path):
    """Two articles, two batches: the command's whole path, adapter file included, on the true model."""
    data = json.loads((PIAF / "piaf-train.json").read_text(encoding="utf-8"))
    small = [a for a in data["data"] if piaf.part_of(a["title"]) == "train"][:1]
    small += [a for a in data["data"] if piaf.part_of(a["title"]) == "dev"][:1]
    for a in small:
        a["paragraphs"] = a["paragraphs"][:1]
        a["paragraphs"][0]["qas"] = a["paragraphs"][0]["qas"][:4]
    source = tmp_path / "piaf.json"
    source.write_text(json.dumps({"version": "test", "data": small}), encoding="utf-8")
    settings = train.Settings(epochs=1, queries=2, eval_every=2)
    out = tmp_path / "reader.safetensors"
    meta = train.train(source, out, tmp_path / "ckpt", settings, resume=False, log=lambda *_: None)
    tensors, saved = adapter.read(out)
    assert saved["data"]["train"]["questions"] == meta["data"]["train"]["questions"] > 0
    assert any(np.abs(t).sum() > 0 for k, t in tensors.items() if k.endswith("lora_b"))  # it learned something
    assert [c["seen"] for c in saved["curve"]][0] == 0  # the curve starts before training
    again = train.train(source, tmp_path / "again.safetensors", tmp_path / "ckpt", settings, resume=True,
                        log=lambda *_: None)
    assert again["curve"] == meta["curve"]  # resumed at the end: nothing left to train


def test_the_answer_carries_the_readers_confidence(qa):
    result = qa.ask("Combien de pays sont membres de l'OTSC ?")
    d = result.to_dict()
    assert not result.abstained and "six" in result.answer.quote
    assert 0 < d["answer"]["confidence"] <= 1 and d["answer"]["confidence"] == d["confidence"]
    assert d["timings_ms"]["read"] > 0


def test_a_question_the_documents_do_not_answer_is_declined_with_its_reason(qa):
    result = qa.ask("Qui a gagné la Coupe du monde de football en 2018 ?")
    assert result.abstained and result.answer is None
    assert result.reason == "unsure" and result.confidence < qa.extractor.model.threshold


def test_an_off_topic_question_sharing_a_word_with_the_corpus_is_at_most_a_low_confidence_answer(qa):
    """A known limit of the learned decision: "capitale" is in the corpus ("la capitale moldave"),
    and that one shared word carries the question over the threshold; the confidence stays low,
    and the page says so."""
    result = qa.ask("Quelle est la capitale de l'Australie ?")
    assert result.abstained or result.answer.confidence < 0.3


def test_the_countries_that_left_are_quoted(qa):
    result = qa.ask("Quels pays ont quitté l'OTSC ?")
    assert not result.abstained and "Ouzbékistan" in result.answer.quote


def test_a_follow_up_asking_something_new_is_not_answered_with_the_turn_before(qa):
    first = qa.ask("Quels pays ont quitté l'OTSC ?")
    follow = qa.ask("And why did Armenia freeze its participation?",
                    history=[{"question": first.question, "result": first.to_dict()}])
    assert not follow.abstained and follow.answer.quote != first.answer.quote
    assert "Arménie" in follow.answer.quote
