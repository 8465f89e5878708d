"""Evaluation against a gold set (JSON Lines, the format of design.md), with design.md's metrics, and the
report of ``csto-qa eval``: four systems side by side, breakdowns, abstention confusion, a chart."""

from __future__ import annotations

import html
import json
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import cite
from .analyze import fold
from .index import FORMAT_VERSION
from .load import stored_text
from .qa import QA
from .types import Result

SUMMARY_KEYS = ("n", "answer_accuracy", "hit@1", "hit@3", "hit@5", "mrr", "citation_accuracy", "faithfulness",
                "abstention_precision", "abstention_recall", "latency_ms_p50", "latency_ms_p95")
TABLE_KEYS = (*SUMMARY_KEYS[:10], "abstention_off_topic", "abstention_near_miss", "false_abstention",
              "short_answer_rate", "short_answer_precision", *SUMMARY_KEYS[10:])
BREAKDOWN_KEYS = ("n", "answer_accuracy", "hit@5", "false_abstention")
SHORT_ANSWER_TYPES = ("when", "how_many", "who", "where")  # gold types whose answer is a span

# The report's columns, name -> (retrieval mode, abstention on). Retrieval metrics (hit@k, mrr) do not
# depend on abstention, so they compare the three modes; hybrid and full differ only in abstention, so
# their answer metrics show what it adds.
SYSTEMS = {"bm25": ("bm25", True), "dense": ("dense", True), "hybrid": ("hybrid", False), "full": ("hybrid", True)}
LANGUAGES = {"fr": "French", "en": "English"}
# Gold splits: "dev" and "seen" (questions the engine was tuned on, or whose failures were read) are
# for tuning; "test" and "sealed" are held out: reported first, and in aggregate only.
HELD_OUT = ("sealed", "test")
SEALED_LOG = "runs.jsonl"  # beside the sealed gold files: one line per run of sealed questions


class GoldError(ValueError):
    pass


def listable(records: Iterable[dict]) -> list[dict]:
    """The records that may be listed one by one: those of the parts tuned on."""
    return [r for r in records if r["split"] not in HELD_OUT]


@dataclass(frozen=True)
class GoldItem:
    id: str
    lang: str
    question: str
    answers: tuple[str, ...]
    sources: tuple[str, ...]
    answerable: bool
    split: str = ""
    type: str = ""
    kind: str = ""  # for unanswerable questions: "off_topic" or "near_miss" (on the corpus's subjects)
    # multi-turn sets (docs/contracts.md): one line per turn, a conversation's turns in order
    conversation: str = ""
    turn: int = 0
    standalone: str = ""  # the same question with its subject spelled out
    follow_up: bool = False  # it depends on the earlier turns
    topic_change: bool = False  # it starts a new subject: it must inherit nothing


def load_gold(path: Path) -> list[GoldItem]:
    items = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise GoldError(f"cannot read gold file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            items.append(GoldItem(str(r["id"]), r.get("lang", ""), r["question"], tuple(r.get("answers", [])),
                                  tuple(r.get("sources", [])), bool(r.get("answerable", True)),
                                  r.get("split", ""), r.get("type", ""), r.get("kind", ""),
                                  str(r.get("conversation", "")), int(r.get("turn", 0)), r.get("standalone", ""),
                                  bool(r.get("follow_up", False)), bool(r.get("topic_change", False))))
        except (ValueError, KeyError, TypeError) as exc:
            raise GoldError(f"{path}:{n}: not a gold record ({type(exc).__name__}: {exc})") from None
    if not items:
        raise GoldError(f"{path}: no questions")
    return items


def _norm(text: str) -> str:
    return fold(html.unescape(text))


def contains_answer(text: str, item: GoldItem) -> bool:
    t = _norm(text)
    return any(_norm(a) in t for a in item.answers)


def _short_answer_right(item: GoldItem, result: Result, correct: bool) -> bool | None:
    """Whether the short answer inside a right quote is (part of) a gold answer, or holds one whole;
    None when there is no short answer to judge."""
    a = result.answer
    if not (correct and a and a.short_answer and item.answers):
        return None
    short = _norm(a.short_answer)
    return any(short in _norm(g) or _norm(g) in short for g in item.answers)


