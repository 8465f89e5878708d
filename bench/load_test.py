"""Load test of the web app's /ask API: N concurrent gradio_client clients x M questions each.

Starts the app on 127.0.0.1 on a free port (as tests/test_ui_api.py does: ui.build_app + ui.launch),
unless --url names a running one, then sends a fixed mix of French and English questions from the gold
set together with bad input (empty, blank, huge, emoji-only, markup, control characters, mixed scripts)
and prints a table:

    requests, successes, expected errors (bad input correctly refused), unexpected failures,
    latency p50/p95/p99 (client side), wall time

Bounded in count (clients x questions) and in time (--timeout for the whole run: what is not done by
then counts as an unexpected failure). Exit status 0 when every request was handled as expected.

    python bench/load_test.py                       # 8 clients x 10 questions
    python bench/load_test.py --clients 16 --questions 5 --timeout 300
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import socket
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from csto_qa import QA, ui  # noqa: E402
from csto_qa.evaluate import load_gold  # noqa: E402
from csto_qa.qa import MAX_QUESTION_CHARS  # noqa: E402


@dataclass
class Request:
    kind: str
    question: str
    expect: str  # "answer" (a result: answer or abstention) or the start of the expected error message


@dataclass
class Outcome:
    request: Request
    status: str  # "success", "expected_error", "unexpected"
    seconds: float
    detail: str = ""
    abstained: bool | None = None


@dataclass
class Tally:
    outcomes: list[Outcome] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)


def plan(n_clients: int, n_questions: int, gold_path: Path, seed: int) -> list[list[Request]]:
    """Each client's questions: mostly real French and English questions, one bad input in four."""
    items = [g for g in load_gold(gold_path) if g.split == "dev"] or load_gold(gold_path)
    fr = [g.question for g in items if g.lang == "fr"]
    en = [g.question for g in items if g.lang == "en"]
    rng = random.Random(seed)
    kinds = ["fr", "en", "fr", "en", "empty", "fr", "en", "emoji", "huge", "en", "fr", "markup", "blank", "fr",
             "mixed", "en", "long", "fr", "emoji_only", "control"]
    made = {
        "fr": lambda: Request("fr", rng.choice(fr), "answer"),
        "en": lambda: Request("en", rng.choice(en), "answer"),
        "empty": lambda: Request("empty", "", "empty question"),
        "blank": lambda: Request("blank", " \t\n\u00a0 ", "empty question"),
        "emoji_only": lambda: Request("emoji_only", "🙂🎉👍", "empty question"),
        "huge": lambda: Request("huge", rng.choice(fr + en) + " " + "x" * (ui.MAX_REQUEST_CHARS + 1),
                                "question too long"),
        "long": lambda: Request("long", rng.choice(fr + en) + " " + "détail " * 400, "answer"),
        "emoji": lambda: Request("emoji", "🙂 " + rng.choice(fr + en) + " 🎉👨‍👩‍👧", "answer"),
        "markup": lambda: Request("markup", "<script>alert(1)</script><b>" + rng.choice(fr + en) + "</b>", "answer"),
        "mixed": lambda: Request("mixed", "Кто? ما هذا؟ 这是什么？ " + rng.choice(fr + en), "answer"),
        "control": lambda: Request("control", "\x07\x1b[31m" + rng.choice(fr + en) + "\u202e\u200b", "answer"),
    }
    # each client starts at another place in the cycle, so that bad input and good arrive mixed at any moment
    return [[made[kinds[(c * 3 + j) % len(kinds)]]() for j in range(n_questions)] for c in range(n_clients)]


def check(request: Request, result, docs: dict | None) -> str:
    """'' when the result is right for the request, else what is wrong."""
    if not isinstance(result, dict) or not {"question", "abstained", "answer", "passages"} <= set(result):
        return f"not a result: {str(result)[:80]}"
    if len(result["question"]) > MAX_QUESTION_CHARS:
        return "question not truncated"
    if request.kind == "long" and not result.get("notice"):
        return "no truncation notice"
    if request.kind == "markup" and "<script>" not in result["question"]:
        return "markup not kept as text"
    a = result["answer"]
    if result["abstained"] != (a is None):
        return "abstained and answer disagree"
    if a is not None and docs is not None and docs[a["source"]].text[a["start"]:a["end"]] != a["quote"]:
        return "quote is not verbatim"
    return ""


