"""The engine on PIAF (French Wikipedia questions, SQuAD format): text it was never tuned on, asked in
French and, where Apertium is installed, in its English machine translation.

For each part chosen (csto_qa.reader.piaf: articles split train / dev / test by a hash of their title),
every article becomes a .txt file of a temporary corpus (its title on the first line, then its
paragraphs separated by blank lines), except a fixed quarter of them (HELD_OUT_SALT: the articles
whose salted title hash is lowest), which is left out of the index: their questions are asked all the
same, and the right behaviour is to decline. The other articles' questions are the answerable ones.

Per part and language, and over both: answer accuracy (the quote holds the gold answer, after
evaluate.contains_answer's normalisation), false abstention, "first passage, other sentence" (the
first passage holds the answer but the quote is wrong), hit@1 / hit@5 (a passage of the article
holds the answer), unanswerable questions declined, the median quote length (characters, over the
quotes given), and the wall-clock latency of QA.ask, warm (p50 / p95). When results carry a
confidence, a calibration table follows: accuracy of the answers given per confidence band, and the AUC of the
confidence (the result's, else the answer's) for right answers against what should not have been
answered (unanswerable questions, wrong answers; answerable questions declined are left out).

    python bench/piaf.py --part dev --limit 3
    python bench/piaf.py --part dev train --lang fr --json /tmp/piaf.json --keep /tmp/piaf-idx

The test part is reported, never tuned on (docs/evaluation.md). The data is read where it lies
(--data, default ../shared/data/piaf beside the repository) and never written into the repository.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchlib import ROOT, clocked, header, markdown, pct
from quality import changes
from csto_qa import QA, translate
from csto_qa.embed import create
from csto_qa.evaluate import GoldItem, contains_answer, judge
from csto_qa.extract import ExtractSettings
from csto_qa.reader import piaf
from csto_qa.reader.fit import held_out, place, write_corpus

LANGS = ("fr", "en")
BANDS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
COLUMNS = ["part / lang", "answerable", "accuracy", "false abst.", "1st psg, other sent.", "hit@1", "hit@5",
           "declined", "quote chars (median)", "p50 ms", "p95 ms"]


def outcome(qa: QA, part: str, q: piaf.Question, text: str, lang: str, source: str | None) -> dict:
    """One question asked: ``source`` is its article's file, None when the article is held out."""
    item = GoldItem(q.id, lang, text, (q.answer,), (source,) if source else (), source is not None)
    result, ms = clocked(qa.ask, text)
    a, passages = result.answer, result.passages
    hit = next((i for i, p in enumerate(passages, 1) if p.source == source and contains_answer(p.text, item)), None)
    first = passages[0] if passages else None
    return {"id": q.id, "part": part, "lang": lang, "answerable": item.answerable,
            "correct": judge(item, result),  # unanswerable: declined
            "abstained": result.abstained, "reason": result.reason,
            "quote_chars": len(a.quote) if a else None,
            "confidence": result.confidence, "answer_confidence": a.confidence if a else None,
            "hit_rank": hit, "first_has_answer": hit == 1,
            "quote_in_first": bool(a and first and a.source == first.source
                                   and first.start <= a.start and a.end <= first.end),
            "latency_ms": round(ms, 2)}


def run_part(part: str, articles: list[piaf.Article], langs: tuple[str, ...], embedder, translator,
             keep: Path | None, log, extract: dict | None = None) -> list[dict]:
    out = held_out(articles)
    indexed = [a for a in articles if a.title not in out]
    with tempfile.TemporaryDirectory(prefix=f"piaf-{part}-") as tmp:
        base = place(keep, f"piaf-{part}", embedder.identity) if keep else Path(tmp)
        names = write_corpus(indexed, base / "corpus")
        qa = QA.open(base / "corpus", base / "index", embedder, progress=False, log=log, translator=translator)
        qa.extractor.settings = dataclasses.replace(qa.extractor.settings, **(extract or {}))
        first = next((q for art in articles for q in art.questions), None)
        for text in [(first.text if lang == "fr" else first.english) for lang in langs] if first else []:
            if text:
                qa.ask(text)  # warm-up (translation pipelines, caches): not counted
        records = []
        for art in articles:
            for q in art.questions:
                for lang in langs:
                    text = q.text if lang == "fr" else q.english
                    if text:
                        records.append(outcome(qa, part, q, text, lang, names.get(art.title)))
    log(f"{part}: {len(articles)} articles ({len(out)} held out), {len(records)} questions asked")
    return records


def _share(rows: list[dict], test) -> float:
    return sum(1 for r in rows if test(r)) / len(rows) if rows else float("nan")


