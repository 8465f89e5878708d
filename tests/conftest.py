"""Shared fixtures: the real corpus, the real default embedder, one index built per test session."""

from __future__ import annotations

import os
import json
import shutil
from pathlib import Path

import pytest

from csto_qa import QA
from csto_qa.embed import create
from csto_qa.evaluate import Evaluator, load_gold
from csto_qa.index import build
from csto_qa.translate.apertium import missing

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
GOLD = ROOT / "gold" / "gold_v1.jsonl"
DATA = ROOT / "tests" / "data"
# Every corpus of the repository with its gold set (gold_v2 holds gold_v1's questions and more). The
# sealed sets (gold/sealed/) are never run by the tests: they are run at the end of a piece of work.
SETS = {s["name"]: (ROOT / s["corpus"], ROOT / s["gold"])
        for s in json.loads((ROOT / "gold" / "sets.json").read_text(encoding="utf-8"))}


def require_apertium() -> None:
    """For a test that needs Apertium: skipped where it is missing, but failed in CI ($CI set, as CI
    services set it), where set-up installs it: there a skip would hide a broken set-up."""
    reason = missing()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"CI is set and this test needs Apertium: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def embedder():
    return create()


@pytest.fixture(scope="session")
def index_dir(tmp_path_factory, embedder):
    """Built once from nothing: every file of the corpus is embedded."""
    path = tmp_path_factory.mktemp("index")
    report = build(CORPUS, path, embedder, progress=False, log=lambda *_: None)
    assert sorted(report.embedded_files) == sorted(p.name for p in CORPUS.iterdir())
    return path


@pytest.fixture()
def index_copy(tmp_path, index_dir) -> Path:
    """A private copy of the session's index (with its vector cache) for tests that change it."""
    dst = tmp_path / "index"
    shutil.copytree(index_dir, dst)
    return dst


@pytest.fixture(scope="session")
def qa(index_dir, embedder) -> QA:
    return QA.open(CORPUS, index_dir, embedder=embedder, progress=False, log=lambda *_: None)


@pytest.fixture(scope="session")
def open_qa(tmp_path_factory, embedder, qa):
    """QA over one of SETS' corpora by name, each index built once per test session."""
    opened = {"csto": qa}

    def get(name: str) -> QA:
        if name not in opened:
            opened[name] = QA.open(SETS[name][0], tmp_path_factory.mktemp(f"{name}-index"), embedder=embedder,
                                   progress=False, log=lambda *_: None)
        return opened[name]

    return get


@pytest.fixture(scope="session")
def gold_runs(open_qa):
    """Evaluator.run of one of SETS' gold sets by name (every question's record), once per session."""
    runs = {}

    def get(name: str) -> dict:
        if name not in runs:
            corpus, gold = SETS[name]
            runs[name] = Evaluator(open_qa(name), corpus).run(load_gold(gold))
        return runs[name]

    return get


@pytest.fixture(scope="session")
def gold():
    return load_gold(GOLD)


@pytest.fixture()
def corpus_copy(tmp_path) -> Path:
    dst = tmp_path / "corpus"
    shutil.copytree(CORPUS, dst)
    return dst


@pytest.fixture(scope="session")
def app_url(qa):
    """The web app on 127.0.0.1, on a free port Gradio picks, over the session's shared index."""
    from csto_qa import ui

    app = ui.build_app(qa, log=lambda *_: None, corpus=CORPUS)
    _, url, _ = ui.launch(app, "127.0.0.1", None, block=False)
    yield url
    app.close()


def assert_cited(corpus: Path, cited) -> None:
    """An answer or passage (object or dict) is its stored file's text at [start:end], read as the
    contract says (cite.verify), on the lines it names."""
    from csto_qa import cite
    from csto_qa.load import SUFFIXES, stored_text

    d = cited if isinstance(cited, dict) else cited.__dict__
    text = d["quote"] if "quote" in d else d["text"]
    stored = stored_text(corpus / d["source"])
    assert cite.verify(text, stored, d["start"], d["end"], SUFFIXES[Path(d["source"]).suffix.lower()]), d
    assert (d["line_start"], d["line_end"]) == (stored.count("\n", 0, d["start"]) + 1,
                                                stored.count("\n", 0, d["end"] - 1) + 1)
    if d.get("short_answer") is not None:
        assert d["short_answer"] in text
