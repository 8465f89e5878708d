"""The Gradio app: a chat of cited answers, the passages behind them, the documents they quote, and
the ``/ask`` API returning the object ``csto-qa ask --json`` prints. Gradio is used here only.

Everything shown as HTML is built by the ``render_*`` functions from plain result dicts, and every
piece of text in it (question, quote, passage, title, file name) goes through ``html.escape``: the
HTML component sets ``innerHTML`` without sanitizing, so escaping here is the only protection.
"""

import functools
import html
import json
import re
from pathlib import Path

import gradio as gr

from . import translate
from .evaluate import GoldError, load_gold
from .formats import SUFFIXES
from .library import EditError, Library
from .load import text_layer
from .qa import MAX_QUESTION_CHARS, QA, QuestionError, clean_question
from .retrieve import MODES

# The engine is CPU-bound: more parallel questions only slow each other down. Questions from the page
# and from the API share this limit; the cheap events (opening a document...) are not limited.
ENGINE_CONCURRENCY = 2
QUEUE_SIZE = 64
# A question longer than this is refused before any work (answers use only its first 1000 characters):
# cleaning a question costs time in proportion to its length, inside an engine slot.
MAX_REQUEST_CHARS = 100_000
ENGINE = "engine"
# Bands of the reader's confidence in a quote, in words on the page. Its threshold for answering at all
# lies lower: an answer can be of low confidence.
HIGH_CONFIDENCE = 0.8
MEDIUM_CONFIDENCE = 0.5

def examples_for(corpus: str | Path, sources: set[str], n: int = 5) -> list[str]:
    """Example questions for the page, from a gold set beside the served corpus (in its folder's
    parent or that parent's gold/ folder) whose every cited source is one of the corpus's documents:
    French and English answerable dev questions in turn, and one the corpus cannot answer. None
    when no such file is there: a user's own folder gets no examples from another corpus."""
    parent = Path(corpus).resolve().parent
    for path in sorted([*parent.glob("*.jsonl"), *(parent / "gold").glob("*.jsonl")]):
        try:
            items = [g for g in load_gold(path) if not g.conversation]
        except GoldError:
            continue
        cited = {s for g in items for s in g.sources}
        if not items or not cited or not cited <= sources:
            continue
        dev = [g for g in items if g.split == "dev"]
        by_lang = {lang: [g.question for g in dev if g.answerable and g.lang == lang] for lang in ("fr", "en")}
        picked = [q for pair in zip(by_lang["fr"], by_lang["en"]) for q in pair][: max(n - 1, 0)]
        return picked + [g.question for g in dev if g.kind == "off_topic"][:1]
    return []


