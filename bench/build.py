"""Index build: a full build's time and its share of the machine's float32 GEMM rate; rebuilds; and the
latency of questions answered while a build runs.

In a temporary folder, on a copy of the corpus, with one embedder loaded once:
  1. the machine's float32 GEMM rate (embedders.gemm_rate), before and after, the higher kept;
  2. a full build from nothing (index.build in this process, the embedder already loaded): wall
     time, and its embedding work in GFLOP (every text it embeds: chunks, sentences, sentences in
     context, with translation on each sentence translated, the corpus's words; embedders.flops on
     their token counts) over that time, as a share of the GEMM rate: the build as a whole, not the
     embedder alone, is what the share measures; the sentences' translation is timed apart too
     (--translator none: a build without it);
  3. rebuilds: nothing changed (index.build again, and `csto-qa build` as a user runs it, a new
     process), one file changed (the median-sized one, a sentence appended);
  4. questions during a build: the gold questions asked one after another on the built index (this
     process, as a server would), idle, then while `csto-qa build --force` rebuilds a second copy from
     nothing in another process (it lowers its own priority), then while the same build runs at
     normal priority; p50 / p95 of each.
The seed corpus takes about 3 minutes here; --corpus takes another (tests/data/corpus_faq: 180 pages).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import CORPUS, GOLD, header, pct, quiet, table
from embedders import flops, gemm_rate
from csto_qa import QA, analyze, translate
from csto_qa.embed import create
from csto_qa.embed.convert import converted
from csto_qa.embed.transformer import Tokens
from csto_qa.evaluate import load_gold
from csto_qa.index import _texts, build
from csto_qa.load import LoadError, corpus_files, load_file
from csto_qa.split import SplitSettings, chunk_spans, sentence_spans

CLI = Path(sys.executable).with_name("csto-qa")
APPENDED = "\n\nMise à jour : le secrétariat a publié un communiqué complémentaire sur ce sujet.\n"
# a build from nothing at normal priority, for comparison with the CLI's (which lowers its own)
PLAIN_BUILD = ("import sys; from pathlib import Path; from csto_qa.embed import create; from csto_qa.index import build; "
               "build(Path(sys.argv[1]), Path(sys.argv[2]), create(), progress=False, log=lambda *a: None, force=True)")


def work(corpus: Path, translator: translate.Translator) -> tuple[int, list[int], int, float]:
    """Texts a full build embeds, their token counts, the corpus's loaded characters, and the seconds
    its sentences' translation takes (a translator of its own: nothing cached)."""
    tokens = Tokens(converted(log=quiet))
    counts, words, chars, translating = [], set(), 0, 0.0
    for path in corpus_files(corpus):
        try:
            doc = load_file(path, corpus)
        except LoadError:
            continue
        t = time.perf_counter()
        texts = _texts(doc, chunk_spans(doc.text, SplitSettings()), sentence_spans(doc.text), translator)
        translating += time.perf_counter() - t if translator.available else 0.0
        for kind in texts:
            counts += tokens.counts(kind)
        words |= analyze.lexicon(doc.text)
        chars += len(doc.text)
    counts += tokens.counts(sorted(words), "query")
    return len(counts), counts, chars, translating


