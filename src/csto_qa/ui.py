"""The Gradio app: a question box, the cited answer, and the ``/ask`` API returning ``ask --json``."""

from __future__ import annotations

import html

import gradio as gr

from .qa import QA, QuestionError


def _render(result) -> str:
    parts = [f"<p>{html.escape(result.message)}</p>"]
    if result.answer:
        a = result.answer
        parts.append(f"<blockquote>{html.escape(a.quote)}</blockquote>")
        parts.append(f"<p><code>{html.escape(a.source)}</code>, lines {a.line_start}-{a.line_end}</p>")
    for p in result.passages:
        parts.append(f"<details><summary>[{p.rank}] {html.escape(p.source)}, lines {p.line_start}-{p.line_end}"
                     f"</summary><pre>{html.escape(p.text)}</pre></details>")
    return "\n".join(parts)


def build_app(qa: QA) -> gr.Blocks:
    def ask_api(question: str) -> dict:
        try:
            return qa.ask(question).to_dict()
        except QuestionError as exc:
            raise gr.Error(str(exc)) from None

    def ask_html(question: str) -> str:
        try:
            return _render(qa.ask(question))
        except QuestionError as exc:
            return f"<p>{html.escape(str(exc))}</p>"

    with gr.Blocks(title="csto-qa") as app:
        box = gr.Textbox(label="Question", placeholder="Posez une question / Ask a question")
        out = gr.HTML()
        box.submit(ask_html, box, out, api_name=False)
        gr.api(ask_api, api_name="ask")
    return app


def serve(corpus="corpus", index="index", embedder=None, host="127.0.0.1", port=7860, log=print) -> None:
    qa = QA.open(corpus, index, embedder=embedder, log=log)
    build_app(qa).queue(default_concurrency_limit=2).launch(server_name=host, server_port=port)
