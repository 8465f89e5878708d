"""Ablation: every signal of the reader, and every rule of retrieval and quoting, turned off in turn,
measured on the dev parts alone (PIAF's dev articles, and the gold sets' "dev" and "seen" parts:
docs/evaluation.md), per set and language. What does not gain goes; the table is docs/ablation.md.

A question counts as right when an answerable one is answered with a gold answer, or an unanswerable
one is declined; each cell is how many more dev questions are right with the signal or rule than
without it (negative: it costs questions).

- The reader's signals (reader/decide.py FEATURES): the engine's measurements of every dev question
  are taken once, then the ranking and decision are fitted without the signal and scored by 5-fold
  cross-validation over questions (fitted on four fifths, scored on the fifth left out), against the
  same cross-validation with every signal.
- Rules of retrieval and quoting: turned off through their settings where they have one, else by
  replacing the function that applies them for the run (the engine is not edited), with the shipped
  reader; scored on the gold sets' dev parts by bench/quality.py's run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import time

from benchlib import ROOT, WORK, header, quiet, table
from quality import outcomes
from csto_qa import extract as ex
from csto_qa import retrieve as rt
from csto_qa import translate
from csto_qa.embed import create
from csto_qa.reader import decide, fit

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


def _no_known_scaling(search):
    def search_with_full_vote(self, query, k=5, mode="hybrid", prior=None):
        return search(self, dataclasses.replace(query, known=1.0), k, mode, prior)
    return search_with_full_vote


def _no_title(coverage):
    def without_title(self, terms, text, doc=None):
        return coverage(self, terms, text, None)
    return without_title


# (rule, how it is turned off: extract settings, retrieve settings, replacements (owner, name, factory))
ABLATIONS = [
    ("BM25 list (w_bm25)", {}, {"w_bm25": 0.0}, []),
    ("BM25 vote scaled by the known share of the question", {}, {}, [(rt.Retriever, "search", lambda f: _no_known_scaling(f))]),
    ("translation's words as BM25 terms", {}, {"translated_terms": False}, []),
    ("document title in coverage", {}, {}, [(ex.Extractor, "coverage", lambda f: _no_title(f))]),
    ("neighbour sentence joins the quote (join_margin)", {"join_margin": -100.0}, {}, []),
    ("a question sentence is answered by the next one", {}, {}, [(ex.Extractor, "_asks", lambda f: lambda self, s: False)]),
    ("a sentence opening a list takes its items", {}, {}, [(ex.Extractor, "_list_after", lambda f: lambda self, s: s)]),
    ("the reader's decision (abstention)", {"abstain": False}, {}, []),
]


def cross_validated(samples, drop: tuple[str, ...] = (), folds: int = 5) -> dict[tuple[str, str], int]:
    """Right questions per (set, language), each scored by a fit that did not see it."""
    out: dict[tuple[str, str], int] = {}
    for k in range(folds):
        train = [s for i, s in enumerate(samples) if i % folds != k]
        held = [s for i, s in enumerate(samples) if i % folds == k]
        report = decide.fit_report(decide.fit(train, drop=drop, log=quiet), held)
        for group, g in report.items():
            name, lang = group.rsplit("-", 1)
            out[(name, lang)] = out.get((name, lang), 0) + g["answered_right"] + g["unanswerable_declined"]
    return out


def reader_rows(work) -> tuple[dict, list[list]]:
    samples = fit.collect(fit.piaf.DEFAULT_PATH, ROOT / "gold" / "sets.json", work, log=quiet)
    base = cross_validated(samples)
    keys = sorted(base)
    rows = []
    for feature in decide.FEATURES:
        off = cross_validated(samples, drop=(feature,))
        gains = [base[k] - off.get(k, 0) for k in keys]
        rows.append([f"reader signal: {feature}", *[f"{g:+d}" if g else "0" for g in gains], f"{sum(gains):+d}",
                     "keep" if sum(gains) > 0 else "REMOVE"])
    return base, rows


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
    ap.add_argument("--only", help="run the signals and rules whose name holds this text")
    ap.add_argument("--part", choices=("reader", "rules", "both"), default="both")
    ap.add_argument("--translator", default=None, help="apertium (default where installed) or none")
    args = ap.parse_args()
    embedder = create(log=quiet)
    translator = translate.create(args.translator)
    print(header(f"ablation.py: dev questions right with each signal or rule minus without it, embedder "
                 f"{embedder.identity}, {translate.status(translator)}"))
    if args.part in ("reader", "both"):
        t = time.perf_counter()
        base, rows = reader_rows(WORK)  # the indexes bench/quality.py and train-reader keep there
        keys = sorted(base)
        print(f"\nreader, 5-fold cross-validated, every signal: {sum(base.values())} dev questions right; "
              + ", ".join(f"{s} {l} {base[(s, l)]}" for s, l in keys) + f" ({time.perf_counter() - t:.0f} s)\n")
        print(table(["signal (left out)", *[f"{s} {l}" for s, l in keys], "total", "verdict"],
                    [r for r in rows if not args.only or args.only in r[0]]))
    if args.part in ("rules", "both"):
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
        print(f"\nrules, with every rule: {sum(base.values())} dev questions right; "
              + ", ".join(f"{s} {l} {base[(s, l)]}" for s, l in keys) + f" ({time.perf_counter() - t:.0f} s)\n")
        print(table(["rule (turned off)", *[f"{s} {l}" for s, l in keys], "total", "verdict"], rows))


if __name__ == "__main__":
    main()