def _passage_hit(p: dict, item: GoldItem) -> bool:
    return p["source"] in item.sources and (not item.answers or contains_answer(p["text"], item))


def judge(item: GoldItem, result: Result) -> bool:
    """design.md: correct when the quote contains a gold answer; with no answers listed, when the
    cited source is a gold source; for an unanswerable question, when the system abstains."""
    if not item.answerable:
        return result.abstained
    if result.answer is None:
        return False
    if item.answers:
        return contains_answer(result.answer.quote, item)
    return result.answer.source in item.sources


class Evaluator:
    def __init__(self, qa: QA, corpus: Path):
        self.qa = qa
        self.corpus = Path(corpus)
        self._stored: dict[str, str] = {}

    def faithful(self, result: Result) -> bool:
        a = result.answer
        if a is None:
            return True
        doc = self.qa.document(a.source)
        if a.source not in self._stored:
            self._stored[a.source] = stored_text(self.corpus / a.source)
        return cite.verify(a.quote, self._stored[a.source], a.start, a.end, doc.format)

    def run(self, items: list[GoldItem], k: int = 5, mode: str = "hybrid", abstain: bool = True) -> dict:
        """``abstain=False`` turns the reader's decision off for this run only: the best sentence is
        quoted whatever its confidence."""
        settings = self.qa.extractor.settings
        if not abstain:
            self.qa.extractor.settings = replace(settings, abstain=False)
        try:
            records = [self._record(item, k, mode) for item in items]
        finally:
            self.qa.extractor.settings = settings
        return {"summary": summarize(records), "questions": records}

    def _record(self, item: GoldItem, k: int, mode: str) -> dict:
        result = self.qa.ask(item.question, k=k, mode=mode)
        correct = judge(item, result)
        passages = [p.to_dict() for p in result.passages]
        return {
            "id": item.id, "split": item.split, "lang": item.lang, "type": item.type,
            "answerable": item.answerable, "kind": item.kind, "correct": correct,
            "abstained": result.abstained,
            "faithful": self.faithful(result),
            "cited_gold_source": bool(result.answer and result.answer.source in item.sources),
            "hit_rank": next((i for i, p in enumerate(passages, 1) if _passage_hit(p, item)), None),
            "short_answer_right": _short_answer_right(item, result, correct),
            "answer": result.answer.to_dict() if result.answer else None, "passages": passages,
            "latency_ms": result.timings_ms["total"],
        }


def conversations(qa: QA, items: list[GoldItem], corpus: Path) -> list[dict]:
    """A multi-turn set, conversation by conversation: each turn asked with the engine's own earlier
    turns as its history, and each follow-up asked again alone, in its standalone wording."""
    evaluator = Evaluator(qa, corpus)
    records, history, current = [], [], None
    for item in items:
        if item.conversation != current:
            history, current = [], item.conversation
        result = qa.ask(item.question, history=history)
        answer = result.to_dict()
        record = {"id": item.id, "conversation": item.conversation, "turn": item.turn, "split": item.split,
                  "lang": item.lang, "answerable": item.answerable, "kind": item.kind, "follow_up": item.follow_up,
                  "topic_change": item.topic_change, "correct": judge(item, result), "abstained": result.abstained,
                  "faithful": evaluator.faithful(result), "context": answer["context"],
                  "answer": answer["answer"]}
        if item.follow_up:
            alone = qa.ask(item.standalone or item.question)
            record["standalone_correct"] = judge(item, alone)
        records.append(record)
        history.append({"question": item.question, "result": answer})
    return records