TEXT = {
    "en": {
        "title": "Ask the documents",
        "tagline": "Answers are sentences quoted word for word from {n} documents, each with its source. Nothing "
                   "is generated: when the documents do not say, you are told so.",
        "placeholder": "Ask a question in English or French, then press Enter",
        "ask": "Ask",
        "examples": "Examples (click to ask)",
        "settings": "Settings",
        "k": "Passages to show",
        "mode": "Retrieval",
        "mode_info": "hybrid: meaning + keywords (recommended) · dense: meaning only · bm25: keywords only",
        "you": "You",
        "searching": "Searching the documents…",
        "not_in_sources": "Not in the sources",
        "related_btn": "Related passages (not an answer)",
        "open_doc": "Open the document",
        "line": "line {a}",
        "lines": "lines {a}–{b}",
        "page": "p. {n}",
        "paragraph": "paragraph {n}",
        "cite_title": "Passage {r} in the Sources panel",
        "sources_for": "Sources of the answer to",
        "related_for": "Closest passages to",
        "related_warn": "None of them answers the question: they are related reading only.",
        "contains_quote": "contains the quote",
        "open_here": "Open the document here",
        "stats": "{mode} retrieval · {n} passages · {ms:.0f} ms",
        "welcome": "Ask a question below, or click an example. Each answer is a sentence from the documents; "
                   "its markers [1] [2] point to the passages in the Sources panel, and any source opens at the "
                   "quoted place.",
        "sources_empty": "The passages behind each answer appear here.",
        "doc_empty": "Click “Open the document” on an answer or a passage to read the whole document at the "
                     "cited place.",
        "legend": "Legend:",
        "legend_quote": "quoted sentence",
        "legend_short": "short answer",
        "legend_psg": "passage {r}",
        "as_stored": "in the file as stored",
        "busy": "Please wait for the current answer.",
        "searched_as": "searched as:",
        "understood": "understood with: {words} (from your question {turn})",
        "ask_alone": "ask it again without the conversation",
        "new_chat": "New conversation",
        "confidence": {"high": "high confidence", "medium": "medium confidence", "low": "low confidence"},
        "confidence_tip": "The reader's estimate of the probability that this sentence answers the question",
        "percent": "{n}%",
        "decline": {"no_passage": "Nothing relevant was found in the documents.",
                    "unsure": "The documents give no answer: the closest sentence probably does not answer the "
                              "question{confidence}."},
        "decline_confidence": " (confidence {pct})",
        "tab_sources": "Sources",
        "tab_document": "Document",
        "tab_documents": "Documents",
        # the Documents panel and its status messages
        "doc_table": ["document", "format", "size", "pages / paragraphs / lines", ""],
        "formats": {"text": "text", "markdown": "Markdown", "html": "HTML", "pdf": "PDF", "docx": "Word",
                    "odt": "OpenDocument"},
        "units": {"page": ("{n} page", "{n} pages"), "paragraph": ("{n} paragraph", "{n} paragraphs"),
                  "line": ("{n} line", "{n} lines")},
        "kb": "{n} kB",
        "separators": (",", "."),  # thousands, decimals
        "left_out": "Left out of the index",
        "remove": "remove",
        "upload": "Add documents (.txt, .md, .html, .pdf, .docx, .odt)",
        "indexing": "Indexing: {done} of {total} texts embedded",
        "indexing_start": "Indexing…",
        "index_ready": "Index ready: {files} documents (embedded this time: {embedded})",
        "index_failed": "Indexing failed: {error}. The previous index stays in use.",
        "edit": {"read_only": "This server is read-only: start it with --allow-edits to add or remove documents.",
                 "type": "“{name}”: unsupported file type “{suffix}” (accepted: {accepted})",
                 "no_type": "“{name}”: a file name without an extension (accepted: {accepted})",
                 "missing": "“{name}”: the upload did not arrive",
                 "too_large": "“{name}”: too large ({mb} MB, over {limit} MB)",
                 "refused": "“{name}” refused: {reason}",
                 "unknown": "“{name}” is not a document of this corpus"},
        "failed": "Could not answer: {msg}",
        "gone": "That item is no longer available.",
    },
    "fr": {
        "title": "Interrogez les documents",
        "tagline": "Les réponses sont des phrases citées mot pour mot dans {n} documents, chacune avec sa source. "
                   "Rien n'est généré : quand les documents ne le disent pas, on vous le dit.",
        "placeholder": "Posez une question en français ou en anglais, puis appuyez sur Entrée",
        "ask": "Demander",
        "examples": "Exemples (cliquez pour demander)",
        "settings": "Réglages",
        "k": "Passages affichés",
        "mode": "Recherche",
        "mode_info": "hybrid : sens + mots-clés (recommandé) · dense : sens seul · bm25 : mots-clés seuls",
        "you": "Vous",
        "searching": "Recherche dans les documents…",
        "not_in_sources": "Pas dans les sources",
        "related_btn": "Passages proches (pas une réponse)",
        "open_doc": "Ouvrir le document",
        "line": "ligne {a}",
        "lines": "lignes {a}–{b}",
        "page": "p. {n}",
        "paragraph": "paragraphe {n}",
        "cite_title": "Passage {r} dans le panneau Sources",
        "sources_for": "Sources de la réponse à",
        "related_for": "Passages les plus proches de",
        "related_warn": "Aucun ne répond à la question : ce sont seulement des lectures connexes.",
        "contains_quote": "contient la citation",
        "open_here": "Ouvrir le document à cet endroit",
        "stats": "recherche {mode} · {n} passages · {ms:.0f} ms",
        "welcome": "Posez une question ci-dessous, ou cliquez sur un exemple. Chaque réponse est une phrase des "
                   "documents ; ses renvois [1] [2] désignent les passages du panneau Sources, et chaque source "
                   "s'ouvre à l'endroit cité.",
        "sources_empty": "Les passages sur lesquels repose chaque réponse s'affichent ici.",
        "doc_empty": "Cliquez sur « Ouvrir le document » dans une réponse ou un passage pour lire tout le document "
                     "à l'endroit cité.",
        "legend": "Légende :",
        "legend_quote": "phrase citée",
        "legend_short": "réponse courte",
        "legend_psg": "passage {r}",
        "as_stored": "dans le fichier tel qu'il est stocké",
        "busy": "Attendez la réponse en cours.",
        "searched_as": "recherché comme :",
        "understood": "compris avec : {words} (de votre question {turn})",
        "ask_alone": "la reposer sans la conversation",
        "new_chat": "Nouvelle conversation",
        "confidence": {"high": "confiance élevée", "medium": "confiance moyenne", "low": "confiance faible"},
        "confidence_tip": "La probabilité, estimée par le lecteur, que cette phrase réponde à la question",
        "percent": "{n}\u00a0%",
        "decline": {"no_passage": "Rien de pertinent n'a été trouvé dans les documents.",
                    "unsure": "Les documents ne permettent pas de répondre : la phrase la plus proche n'y répond "
                              "probablement pas{confidence}."},
        "decline_confidence": " (confiance {pct})",
        "tab_sources": "Sources",
        "tab_document": "Document",
        "tab_documents": "Documents",
        # the Documents panel and its status messages
        "doc_table": ["document", "format", "taille", "pages / paragraphes / lignes", ""],
        "formats": {"text": "texte", "markdown": "Markdown", "html": "HTML", "pdf": "PDF", "docx": "Word",
                    "odt": "OpenDocument"},
        "units": {"page": ("{n} page", "{n} pages"), "paragraph": ("{n} paragraphe", "{n} paragraphes"),
                  "line": ("{n} ligne", "{n} lignes")},
        "kb": "{n}\u00a0ko",
        "separators": ("\u202f", ","),
        "left_out": "Laissés hors de l'index",
        "remove": "retirer",
        "upload": "Ajouter des documents (.txt, .md, .html, .pdf, .docx, .odt)",
        "indexing": "Indexation : {done} textes sur {total} vectorisés",
        "indexing_start": "Indexation…",
        "index_ready": "Index prêt : {files} documents (vectorisés cette fois : {embedded})",
        "index_failed": "Échec de l'indexation : {error}. L'index précédent reste en service.",
        "edit": {"read_only": "Ce serveur est en lecture seule : lancez-le avec --allow-edits pour ajouter ou retirer "
                              "des documents.",
                 "type": "« {name} » : type de fichier « {suffix} » non pris en charge (acceptés : {accepted})",
                 "no_type": "« {name} » : nom de fichier sans extension (acceptées : {accepted})",
                 "missing": "« {name} » : le fichier envoyé n'est pas arrivé",
                 "too_large": "« {name} » : trop volumineux ({mb} Mo, plus de {limit} Mo)",
                 "refused": "« {name} » refusé : {reason}",
                 "unknown": "« {name} » n'est pas un document de ce corpus"},
        "failed": "Impossible de répondre : {msg}",
        "gone": "Cet élément n'est plus disponible.",
    },
}

# Clicks on the buttons inside the rendered HTML become Gradio events carrying (turn, rank); the server
# looks both up in the session's own history, so the client never names a file or an offset.
# After each update, the scroll box shows the element marked data-focus, or else (chat) its end.
_JS = """
element.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-act]');
  if (!button || !element.contains(button)) return;
  const data = {turn: Number(button.dataset.turn), rank: Number(button.dataset.rank)};
  if (button.dataset.act === 'open_doc') trigger('open_doc', data);
  else if (button.dataset.act === 'show_sources') trigger('show_sources', data);
  else if (button.dataset.act === 'ask_alone') trigger('ask_alone', data);
  else if (button.dataset.act === 'remove_doc') trigger('remove_doc', {name: button.dataset.name});
});
// A panel updated while its tab is hidden has no layout yet: wait until it is shown.
function reveal(tries) {
  const box = element.querySelector('.cq-scroll');
  if (!box) return;
  if (box.clientHeight === 0) { if (tries > 0) setTimeout(() => reveal(tries - 1), 50); return; }
  const focus = element.querySelector('[data-focus]');
  if (focus) box.scrollTop += focus.getBoundingClientRect().top - box.getBoundingClientRect().top - 48;
  else box.scrollTop = %s;
}
watch('value', () => reveal(40));
reveal(40);
"""
_JS_CHAT = _JS % "box.scrollHeight"
_JS_PANEL = _JS % "0"

