"""Answer quality on every gold set of the repository, part by part: the table an engine change is
judged on. The parts (docs/evaluation.md): "dev" and "seen" (former test questions, read and tuned on)
decide; "test" parts (English corpus, not yet read) are reported; the sealed set (gold/sealed/, --sealed)
is run at the end of a piece of work and reported in aggregate only, and each of its runs is appended
to gold/sealed/runs.jsonl. No test or sealed question is ever listed.

Sets: the CSTO corpus with gold_v2, split into the questions of gold_v1 and the ones v2 added; the
second French corpus (tests/data/corpus_fr2); the FAQ portal (tests/data/corpus_faq); the English
corpus (tests/data/corpus_en). A set's row per part: answer accuracy over its answerable questions,
by language, hit@1 / hit@5, the first citation from a gold source, false abstention, unanswerable
questions declined, short answers (rate, precision).

An ablation needs no edit of the engine: --set overrides a field of ExtractSettings or RetrieveSettings
for the run, e.g.

    python bench/quality.py --set extract.w_coverage=0.5 --set retrieve.rrf_k=20 --json /tmp/b.json
    python bench/quality.py --json /tmp/a.json --compare /tmp/b.json

--json writes the record of every dev and seen question (never with --sealed); --compare lists the dev
and seen questions whose outcome differs from an earlier --json run (right / declined / rank of the
first passage holding the answer). Test parts are in the table, in aggregate only. Indexes are kept in
$CSTO_QA_BENCH_DIR, built there on first use and rebuilt when a corpus changes (QA.open).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import sys
from pathlib import Path

from benchlib import ROOT, WORK, header, quiet, table
from csto_qa import QA, translate
from csto_qa.embed import create
from csto_qa.evaluate import Evaluator, engine_identity, figures, listable, load_gold, log_sealed_run, summarize
from csto_qa.extract import ExtractSettings
from csto_qa.reader.fit import place
from csto_qa.retrieve import RetrieveSettings

# (name, corpus, gold, gold whose questions form a set of their own): gold/sets.json; gold_v2 extends gold_v1
SETS = [(s["name"], ROOT / s["corpus"], ROOT / s["gold"], ROOT / s["subset"] if s.get("subset") else None)
        for s in json.loads((ROOT / "gold" / "sets.json").read_text(encoding="utf-8"))]
SEALED = ROOT / "gold" / "sealed"  # one file per set, named after it
PARTS = ("dev", "seen", "test")
COLUMNS = ["set / part", "answerable", "accuracy", "en", "fr", "hit@1", "hit@5", "cited right",
           "false abst.", "declined", "short rate", "short prec.", "faithful"]


def changes(settings, assignments: list[str]) -> dict:
    """The fields of ``settings`` that the "field=value" assignments set (values read as Python literals)."""
    out = {}
    for a in assignments:
        name, _, value = a.partition("=")
        if name not in {f.name for f in dataclasses.fields(settings)}:
            sys.exit(f"--set: {type(settings).__name__} has no field '{name}'")
        try:
            out[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            sys.exit(f"--set: '{value}' is not a number or a Python literal")
    return out


def row(label: str, records: list[dict]) -> list:
    s, f = summarize(records), figures(records)
    by_lang = [f"{f[key]:.3f}" if f[key] is not None else "-" for key in ("answer_accuracy_en", "answer_accuracy_fr")]
    return [label, f["answerable"], f"{f['answer_accuracy']:.3f}", *by_lang,
            f"{s['hit@1']:.3f}", f"{s['hit@5']:.3f}", f"{s['citation_accuracy']:.3f}", f"{s['false_abstention']:.3f}",
            f"{f['declined']}/{f['unanswerable']}",
            f"{s['short_answer_rate']:.2f}", f"{s['short_answer_precision']:.2f}", f"{s['faithfulness']:.3f}"]


def compare(old: dict, new: dict) -> list[str]:
    """The dev and seen questions of ``new`` whose outcome differs in ``old``; never a held-out one."""
    lines = []
    for group, records in new.items():
        before = {r["id"]: r for r in old.get(group, [])}
        for r in listable(records):
            b = before.get(r["id"])
            if b and (b["correct"], b["abstained"], b["hit_rank"]) != (r["correct"], r["abstained"], r["hit_rank"]):
                lines.append(f"{group} {r['split']} {r['id']} {r['lang']}: right {b['correct']} -> {r['correct']}, "
                             f"declined {b['abstained']} -> {r['abstained']}, hit {b['hit_rank']} -> {r['hit_rank']}")
    return lines


def outcomes(embedder, extract: dict | None = None, retrieve: dict | None = None,
             translator=None, sealed: bool = False) -> dict[str, list[dict]]:
    """Every question's record, per set (CSTO split into gold_v1 and what gold_v2 added), with these
    settings overridden; with ``sealed``, the sealed questions of each set instead."""
    groups = {}
    for name, corpus, gold, subset in SETS:
        index = place(WORK, name, embedder.identity) / "index"  # where train-reader --work WORK built it
        qa = QA.open(corpus, index, embedder, progress=False, log=quiet, translator=translator)
        qa.extractor.settings = dataclasses.replace(qa.extractor.settings, **(extract or {}))
        qa.retriever.settings = dataclasses.replace(qa.retriever.settings, **(retrieve or {}))
        if sealed:
            groups[name] = Evaluator(qa, corpus).run(load_gold(SEALED / f"{name}.jsonl"))["questions"]
            continue
        records = Evaluator(qa, corpus).run(load_gold(gold))["questions"]
        for r in records:
            r.pop("passages")  # the table and --compare need the outcome, not the passages' text
        if subset:
            first = {item.id for item in load_gold(subset)}
            groups[f"{name}/{subset.stem}"] = [r for r in records if r["id"] in first]
            groups[f"{name}/{gold.stem} added"] = [r for r in records if r["id"] not in first]
        else:
            groups[name] = records
    return groups


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--embedder", default=None, help="embedding model (default: the engine's)")
    ap.add_argument("--set", action="append", default=[], metavar="STEP.FIELD=VALUE",
                    help="override a setting for this run: extract.<field> or retrieve.<field>")
    ap.add_argument("--translator", default=None, help="apertium (default where installed) or none")
    ap.add_argument("--sealed", action="store_true",
                    help="the sealed set (gold/sealed/), in aggregate: per set and language, no question listed")
    ap.add_argument("--json", type=Path, help="write every question's record here")
    ap.add_argument("--compare", type=Path, help="list the questions whose outcome differs from this --json file")
    args = ap.parse_args()
    if args.sealed and (args.json or args.compare or args.set):
        sys.exit("--sealed is reported in aggregate, with the engine as it is: no --json, --compare or --set")
    steps = {"extract": [], "retrieve": []}
    for a in args.set:
        step, _, assignment = a.partition(".")
        if step not in steps or "=" not in assignment:
            sys.exit(f"--set {a}: expected extract.<field>=<value> or retrieve.<field>=<value>")
        steps[step].append(assignment)
    extract = changes(ExtractSettings(), steps["extract"])  # checked before any index is built
    retrieve = changes(RetrieveSettings(), steps["retrieve"])

    embedder = create(args.embedder)
    print(header(f"Answer quality per gold set, embedder {embedder.identity}"))
    if args.set:
        print("overrides: " + ", ".join(args.set))
    translator = translate.create(args.translator)
    print(translate.status(translator))
    groups = outcomes(embedder, extract, retrieve, translator, sealed=args.sealed)
    if args.sealed:
        rows = [row(f"{label} sealed", recs) for label, recs in groups.items()]
        rows.append(row("all sealed", [r for recs in groups.values() for r in recs]))
    else:
        rows = [row(f"{label} {split}", [r for r in recs if r["split"] == split])
                for label, recs in groups.items() for split in PARTS if any(r["split"] == split for r in recs)]
    print(table(COLUMNS, rows))
    if args.sealed:
        sets = {**{label: figures(recs) for label, recs in groups.items()},
                "all": figures([r for recs in groups.values() for r in recs])}
        log = log_sealed_run(SEALED, engine_identity(embedder, translator), "bench/quality.py --sealed", sets)
        print(f"\nthis run is logged in {log.relative_to(ROOT)}")
    if args.json:
        args.json.write_text(json.dumps({group: listable(recs) for group, recs in groups.items()}, ensure_ascii=False,
                                        indent=1), encoding="utf-8")
    if args.compare:
        changed = compare(json.loads(args.compare.read_text(encoding="utf-8")), groups)
        print(f"\n{len(changed)} dev and seen questions changed against {args.compare} (test parts: in aggregate "
              "above, never listed)" + "".join(f"\n  {c}" for c in changed))


if __name__ == "__main__":
    main()
