"""Ablation: every retrieval and extraction rule and weight turned off in turn, measured on the dev
parts alone ("dev" and "seen": docs/evaluation.md), per set and language. A rule stays when turning it
off loses questions on dev; the table is docs/ablation.md.

A question counts as right when an answerable one is answered with a gold answer, or an unanswerable
one is declined; the figure per cell is how many more dev questions are right with the rule than
without it (negative: the rule costs questions). Rules are turned off through their settings where
they have one, else by replacing the function that applies them for the run (the engine is not
edited). Index-time rules (what is embedded) would need an index per ablation and are not in this
table; nor is the follow-up's prior (w_prior), which only a conversation uses: it is measured on the
multi-turn set (docs/pipeline.md, conversation); typed_margin is part of "typed sentence first".
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import time

from benchlib import header, quiet, table
from quality import outcomes
from csto_qa import extract as ex
from csto_qa import retrieve as rt
from csto_qa import translate
from csto_qa.embed import create

DEV = ("dev", "seen")
LANGS = ("fr", "en")


@contextlib.contextmanager
def replaced(owner, name: str, value):
    old = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, old)


def _no_bridge(self, vectors):
    return [[] for _ in range(len(vectors))]


def _no_known_scaling(search):
    def search_with_full_vote(self, query, k=5, mode="hybrid", prior=None):
        return search(self, dataclasses.replace(query, known=1.0), k, mode, prior)
    return search_with_full_vote


def _no_title(coverage):
    def without_title(self, terms, text, doc=None):
        return coverage(self, terms, text, None)
    return without_title


def _no_typed_first(extract_fn):
    """when / how many: quote the best sentence, typed or not, and never decline for want of a date."""
    def extract(self, hits, query):
        with replaced(ex, "answer_type", lambda q: "other" if ex.question_type(q) in ("when", "how_many", "amount")
                      else ex.question_type(q)):
            return extract_fn(self, hits, query)
    return extract


# (rule, how it is turned off: extract settings, retrieve settings, replacements (owner, name, factory))
ABLATIONS = [
    ("dense sentences-in-context list (w_sentences)", {}, {"w_sentences": 0.0}, []),
    ("BM25 list (w_bm25)", {}, {"w_bm25": 0.0}, []),
    ("BM25 vote scaled by the known share of the question", {}, {}, [(rt.Retriever, "search", lambda f: _no_known_scaling(f))]),
    ("word bridge by word embeddings (min_translation)", {}, {}, [(rt.Retriever, "_translations", lambda f: _no_bridge)]),
    ("translation's words as BM25 terms", {}, {"translated_terms": False}, []),
    ("sentence similarity (w_sentence)", {"w_sentence": 0.0}, {}, []),
    ("sentence-in-context similarity (w_context)", {"w_context": 0.0}, {}, []),
    ("coverage of the question's words (w_coverage)", {"w_coverage": 0.0}, {}, []),
    ("document title in coverage", {}, {}, [(ex.Extractor, "coverage", lambda f: _no_title(f))]),
    ("passage rank (w_rank)", {"w_rank": 0.0}, {}, []),
    ("holds the type asked for (w_typed)", {"w_typed": 0.0}, {}, []),
    ("fragment penalty (w_fragment)", {"w_fragment": 0.0}, {}, []),
    ("other dates penalty (w_other_date)", {"w_other_date": 0.0}, {}, []),
    ("neighbour sentence joins the quote (join_margin)", {"join_margin": -1.0}, {}, []),
    ("a question sentence is answered by the next one", {}, {}, [(ex.Extractor, "_asks", lambda f: lambda self, s: False)]),
    ("a sentence opening a list takes its items", {}, {}, [(ex.Extractor, "_list_after", lambda f: lambda self, s: s)]),
    ("documents must name the year asked", {}, {}, [(ex.Extractor, "_dated", lambda f: lambda self, e, q: e)]),
    ("when / how many: typed sentence first, else decline", {}, {}, [(ex.Extractor, "extract", lambda f: _no_typed_first(f))]),
    ("keyword query naming a unit is an amount query", {}, {}, [(ex, "answer_type", lambda f: ex.question_type)]),
    ("numbers that count nothing (footnotes, years, issue numbers)", {}, {}, [(ex, "_NOT_COUNTS", lambda f: [])]),
    ("relevance abstention (min_relevance)", {"min_relevance": -1.0}, {}, []),
    ("lower bar for questions in the other language (cross_lingual)", {"cross_lingual": 0.0}, {}, []),
]


def rights(groups: dict[str, list[dict]]) -> dict[tuple[str, str], int]:
    """Right dev questions per (set, language): answerable answered right, unanswerable declined."""
    out = {}
    for label, records in groups.items():
        name = label.split("/")[0]
        for r in records:
            if r["split"] in DEV:
                key = (name, r["lang"])
                out[key] = out.get(key, 0) + (r["correct"] if r["answerable"] else r["abstained"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="run the rules whose name holds this text")
    ap.add_argument("--translator", default=None, help="apertium (default where installed) or none")
    args = ap.parse_args()
    embedder = create(log=quiet)
    translator = translate.create(args.translator)
    t = time.perf_counter()
    base = rights(outcomes(embedder, translator=translator))
    keys = sorted(base)
    rows = []
    for rule, extract, retrieve, patches in ABLATIONS:
        if args.only and args.only not in rule:
            continue
        with contextlib.ExitStack() as stack:
            for owner, name, factory in patches:
                stack.enter_context(replaced(owner, name, factory(getattr(owner, name))))
            off = rights(outcomes(embedder, extract, retrieve, translator))
        gains = [base[k] - off.get(k, 0) for k in keys]
        total = sum(gains)
        rows.append([rule, *[f"{g:+d}" if g else "0" for g in gains], f"{total:+d}", "keep" if total > 0 else "REMOVE"])
    print(header(f"ablation.py: dev questions right with each rule minus without it, embedder {embedder.identity}, "
                 f"{translate.status(translator)}"))
    print(f"with every rule: {sum(base.values())} dev questions right; "
          + ", ".join(f"{s} {l} {base[(s, l)]}" for s, l in keys) + f" ({time.perf_counter() - t:.0f} s)\n")
    print(table(["rule (turned off)", *[f"{s} {l}" for s, l in keys], "total", "verdict"], rows))


if __name__ == "__main__":
    main()