CSS = """
.cq-header h1 { font-size: 1.45rem; margin: 0 0 .25rem 0; }
.cq-header p { margin: 0; color: var(--body-text-color-subdued); max-width: 60rem; }
.cq-scroll { overflow-y: auto; padding: .25rem .5rem .25rem 0; }
#chat .cq-scroll { height: min(50vh, 500px); }
#sources .cq-scroll, #viewer .cq-scroll { max-height: min(70vh, 680px); }
#viewer .cq-scroll { border-top: 1px solid var(--border-color-primary); padding-top: .5rem; }
.cq-empty { color: var(--body-text-color-subdued); padding: 1rem 0; }
.cq-turn { margin: 0 0 1.1rem 0; }
.cq-q { margin-left: auto; max-width: 85%; width: fit-content; background: var(--color-accent-soft);
        border-radius: 12px 12px 2px 12px; padding: .5rem .8rem; }
.cq-who { font-size: .75rem; font-weight: 600; color: var(--body-text-color-subdued); display: block; }
.cq-a { margin-top: .5rem; max-width: 95%; border-radius: 2px 12px 12px 12px; padding: .6rem .9rem;
        background: var(--background-fill-secondary); border-left: 4px solid #2563eb; }
.cq-lead { font-weight: 600; margin-bottom: .3rem; display: flex; flex-wrap: wrap; gap: .3rem .6rem;
           align-items: baseline; }
.cq-conf { font-size: .78rem; font-weight: 600; border-radius: 999px; padding: .05rem .6rem; white-space: nowrap; }
.cq-conf-high { background: #dcfce7; color: #14532d; }
.cq-conf-medium { background: #fef3c7; color: #713f12; }
.cq-conf-low { background: #fee2e2; color: #7f1d1d; }
.cq-quote { margin: .2rem 0 .5rem 0; font-size: 1.02rem; line-height: 1.55; }
.cq-a.cq-abstain { border-left-color: #b45309; background: #fff7e6; color: #3b2606; }
.cq-abstain .cq-lead { color: #92400e; }
.cq-a.cq-pending { border-left-color: #94a3b8; color: var(--body-text-color-subdued); font-style: italic; }
.cq-a.cq-error { border-left-color: #b91c1c; background: #fdecec; color: #5b1010; }
.cq-notice { font-size: .85rem; font-style: italic; margin-bottom: .3rem; }
.cq-searched { font-size: .8rem; color: var(--body-text-color-subdued); margin-top: .25rem; text-align: right; }
.cq-docs { overflow-x: auto; }
.cq-docs table { width: 100%; border-collapse: collapse; font-size: .88rem; }
/* the id outweighs Gradio's prose rule, which draws every cell's four borders in the text colour */
#documents .cq-docs table, #documents .cq-docs tr { border: 0; }
#documents .cq-docs td, #documents .cq-docs th { text-align: left; vertical-align: top; padding: .3rem .4rem; border: 0;
                                                 border-bottom: 1px solid var(--border-color-primary); }
.cq-docs .cq-file { overflow-wrap: anywhere; color: var(--body-text-color-subdued); }
.cq-docs > .cq-stats { margin-bottom: .4rem; }
.cq-docs td.cq-num { white-space: nowrap; }
.cq-progress { height: .5rem; background: var(--background-fill-secondary); border-radius: 4px; overflow: hidden; }
.cq-progress > div { height: 100%; background: #2563eb; }
.cq-context { font-size: .82rem; color: var(--body-text-color-subdued); margin-top: .35rem; display: flex;
              flex-wrap: wrap; gap: .4rem; align-items: center; }
mark.quote { background: #fdf0a6; color: #111827; padding: 0 1px; border-radius: 2px; }
mark.psg { background: #dbe8fd; color: #111827; }
mark.short { background: #fbbf24; color: #111827; font-weight: 700; }
mark.quote.psg { background: #fdf0a6; }
mark.short.psg { background: #fbbf24; }
.cq-quote mark.short { padding: 0 2px; }
button.cq-cite { font: inherit; font-size: .8rem; font-weight: 700; color: #1e3a8a; background: #dbe4fb;
                 border: 1px solid #b7c7f3; border-radius: 5px; padding: 0 .3rem; margin-left: .3rem;
                 cursor: pointer; vertical-align: text-top; line-height: 1.4; }
button.cq-cite:hover, button.cq-cite:focus-visible { background: #c3d3fa; }
button.cq-link { font: inherit; font-size: .9rem; cursor: pointer; border-radius: 6px; padding: .2rem .55rem;
                 border: 1px solid var(--border-color-primary); background: var(--background-fill-primary);
                 color: var(--body-text-color); }
button.cq-link:hover, button.cq-link:focus-visible { border-color: #2563eb; color: #1d4ed8; }
.cq-abstain button.cq-link { background: #fffdf7; color: #3b2606; }
.cq-ref { display: flex; flex-wrap: wrap; gap: .4rem; align-items: center; font-size: .88rem;
          color: var(--body-text-color-subdued); }
.cq-file { font-family: var(--font-mono); font-size: .85em; }
.cq-panel-head { margin-bottom: .6rem; }
.cq-panel-head .cq-question { font-weight: 600; }
.cq-warn { margin-top: .35rem; padding: .35rem .6rem; border-radius: 6px; background: #fff7e6; color: #3b2606;
           border-left: 4px solid #b45309; }
.cq-stats { font-size: .8rem; color: var(--body-text-color-subdued); margin-top: .2rem; }
.cq-card { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: .55rem .7rem;
           margin-bottom: .6rem; background: var(--background-fill-primary); }
.cq-card.cq-has-quote { border-color: #2563eb; }
.cq-card[data-focus] { box-shadow: 0 0 0 3px rgba(37, 99, 235, .35); }
.cq-meta { display: flex; flex-wrap: wrap; gap: .45rem; align-items: baseline; font-size: .85rem;
           color: var(--body-text-color-subdued); }
.cq-rank { font-weight: 700; color: #1d4ed8; }
.cq-chip { font-size: .75rem; background: #fdf0a6; color: #111827; border-radius: 999px; padding: 0 .5rem; }
.cq-title { font-weight: 600; margin: .2rem 0 .3rem 0; }
.cq-text { white-space: pre-wrap; font-size: .92rem; line-height: 1.5; margin-bottom: .4rem; }
.cq-doc { white-space: pre-wrap; line-height: 1.6; font-size: .95rem; padding-right: .4rem; }
.cq-legend { font-size: .8rem; color: var(--body-text-color-subdued); margin: .3rem 0 .5rem 0; }
.cq-legend mark { padding: 0 .3rem; }
.dark .cq-a.cq-abstain, .dark .cq-warn { background: #3a2a0c; color: #fde7c0; }
.dark .cq-abstain .cq-lead { color: #fcd38a; }
.dark .cq-abstain button.cq-link { background: #2a1f0a; color: #fde7c0; }
.dark .cq-a.cq-error { background: #3b1414; color: #fecaca; }
.dark .cq-rank { color: #93b4fd; }
.dark .cq-conf-high { background: #14532d; color: #dcfce7; }
.dark .cq-conf-medium { background: #713f12; color: #fef3c7; }
.dark .cq-conf-low { background: #7f1d1d; color: #fee2e2; }
.dark button.cq-link:hover, .dark button.cq-link:focus-visible { border-color: #93b4fd; color: #93b4fd; }
"""

