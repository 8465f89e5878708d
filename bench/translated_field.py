"""Translating the corpus instead of (or besides) the question: a second BM25 field over every chunk
translated at build time into the other language, searched with the question's own words.

For each set: every chunk is translated by the engine's translator (Apertium) into the language the
documents are not in, stemmed in that language and indexed with bm25s; a question asked in that
language then gets one more ranked list in the fusion: that field's BM25 scores for its own words,
with the weight of the ordinary BM25 list (scaled by how many of its words the field knows). Measured
on the dev parts with the question's translation on (the engine as it is) and off, against the same
two without the field. The field is built here, in the bench: the engine only has it if it wins.
"""

from __future__ import annotations

import argparse
import time

import bm25s
import numpy as np

from benchlib import WORK, header, quiet, slug, table
from quality import SETS
from csto_qa import QA, analyze, translate
from csto_qa import retrieve as rt
from csto_qa.embed import create
from csto_qa.evaluate import Evaluator, load_gold

DEV = ("dev", "seen")


def field(qa: QA, translator, other: str) -> tuple[bm25s.BM25, set[str], float]:
    t = time.perf_counter()
    texts = []
    for c in qa.index.chunks:
        doc = qa.index.documents[c.doc]
        done = translator.translate(" ".join(doc.text[c.start:c.end].split()), qa.index.lang, other)
        texts.append(done.text if done else "")
    tokens = [analyze.stems(text, other) or [""] for text in texts]
    bm25 = bm25s.BM25()
    bm25.index(tokens, show_progress=False)
    return bm25, {t for toks in tokens for t in toks}, time.perf_counter() - t


def with_field(bm25, vocab, other):
    real = rt.Retriever.search

    def search(self, query, k=5, mode="hybrid", prior=None):
        if mode != "hybrid" or query.lang != other:
            return real(self, query, k, mode, prior)
        words = analyze.stems(query.text, other)
        known = [w for w in words if w in vocab]
        extra = np.asarray(bm25.get_scores(known), dtype=np.float32) if known else np.zeros(len(self.index.chunks))
        original = self._rrf

        def rrf(lists):
            return original([*lists, (extra, self.settings.w_bm25 * len(known) / max(len(words), 1))])

        self._rrf = rrf
        try:
            return real(self, query, k, mode, prior)
        finally:
            del self._rrf
    return search


def right(records) -> tuple[int, int]:
    dev = [r for r in records if r["split"] in DEV]
    return sum(r["correct"] if r["answerable"] else r["abstained"] for r in dev), len(dev)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.parse_args()
    embedder = create(log=quiet)
    translator = translate.create()
    if not translator.available:
        raise SystemExit(translate.status(translator))
    rows = []
    for name, corpus, gold, _ in SETS:
        items = load_gold(gold)
        qa = QA.open(corpus, WORK / f"quality-{name}-{slug(embedder.identity)}", embedder, progress=False, log=quiet,
                     translator=translator)
        other = "en" if qa.index.lang == "fr" else "fr"
        bm25, vocab, seconds = field(qa, translator, other)
        runs = {}
        for label, tr in (("question translated", translator), ("not translated", translate.create("none"))):
            qa.translator = tr
            runs[label] = right(Evaluator(qa, corpus).run(items)["questions"])
            real = rt.Retriever.search
            rt.Retriever.search = with_field(bm25, vocab, other)
            try:
                runs[label + " + translated field"] = right(Evaluator(qa, corpus).run(items)["questions"])
            finally:
                rt.Retriever.search = real
        rows.append([name, f"{seconds:.1f}", *[f"{r}/{n}" for r, n in runs.values()]])
    print(header("translated_field.py: dev questions right (answerable answered right, unanswerable declined)"))
    print(table(["set", "field built (s)", "question translated", "+ translated field", "not translated",
                 "+ translated field"], rows))


if __name__ == "__main__":
    main()
