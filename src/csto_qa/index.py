"""Step 4, index: documents, chunks and sentences with their vectors (FAISS) and BM25, on disk.

Layout of the index folder:
    CURRENT              name of the live generation; replaced atomically at the end of a build
    gen-<id>/            one complete index: manifest.json (with a checksum of every other file),
                         documents.json, spans.npz, chunks.faiss (chunk vectors),
                         contexts.faiss (each sentence with the one before it), sentences.npy
                         (each sentence alone, float16, for scoring evidence; memory-mapped, as
                         only the candidates' rows are read), translated.npy (with translation on:
                         each sentence after the one before it, machine-translated into the other
                         language, float16: what a question in that language reads it by),
                         bm25/ (over chunks),
                         background.npy (the mean direction of the corpus's words, embedded one
                         by one: what a question about nothing in particular looks like to this
                         corpus), lowercase.json (the words the corpus
                         writes in lower case: see analyze.lowercase)
    cache/<key>/<sha>.npz  per-file vectors, so a rebuild embeds only added or changed files
    cache/<key>/lexicon.npz  word vectors, so a rebuild embeds only new words
    .lock                held while building: one build at a time

Vector search is exact (a flat FAISS index) below hnsw_min() vectors and approximate above (HNSW over
float16 vectors): at a million vectors a flat search costs ~300 ms a question, HNSW ~1 ms.

A build with nothing to do (same files, embedder, settings and engine code) keeps the live generation.
A build writes a new generation aside (in .gen-<id>.tmp, renamed when complete) and only then points
CURRENT at it, so a crash at any moment leaves the previous index in use; the next build removes
what a crashed one left behind. Opening checks format, the manifest's own checksum, embedder, corpus
and every artefact's checksum; anything off raises IndexProblem with a one-line reason, and the caller
rebuilds. A reader holds its whole index in memory: a build swapping generations under it does not
disturb it (the sentence vectors it maps stay readable after the old generation is removed), and a
reader that opens during a swap retries on the new generation.

Files that cannot be indexed (see load.check_entry and load.load_file) are recorded in the manifest
under "problems" with their reason; they do not make the index stale until they change.
"""

from __future__ import annotations

import bisect
import fcntl
import functools
import hashlib
import io
import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import bm25s
import faiss
import numpy as np
from tqdm import tqdm

from . import analyze, translate
from .embed import Embedder
from .lang import LANGS, ranked
from .load import LoadError, check_entry, corpus_files, file_digest, load_file, max_text_chars
from .split import SplitSettings, chunk_spans, heading_spans, list_item, list_lead, section_heading, sentence_spans
from .types import Chunk, Document, OffsetMap, Sentence

FORMAT_VERSION = 13  # of the index folder; a change forces a rebuild (13: no word lexicon files)
VECTORS_VERSION = 5  # of what is embedded for a file; a change forces re-embedding (5: translated sentences)
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 64, 128  # recall@10 0.95 at 1M vectors (bench/scale.py)
# the modules whose code decides what an index holds: a change to them makes the index stale
ENGINE_MODULES = ("load.py", "split.py", "analyze.py", "index.py", *(f"formats/{name}" for name in (
    "base.py", "text.py", "html.py", "pdf.py", "docx.py", "odt.py")))


BUILD_NICENESS = 10


def lower_priority() -> None:
    """A build is batch work: at a lower priority, it leaves the CPU to a server answering questions on
    the same machine and runs at full speed when nothing else does. Called before the embedder starts
    its threads, which inherit it."""
    os.nice(BUILD_NICENESS)


def hnsw_min() -> int:
    """Vectors from which an index is HNSW rather than flat ($CSTO_QA_HNSW_MIN, default 50,000)."""
    return int(os.environ.get("CSTO_QA_HNSW_MIN", 50_000))


@functools.cache
def engine_code() -> str:
    """A digest of the engine's indexing code: a build after an upgrade is a build, not a no-op. The
    loaded code does not change while a process runs: read once (a watching server asks every 2 s)."""
    here = Path(__file__).parent
    return hashlib.sha256(b"".join((here / name).read_bytes() for name in ENGINE_MODULES)).hexdigest()[:16]


class IndexProblem(Exception):
    """The index on disk cannot be used as it is (missing, stale, damaged, other embedder...)."""