# The theme's "subdued" grey (hints, placeholders, metadata) is too faint by default: contrast below 3:1.
# (``set`` also resets the page background to white: keep Soft's light grey, on which the white blocks stand out.)
THEME = gr.themes.Soft(primary_hue="blue", neutral_hue="slate").set(
    background_fill_primary="*neutral_50",
    body_text_color_subdued="*neutral_600", body_text_color_subdued_dark="*neutral_300",
    input_placeholder_color="*neutral_500", input_placeholder_color_dark="*neutral_400")


def _t(lang: str) -> dict:
    return TEXT.get(lang, TEXT["en"])


def _number(lang: str, value: float, digits: int = 0) -> str:
    """``value`` with the language's separators: 1,234.5 in English, 1 234,5 in French."""
    thousands, decimal = _t(lang)["separators"]
    return f"{value:,.{digits}f}".replace(",", thousands).replace(".", decimal)


def _percent(lang: str, value: float) -> str:
    return _t(lang)["percent"].format(n=round(value * 100))


def confidence_label(lang: str, value: float | None) -> str:
    """The reader's confidence in a quote, in words and per cent ("high confidence (87%)"); "" when it
    gave none (an engine without a learned reader)."""
    if value is None:
        return ""
    band = "high" if value >= HIGH_CONFIDENCE else "medium" if value >= MEDIUM_CONFIDENCE else "low"
    t = _t(lang)
    return (f'<span class="cq-conf cq-conf-{band}" title="{_esc(t["confidence_tip"])}">'
            f'{_esc(t["confidence"][band])} ({_esc(_percent(lang, value))})</span>')


def decline_text(result: dict) -> str:
    """Why a result has no answer, in its language: its ``reason`` worded by the page (with the best
    sentence's confidence when the reader was unsure), else the engine's own message."""
    lang = result["lang"]
    t = _t(lang)
    template = t["decline"].get(result.get("reason"))
    if template is None:  # no reason given, or one this page does not know
        return result["message"]
    value = result.get("confidence")
    said = "" if value is None else t["decline_confidence"].format(pct=_percent(lang, value))
    return template.format(confidence=said)


def edit_text(exc: EditError, lang: str) -> str:
    """A refused upload or removal, in ``lang``."""
    return _t(lang)["edit"][exc.code].format(**exc.params)


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _where(lang: str, cited: dict) -> str:
    """Where a quote or passage is in its file: the page of a PDF, the paragraph of a Word or
    OpenDocument file, else its lines."""
    for unit in ("page", "paragraph"):
        if cited.get(unit):
            return _t(lang)[unit].format(n=cited[unit])
    return _lines(lang, cited["line_start"], cited["line_end"])


def _lines(lang: str, a: int, b: int) -> str:
    return _t(lang)["line"].format(a=a) if a == b else _t(lang)["lines"].format(a=a, b=b)


def _button(css: str, act: str, turn: int, rank: int, label: str, title: str = "") -> str:
    tip = f' title="{_esc(title)}"' if title else ""
    return (f'<button type="button" class="{css}" data-act="{act}" data-turn="{turn}" data-rank="{rank}"{tip}>'
            f"{label}</button>")


def highlight(text: str, spans: list[tuple[int, int, str]], focus: int | None = None) -> str:
    """``text`` escaped, with ``<mark class=...>`` over ``spans`` (offsets in ``text``, clipped to it;
    overlaps get both classes) and an anchor ``data-focus`` at offset ``focus``."""
    n = len(text)
    clipped = [(max(s, 0), min(e, n), css) for s, e, css in spans]
    clipped = [(s, e, css) for s, e, css in clipped if s < e]
    cuts = {0, n, *(s for s, _, _ in clipped), *(e for _, e, _ in clipped)}
    anchor = focus if focus is not None and 0 <= focus <= n else None
    if anchor is not None:
        cuts.add(anchor)
    points = sorted(cuts)
    out = []
    for a, b in zip(points, points[1:]):
        if a == anchor:
            out.append('<span data-focus=""></span>')
        piece = html.escape(text[a:b])
        classes = [css for s, e, css in clipped if s <= a and b <= e]
        out.append(f'<mark class="{" ".join(classes)}">{piece}</mark>' if classes else piece)
    return "".join(out)