def latencies(qa: QA, questions: list[str], process: subprocess.Popen | None = None) -> list[float]:
    """ms per question, asked in turn; with ``process``, only while it runs (at least 10 questions)."""
    out = []
    for q in questions * 20:
        t = time.perf_counter()
        qa.ask(q)
        out.append((time.perf_counter() - t) * 1000)
        if process is None and len(out) >= len(questions) or process is not None and process.poll() is not None \
                and len(out) >= 10:
            break
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=str(CORPUS), help="corpus to copy and build (default: the repository's)")
    ap.add_argument("--embedder", help="as csto-qa --embedder (default: the default embedder)")
    ap.add_argument("--translator", help="as csto-qa --translator (default: Apertium where installed)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="csto-qa-bench-build-") as tmp:
        corpus, index = Path(tmp) / "corpus", Path(tmp) / "index"
        shutil.copytree(args.corpus, corpus)
        for path in corpus.rglob("*"):
            path.chmod(0o644 if path.is_file() else 0o755)  # the repository's corpus files are read-only
        embedder = create(args.embedder, log=quiet)
        embedder.embed_passages(["warm-up"])
        n_texts, tokens, chars, translating = work(corpus, translate.create(args.translator))
        gemm_before = gemm_rate()
        translator = translate.create(args.translator)
        t = time.perf_counter()
        full = build(corpus, index, embedder, progress=False, log=quiet, translator=translator)
        full_s = time.perf_counter() - t
        gemm = max(gemm_before, gemm_rate())
        same = build(corpus, index, embedder, progress=False, log=quiet, translator=translator)
        cli = [str(CLI), "build", "--quiet", "--corpus", str(corpus), "--index", str(index)]
        cli += ["--embedder", args.embedder] if args.embedder else []
        cli += ["--translator", args.translator] if args.translator else []
        cli_s = []
        for _ in range(3):
            t = time.perf_counter()
            subprocess.run(cli, check=True, capture_output=True)
            cli_s.append(time.perf_counter() - t)
        files = sorted(corpus_files(corpus), key=lambda p: p.stat().st_size)
        changed = files[len(files) // 2]
        with changed.open("a", encoding="utf-8") as f:
            f.write(APPENDED)
        one = build(corpus, index, embedder, progress=False, log=quiet, translator=translator)

        qa = QA.open(corpus, index, embedder, progress=False, log=quiet, translator=translator)
        questions = [g.question for g in load_gold(GOLD)][:40]
        idle = latencies(qa, questions)
        during = {}
        for label, command in (("during `csto-qa build` (lowered priority)", [*cli[:3], "--force", *cli[3:5],
                                                                            "--index", str(Path(tmp) / "second")]),
                               ("during a build at normal priority", [sys.executable, "-c", PLAIN_BUILD, str(corpus),
                                                                       str(Path(tmp) / "third")])):
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(3)  # past the new process's start, into its embedding
            during[label] = latencies(qa, questions, process)
            process.wait()

    gflop = flops(tokens) / 1e9
    print(header(f"build.py: corpus {args.corpus} ({full.files} files, {chars:,} loaded characters), "
                 f"embedder {embedder.identity}"))
    print(f"machine float32 GEMM rate: {gemm:.1f} GFLOP/s (before the build {gemm_before:.1f})")
    print(translate.status(translator) + "\n")
    print(table(["measure", "value"], [
        ["full build from nothing, wall (s)", f"{full_s:.1f}"],
        ["  texts embedded / tokens", f"{n_texts:,} / {sum(tokens):,}"],
        ["  embedding work (GFLOP)", f"{gflop:.0f}"],
        ["  build rate (GFLOP/s over the whole build)", f"{gflop / full_s:.1f}"],
        ["  share of the float32 GEMM rate", f"{gflop / full_s / gemm:.0%}"],
        ["  texts/s, tokens/s", f"{n_texts / full_s:.0f}, {sum(tokens) / full_s:,.0f}"],
        ["  translating the sentences, timed apart (s)", f"{translating:.1f}"],
        ["  share of the GEMM rate, the build less that time", f"{gflop / max(full_s - translating, 1e-9) / gemm:.0%}"],
        ["rebuild, nothing changed, in process (s)", f"{same.seconds:.2f}"],
        ["rebuild, nothing changed, `csto-qa build` median of 3 (s)", f"{statistics.median(cli_s):.2f}"],
        [f"rebuild, one file changed: {changed.name} (s)", f"{one.seconds:.1f}"],
        ["  files re-embedded", f"{len(one.embedded_files)} of {one.files}"],
    ]))
    print("\nquestions answered on the built index, one after another (ms):")
    print(table(["when", "questions", "p50", "p95"],
                [["idle", len(idle), f"{pct(idle, 50):.1f}", f"{pct(idle, 95):.1f}"],
                 *[[label, len(v), f"{pct(v, 50):.1f}", f"{pct(v, 95):.1f}"] for label, v in during.items()]]))


if __name__ == "__main__":
    main()
