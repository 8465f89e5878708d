"""PIAF (SQuAD-format French QA, read where it lies, never copied): articles split into train / dev /
test parts by a fixed hash of their title, and each question's answering sentence.

The split is by article, so a part's questions never meet a paragraph another part trained on. The
sentences are the engine's own (split.sentence_spans): what the reader learns to pick is what the
engine will offer it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..split import sentence_spans

PARTS = ("train", "dev", "test")
DEFAULT_PATH = Path("../shared/data/piaf")


class DataError(Exception):
    pass


def part_of(title: str) -> str:
    """train (60 %), dev (20 %) or test (20 %), by a hash of the article's title."""
    bucket = int(hashlib.sha256(title.encode("utf-8")).hexdigest(), 16) % 10
    return "train" if bucket < 6 else "dev" if bucket < 8 else "test"


@dataclass
class Question:
    id: str
    text: str
    answer: str
    sentence: int  # index into its Article's sentences of the one holding the answer's start
    paragraph: int
    english: str | None = None  # the question put into English (Apertium), when made


@dataclass
class Article:
    title: str
    part: str
    paragraphs: list[str]
    sentences: list[str] = field(default_factory=list)
    sentence_paragraph: list[int] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)

    def context(self, sentence: int) -> str:
        """The sentence after the one before it in its paragraph (as the index embeds it)."""
        prev = sentence - 1
        if prev >= 0 and self.sentence_paragraph[prev] == self.sentence_paragraph[sentence]:
            return f"{self.sentences[prev]} {self.sentences[sentence]}"
        return self.sentences[sentence]


def load(path: Path = DEFAULT_PATH) -> list[Article]:
    """Every article of the PIAF file(s) in ``path`` (a folder or a .json file), with its part."""
    path = Path(path)
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise DataError(f"no PIAF .json file in {path}")
    articles = []
    for f in files:
        try:
            data = json.loads(f.read_text(encoding="utf-8"))["data"]
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"{f}: not a SQuAD-format file ({exc})") from None
        for raw in data:
            articles.append(_article(raw))
    return articles


def _article(raw: dict) -> Article:
    art = Article(raw["title"], part_of(raw["title"]), [p["context"] for p in raw["paragraphs"]])
    for p, para in enumerate(raw["paragraphs"]):
        text = para["context"]
        spans = sentence_spans(text)
        first = len(art.sentences)
        art.sentences.extend(text[a:b] for a, b in spans)
        art.sentence_paragraph.extend([p] * len(spans))
        for qa in para["qas"]:
            if not qa.get("answers"):
                continue
            ans = qa["answers"][0]
            start = ans["answer_start"]
            hit = next((i for i, (a, b) in enumerate(spans) if a <= start < b), None)
            if hit is None or not qa["question"].strip():
                continue
            art.questions.append(Question(qa["id"], qa["question"].strip(), ans["text"], first + hit, p))
    return art


def parts(articles: list[Article]) -> dict[str, list[Article]]:
    return {name: [a for a in articles if a.part == name] for name in PARTS}


def translate_questions(articles: list[Article], translator) -> int:
    """Each question's English version (Apertium), in place; returns how many were made."""
    made = 0
    for art in articles:
        for q in art.questions:
            t = translator.translate(q.text, "fr", "en")
            if t is not None and t.text.strip():
                q.english = t.text.strip()
                made += 1
    return made