@dataclass
class BuildReport:
    files: int
    embedded_files: list[str]
    reused_files: int
    chunks: int
    sentences: int
    problems: dict[str, str]
    seconds: float
    generation: str


@dataclass
class Index:
    path: Path
    manifest: dict
    documents: list[Document]
    chunks: list[Chunk]
    sentences: list[Sentence]
    chunk_vectors: faiss.Index
    context_vectors: faiss.Index
    sentence_vectors: np.ndarray  # float16, memory-mapped: read a few rows at a time
    # float16, memory-mapped: each sentence in context translated into the other language (None:
    # built without translation)
    translated_vectors: np.ndarray | None
    bm25: bm25s.BM25
    background: np.ndarray
    lang: str
    chunk_sentences: list[range] = field(default_factory=list)  # sentences overlapping each chunk
    lowercase: frozenset[str] = frozenset()  # words the corpus writes in lower case (analyze.lowercase)

    def sentence_text(self, i: int) -> str:
        s = self.sentences[i]
        return self.documents[s.doc].text[s.start : s.end]


# --- corpus state ---------------------------------------------------------------------------


def _file_state(path: Path, previous: dict | None) -> dict:
    st = path.stat()
    if previous and previous.get("size") == st.st_size and previous.get("mtime_ns") == st.st_mtime_ns:
        return {"sha256": previous["sha256"], "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    return {"sha256": file_digest(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _scan(corpus: Path) -> list[Path]:
    if not corpus.is_dir():
        raise IndexProblem(f"corpus folder not found: {corpus}")
    return list(corpus_files(corpus))


def _cache_key(embedder_identity: str, settings: SplitSettings, translation: str | None) -> str:
    spec = json.dumps([VECTORS_VERSION, embedder_identity, settings.to_dict(), translation], sort_keys=True)
    return hashlib.sha256(spec.encode()).hexdigest()[:16]


ANY = "any"  # staleness(): the index's translation is not checked


def staleness(corpus: Path, manifest: dict, embedder_identity: str | None, settings: SplitSettings | None,
              translated: str | None = ANY) -> str | None:
    """Why the index no longer matches the corpus and settings, or None when it does. ``translated``:
    the translator identity (Translator.identity) the index should have been built with, unless ANY."""
    if manifest.get("format_version") != FORMAT_VERSION:
        return f"index format {manifest.get('format_version')} is not {FORMAT_VERSION}"
    if embedder_identity and manifest["embedder"]["identity"] != embedder_identity:
        return f"index was built by {manifest['embedder']['identity']}, not {embedder_identity}"
    if translated != ANY and manifest.get("translation") != translated:
        return f"translation is now {translated or 'off'} (the index was built with {manifest.get('translation') or 'none'})"
    if settings and manifest["split"] != settings.to_dict():
        return "splitter settings changed"
    if manifest.get("limits") != _limits():
        return "file size limits changed"
    if manifest.get("engine") != engine_code():
        return "the engine's indexing code changed"
    known = {**manifest["files"], **manifest["problems"]}
    paths = {p.relative_to(corpus).as_posix(): p for p in _scan(corpus)}
    if set(paths) != set(known):
        added, removed = sorted(set(paths) - set(known)), sorted(set(known) - set(paths))
        return "corpus changed: " + ", ".join([f"+{a}" for a in added][:3] + [f"-{r}" for r in removed][:3])
    for name, path in paths.items():
        prev, problem = known[name], name in manifest["problems"]
        try:
            check_entry(path, corpus)
        except LoadError as exc:
            if problem and prev.get("reason") == str(exc):
                continue
            return f"corpus changed: {name}: {exc}"
        try:
            if _file_state(path, prev)["sha256"] != prev.get("sha256"):
                return f"corpus changed: {name} was modified"
        except OSError:
            if not problem:
                return f"corpus changed: {name} is unreadable"
    return None


def _limits() -> dict:
    return {"max_text_chars": max_text_chars()}


# --- building -------------------------------------------------------------------------------


@contextmanager
def _locked(index_dir: Path):
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second build waits for the first rather than racing it
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Makes a rename in ``folder`` durable (a power cut must not undo the swap of CURRENT)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


GROUP_TEXTS = 4000  # texts embedded in one call (several files): sorted by length, they batch well


def _groups(todo: list[int], plans: dict) -> list[list[int]]:
    """The files to embed, in groups of about GROUP_TEXTS texts (a file is never split)."""
    groups, size = [], GROUP_TEXTS
    for i in todo:
        n = len(plans[i][0]) + 2 * len(plans[i][1])
        if size + n > GROUP_TEXTS:
            groups.append([])
            size = 0
        groups[-1].append(i)
        size += n
    return groups


def _texts(doc: Document, cspans: np.ndarray, sspans: np.ndarray, translator: translate.Translator | None = None,
           done: Callable[[int, int], None] = lambda *_: None) -> tuple[list[str], ...]:
    """What is embedded for a file: its chunks (as _native reads them), its sentences, each sentence in
    its context (_contexts), and given an available translator, each sentence translated into the other
    language after the translation of the sentence before it (``done`` is told of each translation)."""
    sentences = [doc.text[s:e] for s, e in sspans]
    texts = ([_native(doc, s, e) for s, e in cspans], sentences, _contexts(doc, sspans))
    other = next((lang for lang in LANGS if lang != doc.lang), doc.lang)
    if translator is None or not translator.available or other == doc.lang:
        return texts
    translated = []
    for text in sentences:
        t = translator.translate(text, doc.lang, other)
        translated.append(t.text if t else text)  # one that fails to translate is read as written
        done(1, 0)
    # the sentence before, whatever the paragraph: against the translation of _contexts' text (a
    # heading, the paragraph's sentence before, a list's opening line), 3 more dev answers right
    # (docs/ablation.md)
    return (*texts, [f"{before} {text}".lstrip() for before, text in zip(["", *translated[:-1]], translated)])


class _Progress:
    """The build's progress bar: texts, and tokens per second beside them; or, given a function, that
    function called with (texts done, texts in all) (the web page's bar)."""

    def __init__(self, total: int, enabled: bool | Callable[[int, int], None]):
        self.bar = tqdm(total=total, unit="text", desc="indexing", disable=enabled is not True or not total)
        self.report = enabled if callable(enabled) else None
        self.tokens = 0

    def update(self, texts: int, tokens: int) -> None:
        if self.report:
            self.report(self.bar.n + texts, self.bar.total)
        self.tokens += tokens
        elapsed = self.bar.format_dict["elapsed"]
        self.bar.set_postfix_str(f"{self.tokens / elapsed:,.0f} tokens/s" if elapsed else "", refresh=False)
        self.bar.update(texts)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.close()


def _document_record(doc: Document) -> dict:
    return {
        "source": doc.source, "title": doc.title, "text": doc.text, "lang": doc.lang, "sha256": doc.sha256,
        "starts": [doc.starts.at, doc.starts.delta], "ends": [doc.ends.at, doc.ends.delta],
        "line_starts": list(doc.line_starts), "stored": doc.stored, "format": doc.format, "units": list(doc.units),
    }


def _document(rec: dict) -> Document:
    return Document(
        source=rec["source"], title=rec["title"], text=rec["text"], lang=rec["lang"], sha256=rec["sha256"],
        starts=OffsetMap(*map(tuple, rec["starts"])), ends=OffsetMap(*map(tuple, rec["ends"])),
        line_starts=tuple(rec["line_starts"]), stored=rec["stored"], format=rec["format"], units=tuple(rec["units"]),
    )


FOREIGN_MARGIN = 0.3  # per character, log-probability of the other language over the document's
FOREIGN_LINE = (15, 200)  # lengths of a line checked: captions and credits; a paragraph is content


def _native(doc: Document, start: int, end: int) -> str:
    """The chunk's text as embedded and keyword-indexed: without its short lines in the other language
    (an English picture caption in a French article), which would pull every question in that
    language to this chunk whatever it asks. The chunk's span, and so its quotes, are unchanged."""
    lines = doc.text[start:end].split("\n")
    kept = [line for line in lines if not _foreign(line.strip(), doc.lang)]
    return "\n".join(kept) if len(kept) < len(lines) else doc.text[start:end]


def _foreign(line: str, doc_lang: str) -> bool:
    if not FOREIGN_LINE[0] <= len(line) < FOREIGN_LINE[1] or doc_lang not in LANGS:
        return False
    scores = dict(ranked(line))
    other = max((l for l in scores if l != doc_lang), key=scores.get)
    return (scores[other] - scores[doc_lang]) / len(line) >= FOREIGN_MARGIN


def _contexts(doc: Document, spans: np.ndarray) -> list[str]:
    """Each sentence preceded by the previous one of its paragraph: an answer sentence often names
    its subject only in the sentence before ("La prochaine réunion de ce type aura lieu..."). A
    paragraph's first sentence is preceded by its section's heading instead, which names the subject
    of a FAQ answer or a table row ("Tarifs", "Combien ça coûte ?"); a list item, by the line that
    opens its list ("L'ACRE est réservée à certains publics :"), when there is one."""
    headings = heading_spans(doc.text)
    out = []
    for i, (s, e) in enumerate(spans):
        prev = spans[i - 1] if i else None
        same_paragraph = prev is not None and "\n" not in doc.text[prev[1] : s]
        if same_paragraph:
            out.append(doc.text[prev[0] : e])
            continue
        text = doc.text[s:e]
        lead = list_lead(doc.text, s) if list_item(doc.text, s) else ""
        heading = lead or section_heading(doc.text, headings, s)
        out.append(f"{heading}\n{text}" if heading and heading not in text else text)
    return out


def build(corpus: Path, index_dir: Path, embedder: Embedder, settings: SplitSettings = SplitSettings(),
          progress: bool | Callable[[int, int], None] = True, log=print, force: bool = False,
          translator: translate.Translator | None = None) -> BuildReport:
    """Bring the index up to date with the corpus, embedding only what the vector cache lacks; with
    nothing changed (and not ``force``), the live generation is checked and kept. ``progress``: a
    progress bar, or a function called with (texts done, texts to do). ``translator``: translates
    every sentence in context into the other language (default: translate.create(), Apertium where
    installed, stopped when the build ends); one that is not available builds without."""
    if translator is None:
        translator = translate.create()
        try:
            return build(corpus, index_dir, embedder, settings, progress, log, force, translator)
        finally:
            translator.close()  # its pipelines would otherwise outlive the build in a long-lived process
    t0 = time.perf_counter()
    corpus, index_dir = Path(corpus), Path(index_dir)
    translated = translator.identity
    with _locked(index_dir):
        previous = {}
        try:
            previous = read_manifest(index_dir)
        except IndexProblem:
            pass
        key = _cache_key(embedder.identity, settings, translated)
        live = _up_to_date(index_dir, corpus, previous, embedder, settings, translated) if previous and not force else None
        if live:
            _collect_garbage(index_dir, live, key, None)
            for name, problem in previous["problems"].items():  # every build names what it leaves out
                _skipped(log, name, problem["reason"])
            return BuildReport(
                files=previous["counts"]["documents"], embedded_files=[], reused_files=previous["counts"]["documents"],
                chunks=previous["counts"]["chunks"], sentences=previous["counts"]["sentences"],
                problems={k: v["reason"] for k, v in previous["problems"].items()},
                seconds=time.perf_counter() - t0, generation=live)
        prev_files = {**previous.get("files", {}), **previous.get("problems", {})}
        cache = index_dir / "cache" / key
        cache.mkdir(parents=True, exist_ok=True)

        docs: list[Document] = []
        states: dict[str, dict] = {}
        problems: dict[str, dict] = {}

        def refuse(name: str, reason: str, state: dict) -> None:
            problems[name] = {"reason": reason, **state}
            _skipped(log, name, reason)

        for path in _scan(corpus):
            name = path.relative_to(corpus).as_posix()
            try:
                check_entry(path, corpus)
            except LoadError as exc:  # links, pipes...: never opened, so no content hash
                refuse(name, str(exc), {"sha256": ""})
                continue
            try:
                state = _file_state(path, prev_files.get(name))
            except OSError as exc:
                refuse(name, f"unreadable ({exc.strerror or type(exc).__name__})", {"sha256": ""})
                continue
            try:
                docs.append(load_file(path, corpus))
                states[name] = state
            except LoadError as exc:
                refuse(name, str(exc), state)
            except (MemoryError, RecursionError, ValueError, TypeError, LookupError, AssertionError,
                    ArithmeticError, AttributeError) as exc:  # a loader bug on one odd file spares the others
                refuse(name, f"could not be loaded ({type(exc).__name__}: {str(exc)[:120]})", state)

        per_file: list[dict] = []
        todo = []
        for doc in docs:
            entry = _read_cache_entry(cache / f"{_text_key(doc)}.npz", embedder.dim, translated is not None)
            per_file.append(entry or {})
            if entry is None:  # missing, or damaged: simply embedded again
                todo.append(len(per_file) - 1)

        n_texts = 0
        plans = {}
        for i in list(todo):
            doc = docs[i]
            try:
                cspans = np.array(chunk_spans(doc.text, settings), dtype=np.int64).reshape(-1, 2)
                sspans = np.array(sentence_spans(doc.text), dtype=np.int64).reshape(-1, 2)
            except (RecursionError, ValueError, TypeError, LookupError, AssertionError) as exc:
                refuse(doc.source, f"could not be split ({type(exc).__name__}: {str(exc)[:120]})",
                       states.pop(doc.source))
                todo.remove(i)
                continue
            plans[i] = (cspans, sspans)
            n_texts += len(cspans) + (4 if translated else 2) * len(sspans)  # translated: translate, embed
        keep = [i for i, d in enumerate(docs) if d.source not in problems]
        if len(keep) < len(docs):  # some could not be split: drop them from the lists
            renumber = {old: new for new, old in enumerate(keep)}
            docs, per_file = [docs[i] for i in keep], [per_file[i] for i in keep]
            todo = [renumber[i] for i in todo]
            plans = {renumber[i]: plan for i, plan in plans.items()}
        if not docs:  # an index of nothing would answer nothing: say so, and keep the previous index
            reasons = "; ".join(f"{name}: {p['reason']}" for name, p in list(problems.items())[:3])
            raise IndexProblem(f"nothing to index in {corpus}: " + (
                f"none of its {len(problems)} file(s) can be indexed ({reasons})" if problems
                else "the folder has no documents"))
        words = sorted(set().union(*(analyze.lexicon(d.text) for d in docs)))
        known_words = _read_lexicon(cache, embedder.dim)
        new_words = [w for w in words if w not in known_words]
        n_texts += len(new_words)
        if todo:
            log(f"embedding {len(todo)} file(s) with {embedder.identity}")
        with _Progress(n_texts, enabled=progress) as bar:
            for group in _groups(todo, plans):
                texts = {i: _texts(docs[i], *plans[i], translator, bar.update) for i in group}
                # one call per group of files: the embedder sorts all their texts by length into batches
                vectors = embedder.embed_passages([t for i in group for kind in texts[i] for t in kind], bar.update)
                at = 0
                for i in group:
                    entry = {"chunk_spans": plans[i][0], "sentence_spans": plans[i][1]}
                    for field_name, kind in zip(VECTOR_KEYS, texts[i]):
                        entry[field_name] = vectors[at : at + len(kind)]
                        at += len(kind)
                    # kept at once: an interrupted build loses no more than the group being embedded
                    _write_atomic(cache / f"{_text_key(docs[i])}.npz", _npz_bytes(entry))
                    per_file[i] = entry
            # words are embedded as queries: their mean is what a question about nothing looks like
            if new_words:
                known_words.update(zip(new_words, embedder.embed_queries(new_words, bar.update)))
        lexicon = {w: known_words[w] for w in words}
        _write_atomic(cache / "lexicon.npz", _npz_bytes({"words": np.array(words, dtype=str),
                                                          "vectors": _stack(list(lexicon.values()), embedder.dim)}))

        gen = _write_generation(index_dir, docs, per_file, lexicon, states, problems, embedder, settings, translated)
        _write_atomic(index_dir / "CURRENT", gen.encode())
        _collect_garbage(index_dir, gen, key, {_text_key(d) for d in docs})
        return BuildReport(
            files=len(docs), embedded_files=[docs[i].source for i in todo], reused_files=len(docs) - len(todo),
            chunks=sum(len(p["chunk_spans"]) for p in per_file),
            sentences=sum(len(p["sentence_spans"]) for p in per_file),
            problems={k: v["reason"] for k, v in problems.items()}, seconds=time.perf_counter() - t0,
            generation=gen,
        )


def _skipped(log, name: str, reason: str) -> None:
    shown = os.fsencode(name).decode("utf-8", "backslashreplace")  # an undecodable name prints as \xe9
    log(f"skipped {shown}: {reason}")


def _up_to_date(index_dir: Path, corpus: Path, manifest: dict, embedder: Embedder, settings: SplitSettings,
                translated: str | None) -> str | None:
    """The live generation's name when it matches the corpus and settings and is whole, else None."""
    try:
        gen = _live_generation(index_dir)
        if staleness(corpus, manifest, embedder.identity, settings, translated) is None:
            _verify(gen, manifest)
            return gen.name
    except IndexProblem:
        pass
    return None


def _text_key(doc: Document) -> str:
    """Cache entries are keyed by the loaded text, not the file: a loader change re-embeds."""
    return hashlib.sha256(doc.text.encode("utf-8")).hexdigest()


def _read_lexicon(cache: Path, dim: int) -> dict[str, np.ndarray]:
    """The cached word vectors; a damaged file (bad zip, CRC error, wrong shapes) counts as none."""
    try:
        with np.load(cache / "lexicon.npz") as z:
            words, vectors = z["words"].tolist(), z["vectors"]
        if vectors.shape != (len(words), dim) or not np.isfinite(vectors).all():
            return {}
        return dict(zip(words, vectors))
    except Exception:  # noqa: BLE001 - zipfile.BadZipFile, EOFError, pickle refusals...: all mean "damaged"
        return {}


# a file's vectors, in the order _texts gives their texts
VECTOR_KEYS = ("chunk_vectors", "sentence_vectors", "context_vectors", "translated_vectors")


def _read_cache_entry(path: Path, dim: int, with_translation: bool) -> dict | None:
    """A file's cached spans and vectors, or None when missing or damaged in any way (a damaged entry is
    embedded again): the zip's CRC catches flipped bytes, the checks below truncated or foreign arrays."""
    if not path.exists():
        return None
    vectors = VECTOR_KEYS if with_translation else VECTOR_KEYS[:3]
    try:
        with np.load(path) as z:
            entry = {k: z[k] for k in ("chunk_spans", "sentence_spans", *vectors)}
    except Exception:  # noqa: BLE001
        return None
    n_chunks, n_sentences = len(entry["chunk_spans"]), len(entry["sentence_spans"])
    shapes_ok = (entry["chunk_spans"].shape == (n_chunks, 2) and entry["sentence_spans"].shape == (n_sentences, 2)
                 and entry["chunk_vectors"].shape == (n_chunks, dim)
                 and all(entry[k].shape == (n_sentences, dim) for k in vectors[1:]))
    if not shapes_ok or not all(np.isfinite(entry[k]).all() for k in vectors):
        return None
    return entry


def _stack(vectors: list[np.ndarray], dim: int) -> np.ndarray:
    return np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, dim), np.float32)


