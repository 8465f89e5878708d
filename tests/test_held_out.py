"""Held-out questions stay held out (docs/evaluation.md): csto-qa eval and bench/quality.py never list a
test or sealed question one by one, and every run of sealed questions is logged by the tool that ran
it. No test runs the sealed set itself: sealed runs are tried on dev questions labelled sealed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import CORPUS, DATA, GOLD, ROOT
from csto_qa.evaluate import listable

sys.path.insert(0, str(ROOT / "bench"))
import quality  # noqa: E402  (bench/ is not a package: its scripts import each other by path)


def run(*args):
    return subprocess.run([sys.executable, "-m", "csto_qa.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)


@pytest.mark.parametrize("gold, part", [(DATA / "gold_en.jsonl", "test"), (ROOT / "gold" / "gold_chat.jsonl", "test"),
                                        (ROOT / "gold" / "sealed" / "csto.jsonl", "sealed")])
def test_eval_refuses_to_list_held_out_questions(tmp_path, gold, part):
    out_json = tmp_path / "eval.json"
    out = run("eval", "--gold", str(gold), "--json", str(out_json), "--index", str(tmp_path / "index"))
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert f"{part} questions are read in aggregate only" in out.stderr
    assert not out.stdout and not out_json.exists()
    assert not (tmp_path / "index").exists()  # refused before anything ran


def test_eval_lists_a_dev_part_and_logs_each_sealed_run(tmp_path, index_dir):
    gold = tmp_path / "mixed.jsonl"
    rows = [json.loads(line) for line in GOLD.read_text(encoding="utf-8").splitlines()]
    rows = [r for r in rows if r["split"] == "dev"][:5]
    for r in rows[3:]:
        r["split"] = "sealed"
    gold.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    common = ("--gold", str(gold), "--corpus", str(CORPUS), "--index", str(index_dir))

    out_json = tmp_path / "dev.json"
    out = run("eval", *common, "--part", "dev", "--json", str(out_json))
    assert out.returncode == 0, out.stderr
    assert [q["id"] for q in json.loads(out_json.read_text())["questions"]] == [r["id"] for r in rows[:3]]
    assert not (tmp_path / "runs.jsonl").exists()  # no sealed question ran

    log = tmp_path / "runs.jsonl"
    log.write_text('{"date": "an earlier run"}\n', encoding="utf-8")
    out = run("eval", *common)
    assert out.returncode == 0, out.stderr
    assert f"sealed run logged in {log}" in out.stderr
    assert not [r["id"] for r in rows if r["id"] in out.stdout]  # aggregates only
    earlier, entry = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert earlier == {"date": "an earlier run"}
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert entry["commit"] == head and isinstance(entry["uncommitted_changes"], bool)
    assert entry["date"][:2] == "20" and "index format" in entry["engine"] and "--gold" in entry["command"]
    figures = entry["figures"]["mixed"]
    assert figures["answerable"] + figures["unanswerable"] == 2  # the two sealed questions, not the dev ones
    assert 0 <= figures["answer_accuracy"] <= 1 and figures["faithfulness"] == 1.0


def test_quality_lists_only_the_parts_tuned_on(gold_runs):
    """bench/quality.py --compare and --json: the English corpus's test part is in the table, in
    aggregate, never in the list of questions that changed nor in the records written."""
    new = {"en": gold_runs("en")["questions"]}
    old = {"en": [dict(r, correct=not r["correct"]) for r in new["en"]]}  # every outcome changed
    listed = quality.compare(old, new)
    dev = [r for r in new["en"] if r["split"] == "dev"]
    assert len(listed) == len(dev) and all(line.startswith("en dev ") for line in listed)
    assert {r["split"] for r in new["en"]} == {"dev", "test"}
    assert listable(new["en"]) == dev
