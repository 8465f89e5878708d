"""Cold start: process start to first answer for `csto-qa ask` in a new process, index already built.

Three measurements, each in fresh processes (the OS page cache stays warm: this is a new process,
not a rebooted machine):
  1. `csto-qa ask QUESTION --json`, --reps times: wall time to the answer's first byte on stdout and
     to process exit; `python -c pass` is timed beside it as the interpreter's own floor.
  2. `python -X importtime -m csto_qa.cli ask ...`: import time summed per top-level package (self
     time of all its modules), the --top largest.
  3. A child process timing QA.open's parts: imports, embedder load (embed.create), index open
     (QA.open with the loaded embedder: corpus check, artefact checksums, reading, retriever and
     extractor set-up), the first language detection and query embedding (each loads a model
     lazily), the first and second QA.ask; the checksum and corpus-check shares of the index open
     are timed again on their own afterwards. Median over --reps runs.

The index is kept in $CSTO_QA_BENCH_DIR (default /tmp/csto-qa-bench), built there on first use.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from benchlib import CORPUS, WORK, header, pct, slug, table, verdict

TARGET_S = 4.0
CLI = Path(sys.executable).with_name("csto-qa")

# Run with: corpus, index, embedder ("" for the default), question. Prints one JSON object.
CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from pathlib import Path
from csto_qa import QA, lang
from csto_qa.embed import create
from csto_qa.index import _live_generation, read_manifest, staleness
from csto_qa.load import file_digest
from csto_qa.split import SplitSettings
corpus, index, name, question = sys.argv[1:5]
out = {"imports": time.perf_counter() - t0}
t = time.perf_counter(); emb = create(name or None); out["embedder load"] = time.perf_counter() - t
t = time.perf_counter()
qa = QA.open(corpus, index, embedder=emb, progress=False, log=lambda m: sys.exit("index not ready: " + m))
out["index open (QA.open)"] = time.perf_counter() - t
t = time.perf_counter(); lang.detect(question)
out["first language detection (py3langid model)"] = time.perf_counter() - t
t = time.perf_counter(); emb.embed_queries([question]); out["first query embedding"] = time.perf_counter() - t
t = time.perf_counter(); qa.ask(question); out["first query (after the two above)"] = time.perf_counter() - t
t = time.perf_counter(); qa.ask(question); out["second query"] = time.perf_counter() - t
manifest = read_manifest(Path(index))
t = time.perf_counter(); staleness(Path(corpus), manifest, emb.identity, SplitSettings())
out["  of which corpus check"] = time.perf_counter() - t
gen = _live_generation(Path(index))
t = time.perf_counter(); [file_digest(gen / name) for name in manifest["artefacts"]]
out["  of which artefact checksums"] = time.perf_counter() - t
print(json.dumps(out))
"""


def ask_wall(cmd: list[str]) -> tuple[float, float]:
    """Seconds to the first byte on stdout, and to exit."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.read(1)
    first = time.perf_counter() - t
    _, err = proc.communicate()
    if proc.returncode:
        sys.exit(f"{' '.join(cmd[:3])}... failed: {err.decode()[-500:]}")
    return first, time.perf_counter() - t


def import_summary(cmd: list[str], top: int) -> tuple[float, list[tuple[str, float]]]:
    """Total import seconds and the `top` packages by summed self time (-X importtime's lines are
    `import time: self | cumulative | name`, nested imports indented)."""
    err = subprocess.run([sys.executable, "-X", "importtime", *cmd], capture_output=True, text=True).stderr
    by_package: dict[str, float] = defaultdict(float)
    for m in re.finditer(r"^import time:\s+(\d+) \|\s+\d+ \|( *)(\S+)$", err, re.MULTILINE):
        by_package[m.group(3).split(".")[0]] += int(m.group(1)) / 1e6
    ranked = sorted(by_package.items(), key=lambda kv: -kv[1])
    return sum(by_package.values()), ranked[:top]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=str(CORPUS))
    ap.add_argument("--index", help="index folder (default: $CSTO_QA_BENCH_DIR/index-EMBEDDER)")
    ap.add_argument("--embedder", help="as csto-qa --embedder (default: the default embedder)")
    ap.add_argument("--question", default="Où se tiendra le prochain sommet de l'OTSC ?")
    ap.add_argument("--reps", type=int, default=3, help="runs of each measurement (default 3)")
    ap.add_argument("--top", type=int, default=12, help="packages listed in the import summary (default 12)")
    args = ap.parse_args()

    index = args.index or str(WORK / f"index-{slug(args.embedder)}")
    common = ["--corpus", args.corpus, "--index", index] + (["--embedder", args.embedder] if args.embedder else [])
    subprocess.run([str(CLI), "build", "--quiet", *common], check=True, capture_output=True)  # untimed set-up

    floor = [ask_wall([sys.executable, "-c", "print(1)"])[1] for _ in range(args.reps)]
    runs = [ask_wall([str(CLI), "ask", args.question, "--json", *common]) for _ in range(args.reps)]
    imports_total, packages = import_summary(["-m", "csto_qa.cli", "ask", args.question, "--json", *common], args.top)
    children = []
    for _ in range(args.reps):
        out = subprocess.run([sys.executable, "-c", CHILD, args.corpus, index, args.embedder or "", args.question],
                             capture_output=True, text=True, check=True).stdout
        children.append(json.loads(out.strip().splitlines()[-1]))

    print(header(f"cold_start.py: `csto-qa ask` in a new process, index built, {args.reps} runs, "
                 f"question {args.question!r}"))
    print(f"index {index}\n")
    exits = [r[1] for r in runs]
    rows = [("python -c 'print(1)' (interpreter floor)", floor),
            ("csto-qa ask: answer on stdout", [r[0] for r in runs]), ("csto-qa ask: process exit", exits)]
    print(table(["process", "median s", "min s", "max s"],
                [[name, *(f"{x:.2f}" for x in (pct(v, 50), min(v), max(v)))] for name, v in rows]))
    print(f"target: median to exit {pct(exits, 50):.2f} s <= {TARGET_S:.0f} s: {verdict(pct(exits, 50), TARGET_S)}\n")

    print(f"imports (python -X importtime, one run): {imports_total:.2f} s in all; top packages by self time")
    print(table(["package", "s", "share"], [[name, f"{s:.3f}", f"{s / imports_total:.0%}"] for name, s in packages]))

    print(f"\nQA.open split (child process, median of {args.reps})")
    print(table(["phase", "s"], [[phase, f"{pct([c[phase] for c in children], 50):.3f}"] for phase in children[0]]))


if __name__ == "__main__":
    main()