def row(label: str, records: list[dict]) -> list[str]:
    ans = [r for r in records if r["answerable"]]
    una = [r for r in records if not r["answerable"]]
    quotes = [r["quote_chars"] for r in records if r["quote_chars"] is not None]
    lat = [r["latency_ms"] for r in records]
    return [label, str(len(ans)), f"{_share(ans, lambda r: r['correct']):.3f}",
            f"{_share(ans, lambda r: r['abstained']):.3f}",
            f"{_share(ans, lambda r: r['first_has_answer'] and not r['abstained'] and not r['correct']):.3f}",
            f"{_share(ans, lambda r: r['hit_rank'] == 1):.3f}",
            f"{_share(ans, lambda r: r['hit_rank'] is not None and r['hit_rank'] <= 5):.3f}",
            f"{sum(r['abstained'] for r in una)}/{len(una)} ({_share(una, lambda r: r['abstained']):.2f})",
            f"{np.median(quotes):.0f}" if quotes else "-", f"{pct(lat, 50):.1f}", f"{pct(lat, 95):.1f}"]


def _score(r: dict) -> float | None:
    return r["confidence"] if r["confidence"] is not None else r["answer_confidence"]


def auc(pos: list[float], neg: list[float]) -> float:
    """P(a positive scores above a negative), ties counting half."""
    if not pos or not neg:
        return float("nan")
    p, n = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return float(((p > n).sum() + 0.5 * (p == n).sum()) / (p.size * n.size))


def calibration(label: str, records: list[dict]) -> list[str] | None:
    """Accuracy of the answers given per confidence band ("acc (n)"), then the AUC; None without confidences."""
    if not any(_score(r) is not None for r in records):
        return None
    answered = [r for r in records if not r["abstained"] and _score(r) is not None]
    cells = []
    for i, (lo, hi) in enumerate(zip(BANDS, BANDS[1:])):
        band = [r for r in answered if lo <= _score(r) < hi or (i == len(BANDS) - 2 and _score(r) == hi)]
        cells.append(f"{_share(band, lambda r: r['answerable'] and r['correct']):.2f} ({len(band)})" if band else "-")
    pos = [_score(r) for r in records if r["answerable"] and r["correct"] and _score(r) is not None]
    neg = [_score(r) for r in records if _score(r) is not None
           and (not r["answerable"] or (not r["abstained"] and not r["correct"]))]
    return [label, *cells, f"{auc(pos, neg):.3f} ({len(pos)} / {len(neg)})"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", nargs="+", choices=piaf.PARTS, default=["dev"], help="dev (default), test, train")
    ap.add_argument("--limit", type=int, default=None, help="the first N articles of each part only")
    ap.add_argument("--lang", choices=("fr", "en", "both"), default="both")
    ap.add_argument("--embedder", default=None, help="embedding model (default: the engine's)")
    ap.add_argument("--data", type=Path, default=ROOT / piaf.DEFAULT_PATH, help="the PIAF folder or .json file")
    ap.add_argument("--json", type=Path, help="write every question's outcome here")
    ap.add_argument("--keep", type=Path, help="keep corpus and index here, one folder per part, to reuse them")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override an extract setting for this run (dev only), e.g. join_margin=2.0")
    args = ap.parse_args()
    if args.set and "test" in args.part:
        sys.exit("--set tunes: on dev or train parts only")
    extract = changes(ExtractSettings(), args.set)

    def log(message: str) -> None:
        print(message, file=sys.stderr)

    embedder = create(args.embedder, log=log)
    translator = translate.create()
    langs = LANGS if args.lang == "both" else (args.lang,)
    if "en" in langs and not translator.available:
        log(f"no English questions: {translate.status(translator)}")
        langs = tuple(lang for lang in langs if lang != "en")
    if not langs:
        sys.exit("nothing to ask: English questions need Apertium")
    by_part = piaf.parts(piaf.load(args.data))
    records = []
    try:
        for part in args.part:
            articles = by_part[part][:args.limit]
            if "en" in langs:
                piaf.translate_questions(articles, translator)
            records += run_part(part, articles, langs, embedder, translator, args.keep, log, extract)
    finally:
        translator.close()

    limit = f", first {args.limit} articles per part" if args.limit else ""
    print(header(f"PIAF, engine level: parts {', '.join(args.part)}{limit}, embedder {embedder.identity}"))
    print(translate.status(translator) + "\n")
    groups = []
    for part in args.part:
        mine = [r for r in records if r["part"] == part]
        groups += [(f"{part} {lang}", [r for r in mine if r["lang"] == lang]) for lang in langs]
        if len(langs) > 1:
            groups.append((f"{part} all", mine))
    print(markdown(COLUMNS, [row(label, recs) for label, recs in groups]))
    calib = [c for c in (calibration(label, recs) for label, recs in groups) if c]
    if calib:
        bands = [f"conf {lo:.1f}-{hi:.1f}" for lo, hi in zip(BANDS, BANDS[1:])]
        print("\nCalibration: accuracy of the answers given (n) per confidence band; AUC of the confidence, "
              "right answers against unanswerable questions and wrong answers (n / n)\n")
        print(markdown(["part / lang", *bands, "AUC"], calib))
    else:
        print("\n(no confidence in the results: no calibration)")
    if args.json:
        args.json.write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
