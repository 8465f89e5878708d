"""Conversations: a follow-up is read with the turns before it (Python API, the /chat endpoint, the
terminal's `csto-qa chat`); a question that stands alone, or changes topic, inherits nothing."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from csto_qa import QuestionError
from csto_qa.conversation import TURNS_READ, depends

from conftest import CORPUS, ROOT, assert_cited


def converse(qa, questions: list[str]) -> list:
    history, results = [], []
    for q in questions:
        result = qa.ask(q, history=history)
        results.append(result)
        history.append({"question": q, "result": result.to_dict()})
    return results


def test_a_french_follow_up_carries_its_subject(qa):
    first, follow = converse(qa, ["Quand l'OTSC a-t-elle été fondée ?", "Et qui en est le secrétaire général ?"])
    assert first.context is None and "2002" in first.answer.quote
    assert follow.context is not None and follow.context.from_turn == 1 and "OTSC" in follow.context.carried
    assert follow.to_dict()["context"] == {"used": True, "carried": list(follow.context.carried), "from_turn": 1}
    assert "secrétaire général" in follow.answer.quote and "Masadykov" in follow.answer.quote
    assert_cited(CORPUS, follow.answer)
    alone = qa.ask("Et qui en est le secrétaire général ?")  # without the conversation: nothing to carry
    assert alone.context is None


def test_an_english_follow_up_carries_the_person_answered(qa):
    results = converse(qa, ["Who replaced Imangali Tasmagambetov as CSTO secretary general?",
                            "Which country does he come from?"])
    assert "Masadykov" in results[0].answer.quote
    follow = results[1]
    assert follow.context is not None and follow.translation is not None
    assert any("Masadykov" in word or "Tasmagambetov" in word for word in follow.context.carried)
    assert not follow.abstained and "Kirghizstan" in follow.answer.quote


def test_a_follow_up_matches_the_earlier_subject_not_its_other_words(qa):
    """What the follow-up carries all orients the search, but an answer needs to name only the subject:
    the countries that belong to the OTSC, not a sentence on its main objective."""
    first, follow = converse(qa, ["Quel est l'objectif principal de l'OTSC ?", "Quels pays en font partie ?"])
    assert "objectif" in " ".join(follow.context.carried) and follow.context.keywords == ("OTSC",)
    assert "objectif" not in follow.answer.quote  # the gold answers: the five members, or Armenia
    assert "Kirghizstan" in follow.answer.quote or "Arménie en fait également partie" in follow.answer.quote
    assert_cited(CORPUS, follow.answer)
    # a question of two words or fewer has nothing of its own: it takes every carried word as a keyword
    why = converse(qa, ["Quel est l'objectif principal de l'OTSC ?", "Pourquoi ?"])[1]
    assert why.context.keywords == why.context.carried


def test_an_ellipsis_asks_what_the_question_it_continues_asked(qa):
    """"Et sa force de maintien de la paix ?" has no question word: like the question before it, it asks
    how many, and its answer is the sentence with the figure, not one that merely names the force."""
    first_q = "Combien d'hommes compte la force d'intervention rapide dont l'OTSC s'est dotée en 2019 ?"
    first, follow = converse(qa, [first_q, "Et sa force de maintien de la paix ?"])
    assert follow.context.continues == first_q
    assert "3 600" in follow.answer.quote
    assert_cited(CORPUS, follow.answer)
    # a continuation with a question word of its own asks its own question
    other = converse(qa, [first_q, "Et qui la commande ?"])[1]
    assert other.context is not None and other.context.continues is None


def test_a_question_that_stands_alone_gets_the_same_answer(qa):
    history = [{"question": "Quand l'OTSC a-t-elle été fondée ?", "result": qa.ask("Quand l'OTSC a-t-elle été fondée ?").to_dict()}]
    for question in ["How many troops were deployed to Kazakhstan in January 2022?",
                     "Où se tiendra le prochain sommet de l'OTSC ?"]:
        with_history, alone = qa.ask(question, history=history), qa.ask(question)
        assert with_history.context is None
        drop = ("timings_ms",)
        assert {k: v for k, v in with_history.to_dict().items() if k not in drop} == \
               {k: v for k, v in alone.to_dict().items() if k not in drop}


def test_a_topic_change_inherits_nothing_and_an_absent_subject_is_declined(qa):
    results = converse(qa, ["Quand l'OTSC a-t-elle été fondée ?", "Au fait, qui a gagné la Coupe du monde de football en 2018 ?",
                            "What will the weather be like tomorrow?"])
    assert all(result.context is None for result in results[1:])
    assert results[1].abstained


@pytest.mark.parametrize("question, lang, expected", [
    ("Et où ?", "fr", True), ("Pourquoi ?", "fr", True), ("Quels pays en font partie ?", "fr", True),
    ("Qu'a-t-il proposé de créer dans son pays ?", "fr", True), ("Who said that?", "en", True),
    ("And in 2004?", "en", True), ("How many members does it have?", "en", True),
    ("Quand l'OTSC a-t-elle été fondée ?", "fr", False), ("Au fait, quelle est la capitale de l'Australie ?", "fr", False),
    ("What did article 6 of the agreement establishing the CIS require of its member states?", "en", False),
    ("What did Putin recommend that member states opt for?", "en", False),
    # a demonstrative or a pronoun for a thing points back even in a question naming something
    ("Which CSTO member is still part of it?", "en", True), ("Qu'a dit Poutine lors de cette réunion ?", "fr", True),
    ("C'étaient surtout des Russes ?", "fr", True), ("Combien de membres y a-t-il dans l'OTSC ?", "fr", False),
])
def test_what_depends_on_the_conversation(question, lang, expected):
    assert depends(question, lang) is expected


def test_only_the_last_turns_are_read(qa):
    """Fifty turns: a follow-up carries from the last turns, never from one beyond the window."""
    subject = {"question": "Quand l'OTSC a-t-elle été fondée ?", "result": None}
    filler = {"question": "Pourquoi ?", "result": None}  # nothing of its own to carry
    history = [subject, *[filler] * 49]
    assert qa.ask("Et où ?", history=history).context is None  # the subject is 50 turns back
    history = [*[filler] * 47, subject, filler, filler]
    follow = qa.ask("Et où ?", history=history)
    assert follow.context is not None and follow.context.from_turn == 48 >= len(history) - TURNS_READ + 1


@pytest.mark.parametrize("history", ["not a list", [1, 2], [{"question": 3}]])
def test_a_malformed_history_is_a_question_error(qa, history):
    with pytest.raises(QuestionError, match="history"):
        qa.ask("Et où ?", history=history)


def test_the_chat_endpoint(app_url, qa):
    client = Client(app_url, verbose=False)
    first = client.predict("Quand l'OTSC a-t-elle été fondée ?", "[]", api_name="/chat")
    history = json.dumps([{"question": "Quand l'OTSC a-t-elle été fondée ?", "result": first}])
    follow = client.predict("Et qui en est le secrétaire général ?", history, api_name="/chat")
    assert follow["context"]["used"] and "OTSC" in follow["context"]["carried"]
    assert "Masadykov" in follow["answer"]["quote"]
    assert client.predict("Où se tiendra le prochain sommet de l'OTSC ?", api_name="/ask")["context"] is None
    with pytest.raises(AppError, match="history must be"):
        client.predict("Et où ?", "{not json", api_name="/chat")


def _read_until(fd: int, needle: str, timeout: float) -> str:
    out, deadline = "", time.monotonic() + timeout
    while needle not in out:
        if time.monotonic() > deadline or not select.select([fd], [], [], deadline - time.monotonic())[0]:
            raise AssertionError(f"{needle!r} not seen; got: {out[-2000:]}")
        try:
            out += os.read(fd, 65536).decode("utf-8", "replace")
        except OSError:  # EIO: the program exited and closed the terminal
            raise AssertionError(f"{needle!r} not seen, the program exited; got: {out[-2000:]}") from None
    return out


def test_the_terminal_chat_in_a_pseudo_terminal(index_dir):
    """`csto-qa chat` on a real terminal (prompt_toolkit): a question, its follow-up, :new, Ctrl-D."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "csto_qa.cli", "chat", "--corpus", str(CORPUS), "--index",
                             str(index_dir)], stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, close_fds=True,
                            env={**os.environ, "TERM": "xterm"})
    os.close(slave)
    try:
        _read_until(master, "Ctrl-D quits", 120)
        os.write(master, "Quand l'OTSC a-t-elle été fondée ?\r".encode())
        assert "2002" in _read_until(master, "Passages", 60)
        os.write(master, "Et qui en est le secrétaire général ?\r".encode())
        out = _read_until(master, "Passages", 60)
        assert "understood with: OTSC" in out and "Masadykov" in out
        os.write(master, b":new\r")
        out = _read_until(master, "(new conversation)", 30)
        if "\x1b[?2004h" not in out.split("(new conversation)")[-1]:
            _read_until(master, "\x1b[?2004h", 30)  # the prompt is back (bracketed paste on): it reads keys again
        os.write(master, b"\x04")  # Ctrl-D
        assert proc.wait(timeout=90) == 0
    finally:
        proc.kill()
        os.close(master)


def test_eval_reads_a_multi_turn_set(tmp_path, index_dir):
    gold = tmp_path / "chat.jsonl"
    lines = [json.loads(line) for line in (ROOT / "gold" / "gold_chat.jsonl").read_text().splitlines()]
    gold.write_text("\n".join(json.dumps(r) for r in lines if r["conversation"] in ("c01", "c25")), encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "csto_qa.cli", "eval", "--gold", str(gold), "--corpus", str(CORPUS),
                          "--index", str(index_dir)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "follow_up_accuracy" in out.stdout and "standalone_accuracy" in out.stdout
    assert "topic_changes_inheriting_nothing" in out.stdout and "2 conversations" in out.stdout
