"""What the bench scripts share: paths, the machine line every table starts with, percentiles, tables.

Each script runs from the repository root as ``python bench/NAME.py``; Python puts bench/ on the path,
which is how they import this module.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
GOLD = ROOT / "gold" / "gold_v1.jsonl"
# Indexes the scripts may keep between runs (never the repository's index/); build.py and scale.py
# build from nothing in temporary folders instead.
WORK = Path(os.environ.get("CSTO_QA_BENCH_DIR", "/tmp/csto-qa-bench"))


def machine() -> str:
    cpu = "unknown CPU"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {ram:.0f} GB RAM, Python {platform.python_version()}"


def header(title: str) -> str:
    """Title, machine and load: the machine is shared (tests run beside), so load explains noise."""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{title}\n{time.strftime('%Y-%m-%d %H:%M')} | {machine()} | load avg (1/5/15 min) {load}"


def pct(values, q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else float("nan")


def table(headers: list[str], rows: list[list]) -> str:
    """Plain-text table: first column left-aligned, the others right-aligned; floats to 1 decimal."""
    cells = [[f"{c:.1f}" if isinstance(c, float) else str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths), *map(line, cells[1:])])


def markdown(headers: list[str], rows: list[list]) -> str:
    """A Markdown table: first column left-aligned, the others right-aligned; floats to 1 decimal."""
    cells = [[f"{c:.1f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    lines = [headers, ["---", *["---:"] * (len(headers) - 1)], *cells]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def verdict(value: float, limit: float, at_most: bool = True) -> str:
    ok = value <= limit if at_most else value >= limit
    return "ok" if ok else "MISSED"


def clocked(fn, *args, **kwargs):
    """fn's result and its duration in ms."""
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, (time.perf_counter() - t) * 1000


def quiet(*_args, **_kwargs) -> None:
    """For the engine's log= argument: the tables are the output."""


def slug(name: str | None) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in (name or "default"))[-60:]