def _found(text: str, needle: str | None, css: str, within: tuple[int, int] | None = None) -> list[tuple[int, int, str]]:
    """The span of ``needle`` in ``text`` (or in its part ``within``), spaces of any kind and number
    matching one another: a quote is its file's text with spaces folded."""
    if not needle:
        return []
    a, b = within or (0, len(text))
    pattern = r"\s+".join(re.escape(word) for word in needle.split())
    m = re.compile(pattern).search(text, a, b)
    return [(m.start(), m.end(), css)] if m else []


def _answer_spans(answer: dict, text: str, within: tuple[int, int] | None = None) -> list[tuple[int, int, str]]:
    """The quote and, inside it, the short answer, as spans of ``text`` (a passage, or the quote itself)."""
    quote = (within and [(within[0], within[1], "quote")]) or _found(text, answer["quote"], "quote")
    if not quote:
        return []
    return quote + _found(text, answer.get("short_answer"), "short", quote[0][:2])


def _quoting(result: dict) -> list[int]:
    """Ranks of the passages that overlap the quoted span."""
    a = result["answer"]
    if not a:
        return []
    return [p["rank"] for p in result["passages"]
            if p["source"] == a["source"] and p["start"] < a["end"] and a["start"] < p["end"]]


def render_header(lang: str, n_docs: int) -> str:
    t = _t(lang)
    return (f'<div class="cq-header"><h1>{_esc(t["title"])}</h1>'
            f'<p>{_esc(t["tagline"].format(n=n_docs))}</p></div>')


def _render_turn(i: int, turn: dict, lang: str) -> str:
    t = _t(lang)
    searched = ""
    translation = (turn.get("result") or {}).get("translation")
    if translation:  # the question in the documents' language, as it was also searched
        searched = f'<div class="cq-searched">{_esc(t["searched_as"])} « {_esc(translation["text"])} »</div>'
    question = (f'<div class="cq-q"><span class="cq-who">{_esc(t["you"])}</span>{_esc(turn["question"])}</div>'
                f'{searched}')
    if turn["status"] == "pending":
        reply = f'<div class="cq-a cq-pending">{_esc(t["searching"])}</div>'
    elif turn["status"] == "error":
        reply = f'<div class="cq-a cq-error">{_esc(t["failed"].format(msg=turn["error"]))}</div>'
    else:
        r = turn["result"]
        t = _t(r["lang"])
        notice = f'<div class="cq-notice">{_esc(r["notice"])}</div>' if r.get("notice") else ""
        a = r["answer"]
        if a:
            label = confidence_label(r["lang"], a.get("confidence"))
            markers = "".join(_button("cq-cite", "show_sources", i, rank, f"[{rank}]", t["cite_title"].format(r=rank))
                              for rank in _quoting(r))
            quote = highlight(a["quote"], _answer_spans(a, a["quote"])[1:])
            ref = _button("cq-link", "open_doc", i, 0,
                          f'<span class="cq-file">{_esc(a["source"])}</span> · '
                          f'{_esc(_where(r["lang"], a))} — {_esc(t["open_doc"])}')
            reply = (f'<div class="cq-a cq-answer">{notice}<div class="cq-lead">{_esc(r["message"])}{label}</div>'
                     f'<div class="cq-quote">« {quote} »{markers}</div>'
                     f'<div class="cq-ref">{ref}<span>{_esc(a["title"])}</span></div></div>')
        else:
            related = _button("cq-link", "show_sources", i, 0, _esc(t["related_btn"])) if r["passages"] else ""
            reply = (f'<div class="cq-a cq-abstain">{notice}'
                     f'<div class="cq-lead">∅ {_esc(t["not_in_sources"])}</div>'
                     f'<p>{_esc(decline_text(r))}</p><div class="cq-ref">{related}</div></div>')
        context = r.get("context")
        if context:  # what the follow-up was read with, and the way to ask it alone
            words = ", ".join(context["carried"][:6]) + (", …" if len(context["carried"]) > 6 else "")
            reply += (f'<div class="cq-context"><span>{_esc(t["understood"].format(words=words, turn=context["from_turn"]))}'
                      f'</span>{_button("cq-link", "ask_alone", i, 0, _esc(t["ask_alone"]))}</div>')
    return f'<div class="cq-turn">{question}{reply}</div>'


def render_chat(history: list[dict], lang: str) -> str:
    """The conversation, oldest first; labels of each turn in its question's language."""
    if not history:
        body = f'<div class="cq-empty">{_esc(_t(lang)["welcome"])}</div>'
    else:
        body = "".join(_render_turn(i, turn, (turn.get("result") or {}).get("lang", lang))
                       for i, turn in enumerate(history))
    return f'<div class="cq-scroll" role="log" aria-live="polite">{body}</div>'


def render_sources(i: int, result: dict, focus_rank: int = 0) -> str:
    """The passages of turn ``i``: an answer's sources, or an abstention's related reading."""
    lang = result["lang"]
    t = _t(lang)
    a = result["answer"]
    head = (f'<div class="cq-panel-head"><div>{_esc(t["sources_for"] if a else t["related_for"])}</div>'
            f'<div class="cq-question">« {_esc(result["question"])} »</div>')
    if not a:
        head += f'<div class="cq-warn">∅ {_esc(t["not_in_sources"])}. {_esc(t["related_warn"])}</div>'
    stats = t["stats"].format(mode=result.get("mode", "hybrid"), n=len(result["passages"]),
                              ms=result.get("timings_ms", {}).get("total", 0.0))
    head += f'<div class="cq-stats">{_esc(stats)}</div></div>'
    quoting = set(_quoting(result))
    cards = []
    for p in result["passages"]:
        spans = _answer_spans(a, p["text"]) if p["rank"] in quoting else []
        chip = f'<span class="cq-chip">{_esc(t["contains_quote"])}</span>' if p["rank"] in quoting else ""
        focus = ' data-focus=""' if p["rank"] == focus_rank else ""
        cards.append(
            f'<div class="cq-card{" cq-has-quote" if chip else ""}"{focus}>'
            f'<div class="cq-meta"><span class="cq-rank">[{p["rank"]}]</span>'
            f'<span class="cq-file">{_esc(p["source"])}</span>'
            f'<span>{_esc(_where(lang, p))}</span>'
            f'<span>score {p["score"]:.3f}</span>{chip}</div>'
            f'<div class="cq-title">{_esc(p["title"])}</div>'
            f'<div class="cq-text">{highlight(p["text"], spans)}</div>'
            f'{_button("cq-link", "open_doc", i, p["rank"], _esc(t["open_here"]))}</div>')
    return f'<div class="cq-scroll">{head}{"".join(cards)}</div>'


