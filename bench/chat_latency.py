"""A follow-up's latency against the same question asked alone, warm.

Every conversation of the multi-turn gold set is replayed --passes times through QA.ask with its
history (the engine's own earlier answers, as a user would have them); each turn read with the
conversation is also asked alone in its self-contained form. The ratio of the two medians is the
conversation's cost, measured on one machine in one run; the milliseconds alone depend on the
processor.

The index is kept in $CSTO_QA_BENCH_DIR (default /tmp/csto-qa-bench), built there on first use.
"""

from __future__ import annotations

import argparse

from benchlib import CORPUS, ROOT, WORK, clocked, header, pct, quiet, slug, table
from csto_qa import QA
from csto_qa.evaluate import load_gold


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=str(CORPUS))
    ap.add_argument("--gold", default=str(ROOT / "gold" / "gold_chat.jsonl"))
    ap.add_argument("--index", help="index folder (default: $CSTO_QA_BENCH_DIR/index-EMBEDDER)")
    ap.add_argument("--embedder", default=None)
    ap.add_argument("--passes", type=int, default=3)
    args = ap.parse_args()

    qa = QA.open(args.corpus, args.index or WORK / f"index-{slug(args.embedder)}", embedder=args.embedder,
                 progress=False, log=quiet)
    conversations: dict[str, list] = {}
    for item in load_gold(args.gold):
        conversations.setdefault(item.id.rsplit("-", 1)[0], []).append(item)
    for item in next(iter(conversations.values())):  # warm-up
        qa.ask(item.question)

    times = {"turn without context": [], "follow-up read with context": [], "the same, asked alone": []}
    for _ in range(args.passes):
        for turns in conversations.values():
            history = []
            for item in turns:
                result, ms = clocked(qa.ask, item.question, history=history)
                if result.context:
                    times["follow-up read with context"].append(ms)
                    times["the same, asked alone"].append(clocked(qa.ask, item.standalone)[1])
                else:
                    times["turn without context"].append(ms)
                history.append({"question": item.question, "result": result.to_dict()})

    print(header("Conversation latency (ms), warm"))
    print(f"{len(conversations)} conversations x {args.passes} passes\n")
    print(table(["", "n", "p50", "p95"], [[k, len(v), pct(v, 50), pct(v, 95)] for k, v in times.items()]))
    ratio = pct(times["follow-up read with context"], 50) / pct(times["the same, asked alone"], 50)
    print(f"\nfollow-up / the same question alone, p50: {ratio:.2f}")


if __name__ == "__main__":
    main()
