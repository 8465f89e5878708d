"""The eval report on the real corpus and gold set: four systems, breakdowns, confusion, Markdown, chart."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import pytest

from conftest import CORPUS, GOLD, ROOT
from csto_qa.evaluate import SUMMARY_KEYS, Evaluator, chart, render, report
from csto_qa.qa import QuestionError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def rep(qa, gold):
    return report(Evaluator(qa, CORPUS), gold)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_summary_and_questions_keep_the_schema(rep, gold):
    assert set(SUMMARY_KEYS) <= set(rep["summary"])
    assert len(rep["questions"]) == rep["summary"]["n"] == len(gold)
    assert {"id", "correct", "abstained", "answer", "passages"} <= set(rep["questions"][0])


def test_short_answers_are_judged_against_the_gold_answers(rep, gold):
    # the short answer highlighted in a right quote (a date, a quantity, a name) is itself right
    by_id = {item.id: item for item in gold}
    judged = [r for r in rep["questions"] if r["short_answer_right"] is not None]
    assert judged and all(r["correct"] and r["answer"]["short_answer"] for r in judged)
    assert not [r for r in rep["questions"] if r["short_answer_right"] is None and r["correct"] and r["answer"]
                and r["answer"]["short_answer"] and by_id[r["id"]].answers]
    s = rep["summary"]
    assert s["short_answer_precision"] >= 0.9 and 0 < s["short_answer_rate"] <= 1


def test_four_systems_per_split(rep):
    assert list(rep["systems"]) == ["bm25", "dense", "hybrid", "full"]
    for parts in rep["systems"].values():
        assert list(parts) == ["dev", "seen", "all"]
    assert rep["systems"]["full"]["all"] == rep["summary"]


@pytest.mark.parametrize("part", ["dev", "all"])
def test_systems_relate_as_they_should(rep, part):
    s = {name: parts[part] for name, parts in rep["systems"].items()}
    # fusion is not worse than the weaker single list
    assert s["hybrid"]["hit@5"] >= min(s["bm25"]["hit@5"], s["dense"]["hit@5"]) - 0.05
    assert s["hybrid"]["mrr"] >= min(s["bm25"]["mrr"], s["dense"]["mrr"])
    # hybrid and full retrieve the same passages: abstention only changes the answers
    for key in ("hit@1", "hit@3", "hit@5", "mrr"):
        assert s["hybrid"][key] == s["full"][key]
    # abstention declines the off-topic questions that hybrid without it answers, at a small cost
    assert s["full"]["abstention_off_topic"] > s["hybrid"]["abstention_off_topic"]
    assert s["full"]["abstention_recall"] > s["hybrid"]["abstention_recall"]
    assert s["hybrid"]["false_abstention"] <= s["full"]["false_abstention"] <= 0.08
    assert s["full"]["answer_accuracy"] >= s["hybrid"]["answer_accuracy"] - 0.06


def test_abstention_off_answers_more_and_is_restored(qa, gold):
    settings = qa.extractor.settings
    unanswerable = [item for item in gold if not item.answerable]
    off = Evaluator(qa, CORPUS).run(unanswerable, abstain=False)["questions"]
    assert qa.extractor.settings is settings
    on = Evaluator(qa, CORPUS).run(unanswerable)["questions"]
    assert sum(r["abstained"] for r in off) < sum(r["abstained"] for r in on)
    with pytest.raises(QuestionError):
        Evaluator(qa, CORPUS).run(unanswerable[:1], mode="nope", abstain=False)
    assert qa.extractor.settings is settings


def test_breakdowns_cover_the_answerable_questions(rep, gold):
    answerable = sum(item.answerable for item in gold)
    full = rep["breakdowns"]["full"]
    assert list(full) == ["language", "type", "document"]
    assert set(full["language"]) == {"fr", "en"}
    assert set(full["document"]) <= {p.name for p in CORPUS.iterdir()}
    assert "unanswerable" not in full["type"] and {"when", "who", "what"} <= set(full["type"])
    for groups in full.values():
        assert sum(g["n"] for g in groups.values()) == answerable
        assert all(set(g) == {"n", "answer_accuracy", "hit@5", "false_abstention"} for g in groups.values())
    # the French corpus: its own language's questions are found at least as well
    assert full["language"]["fr"]["hit@5"] >= full["language"]["en"]["hit@5"]
    assert set(rep["breakdowns"]) == set(rep["systems"])


def test_confusion_adds_up_and_agrees_with_the_summary(rep, gold):
    c = rep["confusion"]
    answerable = sum(item.answerable for item in gold)
    assert sum(c["answerable"].values()) == answerable
    assert sum(c["unanswerable"].values()) == len(gold) - answerable
    for outcome in ("answered", "abstained"):
        assert c["unanswerable/off_topic"][outcome] + c["unanswerable/near_miss"][outcome] == c["unanswerable"][outcome]
    assert c["unanswerable/off_topic"]["answered"] <= 2


def test_markdown_and_text_hold_the_tables(rep):
    md = render(rep, "gold", markdown=True, chart_file="eval.png")
    assert "![" in md and "(eval.png)" in md
    assert "| metric | dev | seen | all |" in md
    assert md.count("| metric | bm25 | dense | hybrid | full |") == 1  # all questions (no held-out part)
    for dim in ("language", "type", "document"):
        assert f"| {dim} | n | answer_accuracy | hit@5 | false_abstention |" in md
    assert "| gold | answered | abstained |" in md and "| unanswerable/near_miss |" in md
    assert all(f"| {p.name} |" in md for p in CORPUS.iterdir())
    text = render(rep, "gold")
    assert "|" not in text and "Systems side by side, all questions:" in text
    header = next(line for line in text.splitlines() if line.startswith("metric") and "bm25" in line)
    assert header.split() == ["metric", "bm25", "dense", "hybrid", "full"]


def test_chart_is_a_real_png(rep, tmp_path):
    path = tmp_path / "eval.png"
    chart(rep, "gold", path)
    data = path.read_bytes()
    width, height = png_size(data)
    assert width >= 1000 and height >= 500 and len(data) > 20_000


def test_cli_writes_json_markdown_and_png(tmp_path, index_dir):
    out_json = tmp_path / "eval.json"
    out = subprocess.run([sys.executable, "-m", "csto_qa.cli", "eval", "--gold", str(GOLD), "--json", str(out_json),
                          "--corpus", str(CORPUS), "--index", str(index_dir)],
                         capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert out.returncode == 0, out.stderr
    assert "Systems side by side, all questions:" in out.stdout and "Abstention, full pipeline" in out.stdout
    d = json.loads(out_json.read_text(encoding="utf-8"))
    assert set(SUMMARY_KEYS) <= set(d["summary"]) and len(d["questions"]) == d["summary"]["n"]
    assert {"systems", "breakdowns", "confusion"} <= set(d)
    md = (tmp_path / "eval.md").read_text(encoding="utf-8")
    assert "(eval.png)" in md and "| metric | bm25 | dense | hybrid | full |" in md
    png_size((tmp_path / "eval.png").read_bytes())
    assert f"wrote {out_json}" in out.stderr


@pytest.mark.parametrize("name", ["eval.md", "eval.png", "missing/eval.json"])
def test_cli_refuses_a_bad_output_before_running(tmp_path, index_dir, name):
    out = subprocess.run([sys.executable, "-m", "csto_qa.cli", "eval", "--json", str(tmp_path / name),
                          "--corpus", str(CORPUS), "--index", str(index_dir)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert out.stderr.startswith("csto-qa: --json ")