def _npz_bytes(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _corpus_lang(docs: list[Document]) -> str:
    weight: dict[str, int] = {}
    for d in docs:
        weight[d.lang] = weight.get(d.lang, 0) + len(d.text)
    return max(weight, key=weight.get) if weight else "fr"


def _write_generation(index_dir, docs, per_file, lexicon, states, problems, embedder, settings, translated) -> str:
    gen = f"gen-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.perf_counter_ns() % 10**6:06d}"
    tmp = index_dir / f".{gen}.tmp"
    tmp.mkdir(parents=True)
    chunks = [(d, int(s), int(e)) for d, p in enumerate(per_file) for s, e in p["chunk_spans"]]
    sentences = [(d, int(s), int(e)) for d, p in enumerate(per_file) for s, e in p["sentence_spans"]]
    dim = embedder.dim

    def stacked(key):
        return np.concatenate([p[key] for p in per_file]) if per_file else np.zeros((0, dim), np.float32)

    (tmp / "documents.json").write_text(json.dumps([_document_record(d) for d in docs], ensure_ascii=False),
                                        encoding="utf-8")
    np.savez(tmp / "spans.npz", chunks=np.array(chunks, dtype=np.int64).reshape(-1, 3),
             sentences=np.array(sentences, dtype=np.int64).reshape(-1, 3))
    contexts = _vector_index(stacked("context_vectors"))
    faiss.write_index(_vector_index(stacked("chunk_vectors")), str(tmp / "chunks.faiss"))
    faiss.write_index(contexts, str(tmp / "contexts.faiss"))
    np.save(tmp / "sentences.npy", stacked("sentence_vectors").astype(np.float16))  # ranks unchanged, half the RAM
    if translated:
        np.save(tmp / "translated.npy", stacked("translated_vectors").astype(np.float16))
    words = _stack(list(lexicon.values()), dim)
    background = words.mean(axis=0) if len(words) else np.zeros(dim, np.float32)
    np.save(tmp / "background.npy", (background / max(float(np.linalg.norm(background)), 1e-12)).astype(np.float32))
    (tmp / "lowercase.json").write_text(json.dumps(sorted(set().union(*(analyze.lowercase(d.text) for d in docs))),
                                                   ensure_ascii=False), encoding="utf-8")

    lang = _corpus_lang(docs)
    corpus_tokens = [analyze.stems(_native(docs[d], s, e), lang) or [""] for d, s, e in chunks]
    retriever = bm25s.BM25()
    if corpus_tokens:
        retriever.index(corpus_tokens, show_progress=False)
    retriever.save(str(tmp / "bm25"), show_progress=False)

    artefacts = {}
    for path in sorted(tmp.rglob("*")):
        if path.is_file():
            artefacts[path.relative_to(tmp).as_posix()] = file_digest(path)
    manifest = {
        "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "embedder": {"identity": embedder.identity, "dim": dim},
        "split": settings.to_dict(),
        "translation": translated,
        "lang": lang,
        "files": states,
        "problems": problems,
        "limits": _limits(),
        "engine": engine_code(),
        "counts": {"documents": len(docs), "chunks": len(chunks), "sentences": len(sentences)},
        "artefacts": artefacts,
    }
    manifest["checksum"] = _manifest_checksum(manifest)
    # ASCII: the names of refused files may hold undecodable bytes (surrogate escapes), which JSON escapes
    (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=True, indent=1), encoding="ascii")
    for path in tmp.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    os.replace(tmp, index_dir / gen)
    _fsync_dir(index_dir)
    return gen


