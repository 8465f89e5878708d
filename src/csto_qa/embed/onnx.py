"""The converted e5 folder on ONNX Runtime, float32 (the default embedder) or int8.

Exported once from the folder's weights (torch's exporter) into ``onnx/`` beside them, and written
aside then renamed like the folder itself:
- ``words.npy``: the word-embedding table (250,037 x 384 float32, 384 MB: most of the model),
  memory-mapped at run time; a batch's rows are gathered from it in numpy, so only the pages of the
  words met are ever read, and opening the model does not read the table: a cold start loads 85 MB,
  not 470;
- ``model.onnx``: the rest of the network, from those rows (``inputs_embeds``) and the mask to each
  text's mean token state (so a batch returns [batch, 384], not every token's state);
- ``model-int8.onnx``: the same graph with ONNX Runtime's BERT fusions (Attention,
  SkipLayerNormalization, BiasGelu) and its matrices quantized to int8 per output channel (dynamic
  quantization: activations are quantized per batch).
At run time only onnxruntime and numpy are imported, not torch.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np

from .base import threads
from .transformer import TransformerEmbedder

VARIANTS = {"fp32": "model.onnx", "int8": "model-int8.onnx"}
WORDS = "words.npy"


def export(folder: Path, variant: str, log=print) -> Path:
    """The ONNX graph of ``variant`` for the model folder (and the word table beside it), exported
    first when missing; the int8 graph is made from the float32 one."""
    out = Path(folder) / "onnx" / VARIANTS[variant]
    if out.is_file():
        return out
    source = export(folder, "fp32", log) if variant != "fp32" else None
    out.parent.mkdir(exist_ok=True)
    log(f"preparing the embedding model for ONNX Runtime ({variant}) in {out.parent} (once)")
    with tempfile.TemporaryDirectory(prefix=".export-", dir=out.parent) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shapes, for a model whose shapes are dynamic
        made = Path(tmp) / VARIANTS[variant]
        if source is None:
            _export_fp32(Path(folder), made, Path(tmp) / WORDS)
            os.replace(Path(tmp) / WORDS, out.parent / WORDS)
        else:
            _quantize(Path(folder), source, made, Path(tmp))
        os.replace(made, out)
    return out


def _export_fp32(folder: Path, out: Path, words: Path) -> None:
    import torch

    from .torch import load_model

    class Pooled(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, inputs_embeds, attention_mask):
            states = self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            return (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    model = load_model(folder)
    table = model.get_input_embeddings().weight.detach()
    np.save(words, table.numpy())
    embeds, mask = table[torch.ones(2, 8, dtype=torch.long)], torch.ones(2, 8, dtype=torch.long)
    with torch.no_grad():
        torch.onnx.export(Pooled(model), (embeds, mask), str(out), dynamo=False, opset_version=17,
                          input_names=["inputs_embeds", "attention_mask"], output_names=["pooled"],
                          dynamic_axes={"inputs_embeds": {0: "batch", 1: "length"},
                                        "attention_mask": {0: "batch", 1: "length"}, "pooled": {0: "batch"}})


def _quantize(folder: Path, fp32: Path, out: Path, tmp: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    fused = tmp / "fused.onnx"
    optimizer.optimize_model(str(fp32), model_type="bert", num_heads=config["num_attention_heads"],
                             hidden_size=config["hidden_size"], opt_level=0).save_model_to_file(str(fused))
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic advises pre-processing on the root logger, every time
    try:
        quantize_dynamic(str(fused), str(out), weight_type=QuantType.QInt8, per_channel=True,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        root.setLevel(level)


class OnnxEmbedder(TransformerEmbedder):
    """Prepared (exported) when created; the session is opened on the first text to embed, so a
    command that only needs the embedder's identity (a build with nothing to do) does not load it."""

    def __init__(self, folder: Path, variant: str, identity: str, log=print):
        super().__init__(folder)
        self._path = export(folder, variant, log)
        self._session = None
        self._words = None
        self._opening = threading.Lock()
        self.identity = identity

    def _open(self):
        import onnxruntime as ort

        with self._opening:
            if self._session is None:
                self._words = np.load(self._path.parent / WORDS, mmap_mode="r")
                self._session = ort.InferenceSession(str(self._path), self._options(ort),
                                                     providers=["CPUExecutionProvider"])

    def _options(self, ort):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads()
        options.inter_op_num_threads = 1
        # threads that spin between batches take the CPU from everything else on a 2-core machine
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        return options

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if self._session is None:
            self._open()
        return self._session.run(None, {"inputs_embeds": np.ascontiguousarray(self._words[ids]),
                                        "attention_mask": mask})[0]
