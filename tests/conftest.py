"""Shared fixtures: the real corpus, the real default embedder, one index built per test session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from csto_qa import QA
from csto_qa.embed import create
from csto_qa.evaluate import load_gold
from csto_qa.index import build

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
GOLD = ROOT / "gold" / "gold_v1.jsonl"


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

    app = ui.build_app(qa, log=lambda *_: None)
    _, url, _ = ui.launch(app, "127.0.0.1", None, block=False)
    yield url
    app.close()


def assert_levels(summary: dict, floors: dict, ceilings: dict, label: str = "") -> None:
    """A regression guard: each metric at least its floor, or at most its ceiling."""
    for key, floor in floors.items():
        assert summary[key] >= floor, (label, key, summary[key])
    for key, ceiling in ceilings.items():
        assert summary[key] <= ceiling, (label, key, summary[key])