def run_client(url: str, requests: list[Request], deadline: float, tally: Tally, docs: dict | None) -> None:
    from gradio_client import Client

    try:
        client = Client(url, verbose=False, analytics_enabled=False)
    except Exception as exc:  # noqa: BLE001 - the run reports it
        for r in requests:
            tally.add(Outcome(r, "unexpected", 0.0, f"client could not connect: {type(exc).__name__}"))
        return
    for i, request in enumerate(requests):
        left = deadline - time.monotonic()
        if left <= 0:
            for r in requests[i:]:
                tally.add(Outcome(r, "unexpected", 0.0, "not sent: global timeout"))
            return
        t0 = time.monotonic()
        try:
            result = client.submit(request.question, api_name="/ask").result(timeout=left)
        except Exception as exc:  # noqa: BLE001 - sorted below
            took = time.monotonic() - t0
            message = str(exc)
            if request.expect != "answer" and message.startswith(request.expect) and "\n" not in message:
                tally.add(Outcome(request, "expected_error", took, message[:60]))
            else:
                tally.add(Outcome(request, "unexpected", took, f"{type(exc).__name__}: {message[:100]}"))
            continue
        took = time.monotonic() - t0
        if request.expect != "answer":
            tally.add(Outcome(request, "unexpected", took, "bad input was answered"))
            continue
        problem = check(request, result, docs)
        tally.add(Outcome(request, "unexpected" if problem else "success", took, problem, result.get("abstained")))


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def report(tally: Tally, wall: float, url: str, n_clients: int, n_questions: int) -> str:
    out = tally.outcomes
    ok = [o for o in out if o.status == "success"]
    expected = [o for o in out if o.status == "expected_error"]
    bad = [o for o in out if o.status == "unexpected"]
    lat = [o.seconds * 1000 for o in out if o.seconds > 0]
    answered = sum(1 for o in ok if o.abstained is False)
    lines = [
        f"csto-qa load test: {n_clients} clients x {n_questions} questions on {url} "
        f"(engine concurrency {ui.ENGINE_CONCURRENCY}, queue {ui.QUEUE_SIZE})",
        "",
        f"{'requests':<26}{len(out):>8}",
        f"{'successes':<26}{len(ok):>8}   ({answered} answered, {len(ok) - answered} abstained)",
        f"{'expected errors':<26}{len(expected):>8}   (bad input correctly refused)",
        f"{'unexpected failures':<26}{len(bad):>8}",
        f"{'latency p50 / p95 / p99':<26}{percentile(lat, 50):>8.0f} / {percentile(lat, 95):.0f} / "
        f"{percentile(lat, 99):.0f} ms",
        f"{'wall time':<26}{wall:>8.1f} s   ({len(out) / wall:.2f} requests/s)",
        "",
        f"{'kind':<12}{'n':>4}{'ok':>5}{'refused':>9}{'failed':>8}{'p50 ms':>9}  expected",
    ]
    kinds: dict[str, list[Outcome]] = {}
    for o in out:
        kinds.setdefault(o.request.kind, []).append(o)
    for kind, group in sorted(kinds.items()):
        lines.append(f"{kind:<12}{len(group):>4}{sum(o.status == 'success' for o in group):>5}"
                     f"{sum(o.status == 'expected_error' for o in group):>9}"
                     f"{sum(o.status == 'unexpected' for o in group):>8}"
                     f"{percentile([o.seconds * 1000 for o in group], 50):>9.0f}  {group[0].request.expect}")
    for o in bad[:10]:
        lines.append(f"  FAILED {o.request.kind}: {o.detail}")
    return "\n".join(lines)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    p.add_argument("--questions", type=int, default=10, help="questions per client (default 10)")
    p.add_argument("--timeout", type=float, default=600, help="seconds for the whole run (default 600)")
    p.add_argument("--corpus", default=str(ROOT / "corpus"))
    p.add_argument("--index", default=str(ROOT / "index"))
    p.add_argument("--gold", default=str(ROOT / "gold" / "gold_v1.jsonl"), help="where the questions come from")
    p.add_argument("--url", help="test a running app instead of starting one (quotes then not checked verbatim)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if not (1 <= args.clients <= 64 and 1 <= args.questions <= 1000):
        p.error("--clients must be 1-64 and --questions 1-1000")

    app = docs = None
    url = args.url
    server_log = Path(tempfile.gettempdir()) / f"csto-qa-load-{os.getpid()}.log"
    with open(server_log, "w") as log_file, contextlib.ExitStack() as stack:
        if url is None:
            print(f"opening the index in {args.index} (built first if needed)...", file=sys.stderr, flush=True)
            qa = QA.open(args.corpus, args.index, progress=False, log=lambda m: print(m, file=sys.stderr))
            docs = {d.source: d for d in qa.index.documents}
            app = ui.build_app(qa, log=lambda m: print(m, file=log_file, flush=True))
            _, url, _ = ui.launch(app, "127.0.0.1", free_port(), block=False)
            stack.callback(app.close, verbose=False)
        requests = plan(args.clients, args.questions, Path(args.gold), args.seed)
        tally = Tally()
        print(f"{args.clients} clients x {args.questions} questions against {url} ...", file=sys.stderr, flush=True)
        # the server's own messages (tracebacks of refused questions...) go to the log, not the table
        stack.enter_context(contextlib.redirect_stderr(log_file))
        t0 = time.monotonic()
        deadline = t0 + args.timeout
        with ThreadPoolExecutor(args.clients) as pool:
            for reqs in requests:
                pool.submit(run_client, url, reqs, deadline, tally, docs)
        wall = time.monotonic() - t0
    print(report(tally, wall, url, args.clients, args.questions))
    print(f"\nserver log: {server_log} ({sum(1 for _ in open(server_log))} lines)")
    sent = sum(len(r) for r in requests)
    failed = sum(o.status == "unexpected" for o in tally.outcomes)
    return 0 if failed == 0 and len(tally.outcomes) == sent else 1


if __name__ == "__main__":
    sys.exit(main())