def view_span(view, start: int, end: int) -> tuple[int, int]:
    """The part of a document's view (load.text_layer: a MappedText of its stored text) that the
    stored span ``start:end`` is read as: the quote's own span, not a search for its words."""
    import numpy as np

    return int(np.searchsorted(view.pos[:-1], start, "left")), int(np.searchsorted(view.end, end, "right"))


def render_document(doc, view, result: dict, rank: int) -> str:
    """The document as a reader sees its file (``view``: load.text_layer of its stored text),
    scrolled to the answer's quote (rank 0) or to passage ``rank``."""
    lang = result["lang"]
    t = _t(lang)
    a = result["answer"]
    spans = _answer_spans(a, view.text, view_span(view, a["start"], a["end"])) if a and a["source"] == doc.source else []
    legend = []
    if rank == 0:
        place = a
    else:
        place = next(p for p in result["passages"] if p["rank"] == rank)
        spans.insert(0, (*view_span(view, place["start"], place["end"]), "psg"))
        legend.append(f'<mark class="psg">{_esc(t["legend_psg"].format(r=rank))}</mark>')
    for css in ("quote", "short"):
        if any(c == css for _, _, c in spans):
            legend.append(f'<mark class="{css}">{_esc(t["legend_" + css])}</mark>')
    head = (f'<div class="cq-panel-head"><div class="cq-meta"><span class="cq-file">{_esc(doc.source)}</span>'
            f'<span>{_esc(_where(lang, place))} {_esc(t["as_stored"])}</span></div>'
            f'<div class="cq-title">{_esc(doc.title)}</div>'
            f'<div class="cq-legend">{_esc(t["legend"])} {" ".join(legend)}</div></div>')
    body = highlight(view.text, spans, focus=view_span(view, place["start"], place["end"])[0])
    return f'{head}<div class="cq-scroll"><div class="cq-doc">{body}</div></div>'


def render_documents(rows: list[dict], problems: dict[str, str], lang: str, editable: bool) -> str:
    """The corpus: every indexed document, and the files left out with their reasons (the loader's,
    as the index records them); a read-only server says how to allow edits."""
    t = _t(lang)
    head = "".join(f"<th>{_esc(h)}</th>" for h in t["doc_table"][: 5 if editable else 4])
    body = []
    for r in rows:
        remove = (f'<td><button type="button" class="cq-link" data-act="remove_doc" data-name="{_esc(r["source"])}">'
                  f'{_esc(t["remove"])}</button></td>') if editable else ""
        size = t["kb"].format(n=_number(lang, r["size"] / 1024, 1))
        units = t["units"][r["unit"]][r["units"] != 1].format(n=_number(lang, r["units"]))
        body.append(f'<tr><td>{_esc(r["title"])}<div class="cq-file">{_esc(r["source"])}</div></td>'
                    f'<td>{_esc(t["formats"].get(r["format"], r["format"]))}</td><td class="cq-num">{_esc(size)}</td>'
                    f'<td class="cq-num">{_esc(units)}</td>{remove}</tr>')
    note = "" if editable else f'<div class="cq-stats">{_esc(t["edit"]["read_only"])}</div>'
    out = f'<div class="cq-docs">{note}<table><tr>{head}</tr>{"".join(body)}</table>'
    if problems:
        items = "".join(f'<li><span class="cq-file">{_esc(n)}</span>: {_esc(reason)}</li>' for n, reason in problems.items())
        out += f'<div class="cq-warn">{_esc(t["left_out"])}:<ul>{items}</ul></div>'
    return out + "</div>"


def render_progress(progress, lang: str) -> str:
    """The background indexing (library.Progress): its bar while it runs, then how it ended."""
    t = _t(lang)
    if not progress.running:
        ended = {"ready": t["index_ready"].format(files=progress.files, embedded=progress.embedded),
                 "failed": t["index_failed"].format(error=progress.error)}.get(progress.outcome)
        return f'<div class="cq-stats" role="status">{_esc(ended)}</div>' if ended else ""
    share = progress.done / progress.total if progress.total else 0.0
    label = t["indexing"].format(done=progress.done, total=progress.total) if progress.total else t["indexing_start"]
    return (f'<div class="cq-stats" role="status">{_esc(label)}</div>'
            f'<div class="cq-progress"><div style="width: {share:.0%}"></div></div>')


def _empty(text: str) -> str:
    return f'<div class="cq-empty">{_esc(text)}</div>'


def _lang_from(request: gr.Request | None) -> str:
    """French for a browser whose first preferred language is French, English otherwise."""
    header = request.headers.get("accept-language", "") if request is not None else ""
    return "fr" if header.strip().lower().startswith("fr") else "en"


def _check_size(question) -> None:
    if isinstance(question, str) and len(question) > MAX_REQUEST_CHARS:
        raise gr.Error(f"question too long: {len(question):,} characters, over the limit of {MAX_REQUEST_CHARS:,} "
                       f"(only the first {MAX_QUESTION_CHARS:,} are used)", title="csto-qa", print_exception=False)