def _manifest_checksum(manifest: dict) -> str:
    """Of everything in the manifest but this field: a flipped byte that leaves valid JSON is caught too."""
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=True).encode("ascii")).hexdigest()


def _vector_index(vectors: np.ndarray) -> faiss.Index:
    """Inner-product search over ``vectors``: exact below hnsw_min() of them, HNSW above (float16
    storage: half the memory, cosines off by ~1e-3, which moves no ranking that matters)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    if len(vectors) < hnsw_min():
        index = faiss.IndexFlatIP(dim)
    else:
        index = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_fp16, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
        index.train(vectors[:1])  # float16 needs no statistics: training only marks it ready
    index.add(vectors)
    return index


def _collect_garbage(index_dir: Path, live: str, key: str, shas: set[str] | None) -> None:
    """Removes superseded generations and what crashed builds left: half-written generations
    (.gen-*.tmp) and temporary files (.CURRENT.<pid>.tmp); and the cache entries of texts not in
    ``shas`` (None: the cache is left as it is). Runs under the build lock."""
    for entry in index_dir.iterdir():
        stale_gen = entry.name.startswith(("gen-", ".gen-")) and entry.name != live
        if stale_gen and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.name.startswith(".") and entry.name.endswith(".tmp") and entry.is_file():
            entry.unlink(missing_ok=True)
    for folder in (index_dir / "cache").iterdir():
        if folder.name != key:
            shutil.rmtree(folder, ignore_errors=True)
            continue
        if shas is None:
            continue
        for f in folder.iterdir():
            if f.stem not in shas and f.name != "lexicon.npz":
                f.unlink(missing_ok=True)


# --- opening --------------------------------------------------------------------------------


def _live_generation(index_dir: Path) -> Path:
    try:
        gen = (index_dir / "CURRENT").read_bytes().decode("ascii").strip()
    except FileNotFoundError:
        raise IndexProblem("no index yet") from None
    except (OSError, UnicodeDecodeError):
        raise IndexProblem("index pointer is damaged") from None
    if not gen.startswith("gen-") or "/" in gen or "\\" in gen or not (index_dir / gen).is_dir():
        raise IndexProblem("index pointer is damaged")
    return index_dir / gen


def read_manifest(index_dir: Path) -> dict:
    return _read_manifest(_live_generation(Path(index_dir)))


def _read_manifest(gen: Path) -> dict:
    try:
        manifest = json.loads((gen / "manifest.json").read_text(encoding="utf-8"))
        version = manifest.get("format_version")
    except (OSError, ValueError, AttributeError):
        raise IndexProblem("index manifest is missing or damaged") from None
    if version != FORMAT_VERSION:  # said first: an old index is not a damaged one
        raise IndexProblem(f"index format {version} is not {FORMAT_VERSION}")
    try:
        if manifest["checksum"] != _manifest_checksum(manifest):
            raise ValueError
        manifest["embedder"]["identity"], manifest["split"], manifest["artefacts"].items()
        manifest["files"].items(), manifest["problems"].items()
    except (ValueError, KeyError, TypeError, AttributeError):
        raise IndexProblem("index manifest is missing or damaged") from None
    return manifest


def open_index(index_dir: Path, corpus: Path | None = None, embedder_identity: str | None = None,
               settings: SplitSettings | None = None, translated: str | None = ANY) -> Index:
    """Open the live index after checking it against the corpus, embedder, translation (unless ANY)
    and its own checksums. When a build swaps generations while this reads (and removes the one being
    read), it reads again."""
    index_dir = Path(index_dir)
    for attempt in range(3):
        gen = _live_generation(index_dir)
        try:
            return _open_generation(index_dir, gen, corpus, embedder_identity, settings, translated)
        except IndexProblem:
            try:
                swapped = _live_generation(index_dir) != gen
            except IndexProblem:
                swapped = False
            if not swapped or attempt == 2:
                raise
    raise AssertionError("unreachable")


def _verify(gen: Path, manifest: dict) -> None:
    for name, digest in manifest["artefacts"].items():
        path = gen / name
        if not path.is_file() or file_digest(path) != digest:
            raise IndexProblem(f"index file {name} is missing or damaged")


def _open_generation(index_dir: Path, gen: Path, corpus: Path | None, embedder_identity: str | None,
                     settings: SplitSettings | None, translated: str | None) -> Index:
    manifest = _read_manifest(gen)
    if corpus is not None:
        reason = staleness(Path(corpus), manifest, embedder_identity, settings, translated)
        if reason:
            raise IndexProblem(f"index is stale ({reason})")
    _verify(gen, manifest)
    try:
        documents = [_document(r) for r in json.loads((gen / "documents.json").read_text(encoding="utf-8"))]
        with np.load(gen / "spans.npz") as z:
            chunk_rows, sentence_rows = z["chunks"], z["sentences"]
        chunk_vectors = faiss.read_index(str(gen / "chunks.faiss"))
        context_vectors = faiss.read_index(str(gen / "contexts.faiss"))
        background = np.load(gen / "background.npy")
        lowercase = frozenset(json.loads((gen / "lowercase.json").read_text(encoding="utf-8")))
        sentence_vectors = np.load(gen / "sentences.npy", mmap_mode="r")  # float16; rows widened when read
        translated_vectors = np.load(gen / "translated.npy", mmap_mode="r") if manifest.get("translation") else None
        retriever = bm25s.BM25.load(str(gen / "bm25"), show_progress=False) if len(chunk_rows) else bm25s.BM25()
    except Exception as exc:  # noqa: BLE001 - checksums passed, yet a library refuses a file: unusable all the same
        raise IndexProblem(f"index cannot be read ({type(exc).__name__})") from None
    chunks = [Chunk(int(d), int(s), int(e)) for d, s, e in chunk_rows]
    sentences = [Sentence(int(d), int(s), int(e)) for d, s, e in sentence_rows]
    index = Index(index_dir, manifest, documents, chunks, sentences, chunk_vectors, context_vectors, sentence_vectors,
                  translated_vectors, retriever, background, manifest.get("lang", "fr"),
                  lowercase=lowercase)
    index.chunk_sentences = _overlaps(chunks, sentences)
    return index


def _overlaps(chunks: list[Chunk], sentences: list[Sentence]) -> list[range]:
    """For each chunk, the run of sentence ids that overlap it (both lists are in document order)."""
    keys = [(s.doc, s.end) for s in sentences]
    starts = [(s.doc, s.start) for s in sentences]
    out = []
    for c in chunks:
        lo = bisect.bisect_right(keys, (c.doc, c.start))
        hi = bisect.bisect_left(starts, (c.doc, c.end))
        out.append(range(lo, hi))
    return out