def conversation_summary(records: list[dict]) -> dict:
    """Follow-ups answered in the conversation against the same questions asked alone (answerable
    ones), unanswerable follow-ups declined, topic changes that inherited nothing, faithfulness."""
    follow = [r for r in records if r["follow_up"] and r["answerable"]]
    declined = [r for r in records if r["follow_up"] and not r["answerable"]]
    changes = [r for r in records if r["topic_change"]]

    def share(rows, test):
        return round(sum(1 for r in rows if test(r)) / len(rows), 4) if rows else 0.0

    return {"turns": len(records), "follow_ups": len(follow),
            "follow_up_accuracy": share(follow, lambda r: r["correct"]),
            "standalone_accuracy": share(follow, lambda r: r["standalone_correct"]),
            "follow_ups_with_context": share(follow, lambda r: r["context"] is not None),
            "unanswerable_follow_ups_declined": share(declined, lambda r: r["abstained"]),
            "topic_changes": len(changes),
            "topic_changes_inheriting_nothing": share(changes, lambda r: r["context"] is None),
            "first_turn_accuracy": share([r for r in records if r["turn"] == 1 and r["answerable"]],
                                         lambda r: r["correct"]),
            "faithfulness": share([r for r in records if r["answer"]], lambda r: r["faithful"]) or 1.0}


def summarize(records: list[dict]) -> dict:
    answerable = [r for r in records if r["answerable"]]
    unanswerable = [r for r in records if not r["answerable"]]
    abstained = [r for r in records if r["abstained"]]
    answered = [r for r in records if not r["abstained"]]

    def share(rows, test):
        return round(sum(1 for r in rows if test(r)) / len(rows), 4) if rows else 0.0

    latencies = np.array([r["latency_ms"] for r in records]) if records else np.zeros(1)
    typed_right = [r for r in answerable if r["correct"] and r.get("type") in SHORT_ANSWER_TYPES]
    shorts = [r for r in typed_right if r.get("short_answer_right") is not None]
    summary = {
        "n": len(records),
        "answer_accuracy": share(answerable, lambda r: r["correct"]),
        **{f"hit@{k}": share(answerable, lambda r, k=k: r["hit_rank"] is not None and r["hit_rank"] <= k)
           for k in (1, 3, 5)},
        "mrr": round(float(np.mean([1 / r["hit_rank"] if r["hit_rank"] else 0 for r in answerable])), 4)
        if answerable else 0.0,
        "citation_accuracy": share(answerable, lambda r: r["cited_gold_source"]),
        "faithfulness": share(answered, lambda r: r["faithful"]) if answered else 1.0,
        "abstention_precision": share(abstained, lambda r: not r["answerable"]) if abstained else 1.0,
        "abstention_recall": share(unanswerable, lambda r: r["abstained"]),
        "abstention_off_topic": share([r for r in unanswerable if r.get("kind") == "off_topic"], lambda r: r["abstained"]),
        "abstention_near_miss": share([r for r in unanswerable if r.get("kind") == "near_miss"], lambda r: r["abstained"]),
        "false_abstention": share(answerable, lambda r: r["abstained"]),
        # the short answer (a date, a quantity, a name, a place) inside right quotes to such questions
        "short_answer_rate": share(typed_right, lambda r: r.get("short_answer_right") is not None),
        "short_answer_precision": share(shorts, lambda r: r["short_answer_right"]) if shorts else 1.0,
        "latency_ms_p50": round(float(np.percentile(latencies, 50)), 1),
        "latency_ms_p95": round(float(np.percentile(latencies, 95)), 1),
    }
    return summary


def figures(records: list[dict]) -> dict:
    """A run's figures in aggregate, as the sealed runs' log keeps them: answer accuracy (all, English,
    French questions; None when there are none), hit@5, false abstention, unanswerable ones declined,
    faithfulness."""
    s = summarize(records)
    answerable = [r for r in records if r["answerable"]]
    by_lang = {lang: [r for r in answerable if r["lang"] == lang] for lang in LANGUAGES}
    return {"answerable": len(answerable), "answer_accuracy": s["answer_accuracy"],
            **{f"answer_accuracy_{lang}": summarize(rows)["answer_accuracy"] if rows else None
               for lang, rows in by_lang.items()},
            "hit@5": s["hit@5"], "false_abstention": s["false_abstention"],
            "unanswerable": len(records) - len(answerable),
            "declined": sum(1 for r in records if not r["answerable"] and r["abstained"]),
            "faithfulness": s["faithfulness"]}


def _commit() -> tuple[str | None, bool | None]:
    """The engine's git commit, and whether its code (this package) differs from it; both None
    outside a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=30)
        status = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=here, capture_output=True,
                                text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None, None
    if head.returncode != 0:
        return None, None
    return head.stdout.strip(), bool(status.stdout.strip())


def engine_identity(embedder, translator) -> str:
    """What answered, beside the code's commit: the embedder, the translator, the index format."""
    return f"{embedder.identity}; translation {translator.identity or 'off'}; index format {FORMAT_VERSION}"


