"""Per-question latency over the gold set, warm, split by stage.

After a warm-up, every gold question goes through the pipeline --passes times. Each question is run
twice per pass: once piece by piece, calling the engine's own parts (Retriever.query,
Retriever._dense_chunks / _bm25 / _rrf, Retriever.search, Extractor.extract) with
a clock around each, and once through QA.ask, whose timings_ms are its own split. The engine is not
changed; the embedder is wrapped to time the query embedding inside Retriever.query.

Stages (ms):
  question embedding alone   embed_queries([question]) by itself
  query: embedding           the embedding call inside Retriever.query (the question)
  query: terms               the rest of Retriever.query: stemming (the question as asked: the
                             translation's terms are in ask.* only)
  dense chunks / bm25 / rrf fusion   the parts of Retriever.search
  search                     Retriever.search as called (all of the above plus top-k)
  extract                    Extractor.read on the hits (candidates' signals, the reader's decision, the quote)
  ask.*                      QA.ask's own timings_ms (translate, embed, retrieve, extract, read, total)

The reader's share: ask.total against ask.read (its model work: the question's embedding by the
reader's encoder and its decision), as a ratio per question; and how ask.total grows with the number
of candidate sentences read (the sentences of the top passages).

The index is kept in $CSTO_QA_BENCH_DIR (default /tmp/csto-qa-bench), built there on first use.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchlib import CORPUS, GOLD, WORK, clocked, header, pct, quiet, slug, table, verdict
from csto_qa import QA
from csto_qa.embed import Embedder
from csto_qa.evaluate import load_gold
from csto_qa.qa import clean_question
from csto_qa.retrieve import Retriever

TARGET_P50, TARGET_P95 = 150.0, 300.0
TARGET_RATIO = 1.25


class TimedEmbedder(Embedder):
    """Records the duration of the last embed_queries call."""

    def __init__(self, inner: Embedder):
        self.inner, self.identity, self.dim = inner, inner.identity, inner.dim
        self.ms = 0.0

    def embed_queries(self, texts, progress=None):
        t = time.perf_counter()
        out = self.inner.embed_queries(texts, progress)
        self.ms = (time.perf_counter() - t) * 1000
        return out

    def embed_passages(self, texts, progress=None):
        return self.inner.embed_passages(texts, progress)


def one_question(qa: QA, retriever: Retriever, timed: TimedEmbedder, question: str, times: dict) -> None:
    text, _ = clean_question(question)
    s = retriever.settings
    times["question embedding alone"].append(clocked(qa.embedder.embed_queries, [text])[1])
    query, ms = clocked(retriever.query, text)
    times["query: embedding"].append(timed.ms)
    times["query: terms"].append(ms - timed.ms)
    q = query.vector.reshape(1, -1).astype(np.float32)
    chunks, ms = clocked(retriever._dense_chunks, q)
    times["search: dense chunks"].append(ms)
    lexical, ms = clocked(retriever._bm25, query.terms)
    times["search: bm25"].append(ms)
    lists = [(chunks, s.w_chunks), (lexical, s.w_bm25 * query.known)]
    times["search: rrf fusion"].append(clocked(retriever._rrf, lists)[1])
    hits, ms = clocked(retriever.search, query, k=max(5, qa.extractor.settings.passages))
    times["search (whole)"].append(ms)
    times["extract"].append(clocked(qa.extractor.read, hits, query)[1])
    result = qa.ask(question)
    times["total / read"].append(result.timings_ms["total"] / result.timings_ms["read"])
    sentences = sum(len(qa.index.chunk_sentences[h.chunk]) for h in hits[: qa.extractor.settings.passages])
    times["sentences read"].append(sentences)
    times[f"ask.total, {result.lang} questions"].append(result.timings_ms["total"])
    for key, value in result.timings_ms.items():
        times[f"ask.{key}"].append(value)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=str(CORPUS))
    ap.add_argument("--gold", default=str(GOLD))
    ap.add_argument("--index", help="index folder (default: $CSTO_QA_BENCH_DIR/index-EMBEDDER)")
    ap.add_argument("--embedder", help="as csto-qa --embedder (default: the default embedder)")
    ap.add_argument("--passes", type=int, default=3, help="timed passes over the gold set (default 3)")
    ap.add_argument("--warmup", type=int, default=10, help="questions asked before timing (default 10)")
    args = ap.parse_args()

    index = args.index or WORK / f"index-{slug(args.embedder)}"
    t = time.perf_counter()
    qa = QA.open(args.corpus, index, embedder=args.embedder, progress=False, log=quiet)
    opened = time.perf_counter() - t
    timed = TimedEmbedder(qa.embedder)
    retriever = Retriever(qa.index, timed, qa.retriever.settings)
    questions = [item.question for item in load_gold(args.gold)]
    for question in questions[: args.warmup]:
        qa.ask(question)

    stages = ["question embedding alone", "query: embedding", "query: terms", "search: dense chunks", "search: bm25", "search: rrf fusion", "search (whole)", "extract",
              "ask.translate", "ask.embed", "ask.retrieve", "ask.extract", "ask.read", "ask.total",
              "ask.total, fr questions", "ask.total, en questions"]
    times = {name: [] for name in [*stages, "total / read", "sentences read"]}
    for _ in range(args.passes):
        for question in questions:
            one_question(qa, retriever, timed, question, times)

    counts = qa.index.manifest["counts"]
    print(header(f"latency.py: {len(questions)} gold questions x {args.passes} passes, warm "
                 f"({args.warmup} warm-up questions), embedder {qa.embedder.identity}"))
    print(f"index {index}: {counts['documents']} documents, {counts['chunks']} chunks, "
          f"{counts['sentences']} sentences (QA.open {opened:.1f} s)\n")
    rows = [[name, pct(times[name], 50), pct(times[name], 95), pct(times[name], 99), float(np.mean(times[name]))]
            for name in stages if times[name]]
    print(table(["stage", "p50 ms", "p95 ms", "p99 ms", "mean ms"], rows))
    total = times["ask.total"]
    ratio = times["total / read"]
    print(f"ask.total / ask.read (the reader's model work): p50 {pct(ratio, 50):.2f}, p95 {pct(ratio, 95):.2f} "
          f"(target p50 <= {TARGET_RATIO}: {verdict(pct(ratio, 50), TARGET_RATIO)})")
    read = np.array(times["sentences read"][: len(total)])
    for lo, hi in ((0, 20), (20, 40), (40, 80), (80, 10**6)):
        chosen = [t for t, n in zip(total, read) if lo <= n < hi]
        if chosen:
            print(f"  {lo}-{hi if hi < 10**6 else 'more'} sentences read: {len(chosen)} questions, "
                  f"ask.total p50 {pct(chosen, 50):.1f} ms, p95 {pct(chosen, 95):.1f} ms")
    print(f"targets: ask.total p50 {pct(total, 50):.1f} ms <= {TARGET_P50:.0f} ms: {verdict(pct(total, 50), TARGET_P50)}; "
          f"p95 {pct(total, 95):.1f} ms <= {TARGET_P95:.0f} ms: {verdict(pct(total, 95), TARGET_P95)}")


if __name__ == "__main__":
    main()
