"""The converted e5 folder on PyTorch, float32 or bfloat16 (bfloat16 only where the processor has
the instructions: emulated, it is slower than float32)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import threads
from .transformer import TransformerEmbedder


def load_model(folder: Path, dtype=None):
    """transformers' model from the folder, quietly (no progress bar, no note on the unused pooler)."""
    from transformers import AutoModel
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    return AutoModel.from_pretrained(str(folder), local_files_only=True, add_pooling_layer=False,
                                     attn_implementation="eager", dtype=dtype).eval()


def has_bfloat16() -> bool:
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class TorchEmbedder(TransformerEmbedder):
    """The model is loaded on the first text to embed (importing torch alone takes seconds)."""

    def __init__(self, folder: Path, dtype: str, identity: str):
        super().__init__(folder)
        self._dtype = dtype
        self._model = None
        self.identity = identity

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        import torch

        with self._loading:
            if self._model is None:
                torch.set_num_threads(threads())
                self._model = load_model(self._folder, {"fp32": torch.float32, "bf16": torch.bfloat16}[self._dtype])
        with torch.inference_mode():
            ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)
            states = self._model(input_ids=ids_t, attention_mask=mask_t).last_hidden_state.float()
            weights = mask_t.unsqueeze(-1).float()
            return ((states * weights).sum(1) / weights.sum(1).clamp(min=1.0)).numpy()