def log_sealed_run(folder: Path, engine: str, command: str, sets: dict[str, dict]) -> Path:
    """Appends one line for a run of sealed questions to the log beside them (``folder``/SEALED_LOG):
    date, commit, engine, command and each set's figures; returns the log's path. Every run is a look
    at the sealed set, so each is counted, by the tool that ran it."""
    commit, changed = _commit()
    entry = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": commit,
             "uncommitted_changes": changed, "engine": engine, "command": command, "figures": sets}
    path = Path(folder) / SEALED_LOG
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(entry, ensure_ascii=False) + "\n")
    return path


def per_split(records: list[dict]) -> dict[str, dict]:
    """Summaries per gold split (dev, test...), then over all questions."""
    parts = sorted({r["split"] for r in records if r["split"]})
    return {**{p: summarize([r for r in records if r["split"] == p]) for p in parts}, "all": summarize(records)}


def breakdowns(records: list[dict], gold: dict[str, GoldItem]) -> dict[str, dict]:
    """Answerable questions by language, question type and document (first gold source). All splits
    together: one split leaves a handful of questions per group."""
    keys = {"language": lambda r: r["lang"], "type": lambda r: r["type"],
            "document": lambda r: gold[r["id"]].sources[0] if gold[r["id"]].sources else ""}
    out = {}
    for name, key in keys.items():
        groups: dict[str, list[dict]] = {}
        for r in records:
            if r["answerable"]:
                groups.setdefault(key(r) or "-", []).append(r)
        out[name] = {g: {k: summarize(rows)[k] for k in BREAKDOWN_KEYS} for g, rows in sorted(groups.items())}
    return out


def confusion(records: list[dict]) -> dict[str, dict]:
    """Gold answerable / unanswerable (and the latter by kind) x answered / abstained, in questions."""
    rows = {"answerable": lambda r: r["answerable"], "unanswerable": lambda r: not r["answerable"],
            "unanswerable/off_topic": lambda r: r["kind"] == "off_topic",
            "unanswerable/near_miss": lambda r: r["kind"] == "near_miss"}
    return {name: {"answered": sum(1 for r in records if test(r) and not r["abstained"]),
                   "abstained": sum(1 for r in records if test(r) and r["abstained"])}
            for name, test in rows.items()}


def report(evaluator: Evaluator, items: list[GoldItem], k: int = 5, log=lambda _: None) -> dict:
    """The four SYSTEMS on the gold set. ``summary`` and ``questions`` are the full pipeline's, as
    ``Evaluator.run`` gives them (design.md's schema); ``systems`` holds each system's summaries per
    split, ``breakdowns`` each system's breakdowns, ``confusion`` the full pipeline's abstentions."""
    runs = {}
    for name, (mode, abstain) in SYSTEMS.items():
        t = time.perf_counter()
        runs[name] = evaluator.run(items, k=k, mode=mode, abstain=abstain)
        log(f"eval: {name}: {len(items)} questions in {time.perf_counter() - t:.1f} s")
    gold = {item.id: item for item in items}
    return {**runs["full"],
            "systems": {name: per_split(run["questions"]) for name, run in runs.items()},
            "breakdowns": {name: breakdowns(run["questions"], gold) for name, run in runs.items()},
            "confusion": confusion(runs["full"]["questions"])}


def _cell(key: str, value) -> str:
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.1f}" if key.startswith("latency") else f"{value:.3f}"
    return str(value)