def build_app(qa: QA, log=print, examples: list[str] | None = None, corpus: str | Path | None = None,
              library: Library | None = None) -> gr.Blocks:
    """The page over ``qa`` (through ``library``, which swaps in a new index after the corpus
    changes); its example questions are ``examples``, else those of a gold set beside ``corpus``
    (examples_for)."""
    library = library or Library(qa, Path(corpus or "."), qa.index.path, log=log)

    @functools.lru_cache(maxsize=16)
    def view(source: str, generation: int):
        doc = library.qa.document(source)
        return text_layer(doc.stored, doc.format)[0]
    if examples is None:
        examples = examples_for(corpus, {d.source for d in library.qa.index.documents}) if corpus is not None else []
    examples_list = list(examples)

    def documents_page(lang: str):
        rows, problems = library.documents()
        return render_documents(rows, problems, lang, library.allow_edits), render_progress(library.progress, lang)

    def chrome(lang: str, was: str | None = None) -> tuple:
        """The fixed parts of the page and the Documents panel, relabelled in ``lang``; the panel is left
        as it is when the page already spoke ``lang`` (``was``): its list can be long."""
        t = _t(lang)
        fixed = (render_header(lang, len(library.qa.index.documents)),
                 gr.update(placeholder=t["placeholder"], submit_btn=t["ask"]), gr.update(label=t["examples"]),
                 gr.update(label=t["settings"]), gr.update(label=t["k"]),
                 gr.update(label=t["mode"], info=t["mode_info"]), gr.update(value=t["new_chat"]),
                 gr.update(label=t["tab_sources"]), gr.update(label=t["tab_document"]),
                 gr.update(label=t["tab_documents"]))
        if lang == was:
            return (*fixed, gr.update(), gr.update(), gr.update())
        return (*fixed, gr.update(label=t["upload"]), *documents_page(lang))

    def init(request: gr.Request):
        lang = _lang_from(request)
        return (lang, render_chat([], lang), _empty(_t(lang)["sources_empty"]), _empty(_t(lang)["doc_empty"]),
                *chrome(lang))

    def chat_api(question: str, history: str) -> dict:
        """The question read with the conversation before it: ``history`` is a JSON list of
        {"question": ..., "result": <an earlier answer object, or null>}, oldest first."""
        _check_size(question)
        try:
            turns = json.loads(history) if isinstance(history, str) and history.strip() else (history or [])
        except ValueError:
            raise gr.Error("history must be a JSON list of {\"question\", \"result\"} turns",
                           print_exception=False) from None
        try:
            return library.qa.ask(question, history=turns).to_dict()
        except QuestionError as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    def ask_api(question: str) -> dict:
        return chat_api(question, "")

    def start_turn(question: str, history: list[dict], lang: str, alone: bool = False):
        """Shows the question at once, before waiting for a free slot of the engine. ``alone``: it is
        asked without the conversation before it."""
        if any(turn["status"] == "pending" for turn in history):
            raise gr.Error(_t(lang)["busy"], title="csto-qa")
        _check_size(question)
        try:
            text, _ = clean_question(question)
        except QuestionError as exc:
            raise gr.Error(str(exc), title="csto-qa", print_exception=False) from None
        history = [*history, {"question": text, "asked": question, "status": "pending", "result": None, "error": None,
                              "alone": alone}]
        return history, render_chat(history, lang), ""

    def ask_alone(history: list[dict], lang: str, evt: gr.EventData):
        i, _, _ = find(history, lang, evt)
        return start_turn(history[i]["asked"], history, lang, alone=True)[:2]

    def run_turn(history: list[dict], k: int, mode: str, lang: str):
        was = lang
        if not history or history[-1]["status"] != "pending":
            raise gr.Error(_t(lang)["gone"], title="csto-qa")
        turn = dict(history[-1])
        i = len(history) - 1
        try:
            earlier = [] if turn.get("alone") else [{"question": t["question"], "result": t["result"]}
                                                    for t in history[:-1]]
            result = library.qa.ask(turn["asked"], history=earlier, k=int(k), mode=mode).to_dict()
            result["mode"] = mode
            turn.update(status="done", result=result)
            lang = result["lang"]
            sources = render_sources(i, result)
        except Exception as exc:  # the user gets one line; the terminal gets the reason
            log(f"csto-qa: could not answer {turn['question']!r}: {type(exc).__name__}: {exc}")
            turn.update(status="error", error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            sources = gr.update()
        history = [*history[:-1], turn]
        return (history, lang, render_chat(history, lang), sources, gr.Tabs(selected="sources"), *chrome(lang, was))

    def find(history: list[dict], lang: str, evt: gr.EventData) -> tuple[int, dict, int]:
        """The turn and rank a click names, checked against this session's own history."""
        try:
            i, rank = int(evt._data["turn"]), int(evt._data["rank"])
            result = history[i]["result"] if i >= 0 else None
        except (KeyError, IndexError, TypeError, ValueError):
            result = None
        if result is None or not (rank == 0 or any(p["rank"] == rank for p in result["passages"])):
            raise gr.Error(_t(lang)["gone"], title="csto-qa", print_exception=False)
        return i, result, rank

    def show_sources(history: list[dict], lang: str, evt: gr.EventData):
        i, result, rank = find(history, lang, evt)
        return render_sources(i, result, rank), gr.Tabs(selected="sources")

    def open_doc(history: list[dict], lang: str, evt: gr.EventData):
        i, result, rank = find(history, lang, evt)
        if rank == 0 and not result["answer"]:
            raise gr.Error(_t(result["lang"])["gone"], title="csto-qa", print_exception=False)
        source = result["answer"]["source"] if rank == 0 else next(
            p["source"] for p in result["passages"] if p["rank"] == rank)
        doc = library.qa.document(source)
        if doc is None:  # removed since, or a forged history: nothing else is ever shown
            raise gr.Error(_t(lang)["gone"], title="csto-qa", print_exception=False)
        return (render_document(doc, view(source, library.progress.changes), result, rank),
                gr.Tabs(selected="document"))

    def upload(files, lang: str):
        try:
            _, refused = library.add([(Path(f).name, Path(f)) for f in files or []])
        except EditError as exc:
            raise gr.Error(edit_text(exc, lang), title="csto-qa", print_exception=False) from None
        if refused:
            gr.Warning("\n".join(edit_text(exc, lang) for exc in refused), title="csto-qa")
        return None, *documents_page(lang)

    def remove(lang: str, evt: gr.EventData):
        try:
            library.remove(str((evt._data or {}).get("name", "")))
        except EditError as exc:
            raise gr.Error(edit_text(exc, lang), title="csto-qa", print_exception=False) from None
        return documents_page(lang)

    def tick(lang: str, seen: int):
        """Every second: the progress bar, and the list once a new index is in."""
        if library.progress.changes == seen and not library.progress.running:
            return gr.update(), render_progress(library.progress, lang), seen, gr.update()
        rows, problems = library.documents()
        return (render_documents(rows, problems, lang, library.allow_edits), render_progress(library.progress, lang),
                library.progress.changes, render_header(lang, len(library.qa.index.documents)))

    with gr.Blocks(title="csto-qa", analytics_enabled=False) as app:
        history = gr.State([])
        lang = gr.State("en")
        header = gr.HTML(render_header("en", len(library.qa.index.documents)), js_on_load=None)
        generation = gr.State(0)
        with gr.Row(equal_height=False):
            with gr.Column(scale=6, min_width=360):
                chat = gr.HTML(render_chat([], "en"), elem_id="chat", js_on_load=_JS_CHAT, container=True,
                               padding=True)
                box = gr.Textbox(show_label=False, placeholder=TEXT["en"]["placeholder"], submit_btn=TEXT["en"]["ask"],
                                 autofocus=True, elem_id="question", lines=1, max_lines=4)
                new_chat = gr.Button(TEXT["en"]["new_chat"], size="sm", variant="secondary", elem_id="new-chat")
                examples = gr.Dataset(components=[box], samples=[[q] for q in examples_list], type="index",
                                      label=TEXT["en"]["examples"], layout="gallery", visible=bool(examples_list))
                with gr.Accordion(TEXT["en"]["settings"], open=False) as settings:
                    k = gr.Slider(1, 10, value=5, step=1, label=TEXT["en"]["k"])
                    mode = gr.Radio(list(MODES), value="hybrid", label=TEXT["en"]["mode"], info=TEXT["en"]["mode_info"])
            with gr.Column(scale=5, min_width=360):
                with gr.Tabs(selected="sources") as tabs:
                    with gr.Tab(TEXT["en"]["tab_sources"], id="sources", render_children=True) as tab_sources:
                        sources = gr.HTML(_empty(TEXT["en"]["sources_empty"]), elem_id="sources",
                                          js_on_load=_JS_PANEL)
                    with gr.Tab(TEXT["en"]["tab_document"], id="document", render_children=True) as tab_document:
                        viewer = gr.HTML(_empty(TEXT["en"]["doc_empty"]), elem_id="viewer", js_on_load=_JS_PANEL)
                    with gr.Tab(TEXT["en"]["tab_documents"], id="documents", render_children=True) as tab_documents:
                        progress = gr.HTML("", elem_id="indexing")
                        uploads = gr.File(file_count="multiple", label=TEXT["en"]["upload"], elem_id="upload",
                                          type="filepath", file_types=sorted(SUFFIXES), visible=library.allow_edits)
                        documents = gr.HTML(render_documents(*library.documents(), "en", library.allow_edits),
                                            elem_id="documents", js_on_load=_JS_PANEL)
                timer = gr.Timer(1.0)

        fixed = [header, box, examples, settings, k, mode, new_chat, tab_sources, tab_document, tab_documents,
                 uploads, documents, progress]
        quick = dict(concurrency_limit=None, api_visibility="private")
        app.load(init, None, [lang, chat, sources, viewer, *fixed], **quick)
        ask_steps = dict(
            fn=run_turn, inputs=[history, k, mode, lang], outputs=[history, lang, chat, sources, tabs, *fixed],
            concurrency_limit=ENGINE_CONCURRENCY, concurrency_id=ENGINE, api_visibility="private",
            show_progress="minimal")
        start_steps = dict(fn=start_turn, inputs=[box, history, lang], outputs=[history, chat, box],
                           show_progress="hidden", **quick)
        box.submit(**start_steps).success(**ask_steps)
        pick = examples.click(lambda index: examples_list[index], examples, box, **quick)
        pick.success(**start_steps).success(**ask_steps)
        for panel in (chat, sources):
            panel.open_doc(open_doc, [history, lang], [viewer, tabs], **quick)
        chat.show_sources(show_sources, [history, lang], [sources, tabs], **quick)
        chat.ask_alone(ask_alone, [history, lang], [history, chat], **quick).success(**ask_steps)
        uploads.upload(upload, [uploads, lang], [uploads, documents, progress], concurrency_limit=None,
                       api_visibility="private")
        documents.remove_doc(remove, [lang], [documents, progress], **quick)
        timer.tick(tick, [lang, generation], [documents, progress, generation, header], show_progress="hidden", **quick)
        new_chat.click(lambda lang: ([], render_chat([], lang), _empty(_t(lang)["sources_empty"]),
                                     _empty(_t(lang)["doc_empty"])), [lang], [history, chat, sources, viewer], **quick)
        gr.api(ask_api, api_name="ask", concurrency_limit=ENGINE_CONCURRENCY, concurrency_id=ENGINE)
        gr.api(chat_api, api_name="chat", concurrency_limit=ENGINE_CONCURRENCY, concurrency_id=ENGINE)
    return app.queue(default_concurrency_limit=ENGINE_CONCURRENCY, max_size=QUEUE_SIZE)


def launch(app: gr.Blocks, host: str = "127.0.0.1", port: int | None = 7860, block: bool = True):
    """Starts the server (``port=None``: a free one); ``block=False`` returns at once, as tests need."""
    return app.launch(server_name=host, server_port=port, prevent_thread_lock=not block, theme=THEME, css=CSS,
                      show_error=False, quiet=not block)


def serve(corpus="corpus", index="index", embedder=None, host="127.0.0.1", port=7860, log=print,
          translator=None, allow_edits: bool = False, watch: bool = False) -> None:
    log(f"csto-qa: opening the index in {index} (the first start builds it: about a minute, progress below)")
    qa = QA.open(corpus, index, embedder=embedder, log=log, translator=translator)
    log(f"csto-qa: {translate.status(qa.translator)}")
    library = Library(qa, Path(corpus), Path(index), embedder, allow_edits=allow_edits, log=log)
    if watch:
        library.watch()
        log(f"csto-qa: watching {corpus}: files added, changed or removed there are indexed in the background")
    log(f"csto-qa: {len(qa.index.documents)} documents ready ({'documents can be added and removed from the page' if allow_edits else 'read-only'}); "
        f"starting the web interface on http://{host}:{port}")
    launch(build_app(qa, log, corpus=corpus, library=library), host, port)
