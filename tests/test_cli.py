"""The command line as a user runs it: exit codes, one-line errors, the JSON contract."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import CORPUS, GOLD, ROOT


def run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "csto_qa.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def test_ask_json(index_dir):
    out = run("ask", "Quand l'OTSC a-t-elle été fondée ?", "--json", "--corpus", str(CORPUS), "--index", str(index_dir))
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["abstained"] is False and "2002" in d["answer"]["quote"] and d["lang"] == "fr"


def test_ask_text(index_dir):
    out = run("ask", "Where was the 2025 CSTO summit held?", "--corpus", str(CORPUS), "--index", str(index_dir))
    assert out.returncode == 0, out.stderr
    assert "Bichkek" in out.stdout and "lines" in out.stdout


@pytest.mark.parametrize("args", [["ask", ""], ["ask", "   "], ["bogus"], ["ask"], ["eval", "--gold", "/nope.jsonl"],
                                  ["ask", "x", "-k", "many"]])
def test_bad_usage_exits_2_with_one_line(args, index_dir):
    out = run(*args, "--index", str(index_dir)) if args[0] in ("ask", "eval") and len(args) > 1 else run(*args)
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("csto-qa: ")


def test_missing_corpus_is_one_line(tmp_path):
    out = run("build", "--corpus", str(tmp_path / "none"), "--index", str(tmp_path / "index"))
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "corpus folder not found" in out.stderr


def test_build_reports_and_skips_bad_files(tmp_path, index_dir):
    import shutil

    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    (corpus / "broken.pdf").write_text("garbage")
    index = tmp_path / "index"
    shutil.copytree(index_dir, index)
    out = run("build", "--quiet", "--corpus", str(corpus), "--index", str(index))
    assert out.returncode == 0, out.stderr
    assert "broken.pdf" in out.stderr and "not a PDF" in out.stderr
    assert "5 files (0 embedded, 5 unchanged)" in out.stderr


def test_eval_prints_a_table_and_writes_the_schema(tmp_path, index_dir):
    out_json = tmp_path / "eval.json"
    out = run("eval", "--gold", str(GOLD), "--json", str(out_json), "--corpus", str(CORPUS), "--index", str(index_dir))
    assert out.returncode == 0, out.stderr
    assert "answer_accuracy" in out.stdout and "dev" in out.stdout and "seen" in out.stdout
    d = json.loads(out_json.read_text())
    assert {"n", "answer_accuracy", "hit@1", "hit@3", "hit@5", "mrr", "citation_accuracy", "faithfulness",
            "abstention_precision", "abstention_recall", "latency_ms_p50", "latency_ms_p95"} <= set(d["summary"])
    assert len(d["questions"]) == d["summary"]["n"]
    q = d["questions"][0]
    assert {"id", "correct", "abstained", "answer", "passages"} <= set(q)