def table(columns: dict[str, dict], keys: tuple[str, ...] = TABLE_KEYS, first: str = "metric",
          transpose: bool = False, markdown: bool = False) -> str:
    """Metrics as rows, one column per part (dev, test, all...); transposed, one row per part (for many
    or long part names: documents). Aligned text for the terminal, or a Markdown table."""
    names = list(columns)
    if transpose:
        header = [first, *keys]
        rows = [[n, *(_cell(k, columns[n].get(k, "")) for k in keys)] for n in names]
    else:
        header = [first, *names]
        rows = [[k, *(_cell(k, columns[n].get(k, "")) for n in names)] for k in keys]
    if markdown:
        lines = [header, ["---", *["---:"] * (len(header) - 1)], *rows]
        return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    widths = [widths[0], *(max(8, w) for w in widths[1:])]

    def line(cells):
        return "  ".join([f"{cells[0]:<{widths[0]}}", *(f"{c:>{w}}" for c, w in zip(cells[1:], widths[1:]))])

    head = line(header)
    return "\n".join([head, "-" * len(head), *map(line, rows)])


def render(rep: dict, title: str, markdown: bool = False, chart_file: str | None = None) -> str:
    """The report's tables, as text for the terminal or as Markdown (then with the chart's image)."""
    systems, full = rep["systems"], rep["systems"]["full"]
    n_answerable = sum(1 for r in rep["questions"] if r["answerable"])
    out = [f"# csto-qa eval: {title}" if markdown else title,
           "Systems: bm25, dense = that retrieval alone, then extraction and abstention; hybrid = hybrid "
           "retrieval and extraction, abstention off; full = hybrid with abstention (the pipeline csto-qa runs)."]
    if markdown and chart_file:
        out.append(f"![answer accuracy, hit@5 and abstention per system]({chart_file})")

    def section(heading: str, body: str) -> None:
        out.extend([f"## {heading}" if markdown else f"{heading}:", body])

    section("Full pipeline, per split", table(full, markdown=markdown))
    for part in [*[p for p in HELD_OUT if p in full][:1], "all"]:
        section(f"Systems side by side, {'all questions' if part == 'all' else part + ' split'}",
                table({name: parts[part] for name, parts in systems.items()}, markdown=markdown))
    for name, groups in rep["breakdowns"]["full"].items():
        section(f"Full pipeline by {name} ({n_answerable} answerable questions, all splits)",
                table(groups, BREAKDOWN_KEYS, first=name, transpose=True, markdown=markdown))
    section("Abstention, full pipeline (all questions)",
            table(rep["confusion"], ("answered", "abstained"), first="gold", transpose=True, markdown=markdown))
    return "\n\n".join(out) + "\n"


def chart(rep: dict, title: str, path: Path) -> None:
    """One PNG: per system, answer accuracy, hit@5 and abstention on the test split; accuracy by language."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg: no display needed
    from matplotlib.figure import Figure

    systems = rep["systems"]
    part = next((p for p in HELD_OUT if p in systems["full"]), "all")
    metrics = {"answer_accuracy": "answer accuracy", "hit@5": "hit@5 (retrieval)",
               "abstention_recall": "abstains when\nunanswerable", "false_abstention": "abstains when\nanswerable"}
    langs = rep["breakdowns"]["full"]["language"]
    fig = Figure(figsize=(13, 5.6), layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, width_ratios=(3, 1.4))
    _bars(left, list(metrics.values()), {s: [systems[s][part][m] for m in metrics] for s in systems},
          f"per system, {part} split ({systems['full'][part]['n']} questions)")
    _bars(right, [f"{LANGUAGES.get(lang, lang)} ({g['n']})" for lang, g in langs.items()],
          {s: [rep["breakdowns"][s]["language"].get(lang, {}).get("answer_accuracy", 0.0) for lang in langs]
           for s in systems},
          "answer accuracy by question language\n(answerable questions, all splits)")
    labels = {"hybrid": "hybrid, abstention off", "full": "full: hybrid + abstention"}
    handles = left.get_legend_handles_labels()[0]
    fig.legend(handles, [labels.get(s, f"{s} retrieval") for s in systems], loc="outside lower center",
               ncols=len(systems), frameon=False)
    fig.suptitle(f"csto-qa eval: {title}", fontsize=12)
    fig.savefig(path, dpi=110)


def _bars(ax, groups: list[str], series: dict[str, list[float]], title: str) -> None:
    width = 0.8 / len(series)
    for i, (name, values) in enumerate(series.items()):
        x = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        ax.bar_label(ax.bar(x, values, width, label=name), fmt="%.2f", fontsize=7, padding=1)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of questions")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_title(title, fontsize=10)
