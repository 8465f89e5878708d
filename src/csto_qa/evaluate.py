"""Evaluation against a gold set (JSON Lines, the format of design.md), with design.md's metrics."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import cite
from .analyze import fold
from .load import stored_text
from .qa import QA
from .types import Result

SUMMARY_KEYS = ("n", "answer_accuracy", "hit@1", "hit@3", "hit@5", "mrr", "citation_accuracy", "faithfulness",
                "abstention_precision", "abstention_recall", "latency_ms_p50", "latency_ms_p95")


class GoldError(ValueError):
    pass


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
                                  r.get("split", ""), r.get("type", ""), r.get("kind", "")))
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
        doc = next(d for d in self.qa.index.documents if d.source == a.source)
        if a.source not in self._stored:
            self._stored[a.source] = stored_text(self.corpus / a.source)
        return cite.verify(a.quote, self._stored[a.source], doc, a.start, a.end)

    def run(self, items: list[GoldItem], k: int = 5, mode: str = "hybrid") -> dict:
        records = []
        for item in items:
            result = self.qa.ask(item.question, k=k, mode=mode)
            passages = [p.to_dict() for p in result.passages]
            records.append({
                "id": item.id, "split": item.split, "lang": item.lang, "type": item.type,
                "answerable": item.answerable, "kind": item.kind, "correct": judge(item, result),
                "abstained": result.abstained,
                "faithful": self.faithful(result),
                "cited_gold_source": bool(result.answer and result.answer.source in item.sources),
                "hit_rank": next((i for i, p in enumerate(passages, 1) if _passage_hit(p, item)), None),
                "answer": result.answer.to_dict() if result.answer else None, "passages": passages,
                "latency_ms": result.timings_ms["total"],
            })
        return {"summary": summarize(records), "questions": records}


def summarize(records: list[dict]) -> dict:
    answerable = [r for r in records if r["answerable"]]
    unanswerable = [r for r in records if not r["answerable"]]
    abstained = [r for r in records if r["abstained"]]
    answered = [r for r in records if not r["abstained"]]

    def share(rows, test):
        return round(sum(1 for r in rows if test(r)) / len(rows), 4) if rows else 0.0

    latencies = np.array([r["latency_ms"] for r in records]) if records else np.zeros(1)
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
        "latency_ms_p50": round(float(np.percentile(latencies, 50)), 1),
        "latency_ms_p95": round(float(np.percentile(latencies, 95)), 1),
    }
    return summary


def table(columns: dict[str, dict]) -> str:
    """Metrics as rows, one column per part (dev, test, all...)."""
    names = list(columns)
    keys = [*SUMMARY_KEYS[:10], "abstention_off_topic", "abstention_near_miss", "false_abstention", *SUMMARY_KEYS[10:]]
    width = max(len(k) for k in keys)
    lines = [f"{'metric':<{width}}  " + "  ".join(f"{n:>8}" for n in names)]
    lines.append("-" * len(lines[0]))
    for key in keys:
        cells = []
        for n in names:
            v = columns[n].get(key, "")
            cells.append(f"{v:>8}" if isinstance(v, int) else f"{v:>8.3f}" if key[:7] != "latency" else f"{v:>8.1f}")
        lines.append(f"{key:<{width}}  " + "  ".join(cells))
    return "\n".join(lines)
