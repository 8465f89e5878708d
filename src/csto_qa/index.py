"""Step 4, index: documents, chunks and sentences with their vectors (FAISS) and BM25, on disk.

Layout of the index folder:
    CURRENT              name of the live generation; replaced atomically at the end of a build
    gen-<id>/            one complete index: manifest.json (with a checksum of every other file),
                         documents.json, spans.npz, chunks.faiss (chunk vectors),
                         contexts.faiss (each sentence with the one before it), sentences.npy
                         (each sentence alone, for scoring evidence), hubness.npy (see _hubness),
                         bm25/ (over chunks),
                         lexicon.json + lexicon.faiss (the corpus's words, embedded one by one),
                         background.npy (their mean direction: what a question about nothing in
                         particular looks like to this corpus)
    cache/<key>/<sha>.npz  per-file vectors, so a rebuild embeds only added or changed files
    cache/<key>/lexicon.npz  word vectors, so a rebuild embeds only new words
    .lock                held while building: one build at a time

A build writes a new generation aside and only then points CURRENT at it, so a crash at any
moment leaves the previous index in use. Opening checks format, embedder, corpus and checksums;
anything off raises IndexProblem with a one-line reason, and the caller rebuilds.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import bm25s
import faiss
import numpy as np
from tqdm import tqdm

from . import analyze
from .embed import Embedder
from .load import LoadError, corpus_files, file_digest, load_file
from .split import SplitSettings, chunk_spans, sentence_spans
from .types import Chunk, Document, OffsetMap, Sentence

FORMAT_VERSION = 5  # of the index folder; a change forces a rebuild
VECTORS_VERSION = 1  # of what is embedded for a file; a change forces re-embedding
EMBED_BATCH = 32


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
    sentence_vectors: np.ndarray
    hubness: np.ndarray  # per sentence: (alone, in context), see _hubness
    bm25: bm25s.BM25
    lexicon: list[str]  # the corpus's content words, for bridging a question's words to them
    lexicon_vectors: faiss.Index
    background: np.ndarray
    lang: str
    chunk_sentences: list[range] = field(default_factory=list)  # sentences overlapping each chunk
    sentence_chunk: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # first chunk holding each

    def chunk_text(self, i: int) -> str:
        c = self.chunks[i]
        return self.documents[c.doc].text[c.start : c.end]

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


def _cache_key(embedder_identity: str, settings: SplitSettings) -> str:
    spec = json.dumps([VECTORS_VERSION, embedder_identity, settings.to_dict()], sort_keys=True)
    return hashlib.sha256(spec.encode()).hexdigest()[:16]


def staleness(corpus: Path, manifest: dict, embedder_identity: str | None, settings: SplitSettings | None) -> str | None:
    """Why the index no longer matches the corpus and settings, or None when it does."""
    if manifest.get("format_version") != FORMAT_VERSION:
        return f"index format {manifest.get('format_version')} is not {FORMAT_VERSION}"
    if embedder_identity and manifest["embedder"]["identity"] != embedder_identity:
        return f"index was built by {manifest['embedder']['identity']}, not {embedder_identity}"
    if settings and manifest["split"] != settings.to_dict():
        return "splitter settings changed"
    known = {**manifest["files"], **manifest["problems"]}
    paths = {p.relative_to(corpus).as_posix(): p for p in _scan(corpus)}
    if set(paths) != set(known):
        added, removed = sorted(set(paths) - set(known)), sorted(set(known) - set(paths))
        return "corpus changed: " + ", ".join([f"+{a}" for a in added][:3] + [f"-{r}" for r in removed][:3])
    for name, path in paths.items():
        try:
            if _file_state(path, known[name])["sha256"] != known[name]["sha256"]:
                return f"corpus changed: {name} was modified"
        except OSError:
            if name not in manifest["problems"]:
                return f"corpus changed: {name} is unreadable"
    return None


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


def _sha_file(path: Path) -> str:
    return file_digest(path)


def _embed(embedder: Embedder, texts: list[str], bar: tqdm) -> np.ndarray:
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    for i in range(0, len(texts), EMBED_BATCH):
        batch = texts[i : i + EMBED_BATCH]
        out[i : i + len(batch)] = embedder.embed_passages(batch)
        bar.update(len(batch))
    return out


def _document_record(doc: Document) -> dict:
    return {
        "source": doc.source, "title": doc.title, "text": doc.text, "lang": doc.lang, "sha256": doc.sha256,
        "offsets_at": list(doc.offsets.at), "offsets_delta": list(doc.offsets.delta),
        "line_starts": list(doc.line_starts),
    }


def _document(rec: dict) -> Document:
    return Document(
        source=rec["source"], title=rec["title"], text=rec["text"], lang=rec["lang"], sha256=rec["sha256"],
        offsets=OffsetMap(tuple(rec["offsets_at"]), tuple(rec["offsets_delta"])),
        line_starts=tuple(rec["line_starts"]),
    )


def _contexts(doc: Document, spans: np.ndarray) -> list[str]:
    """Each sentence preceded by the previous one of its paragraph: an answer sentence often names
    its subject only in the sentence before ("La prochaine réunion de ce type aura lieu...")."""
    out = []
    for i, (s, e) in enumerate(spans):
        prev = spans[i - 1] if i else None
        same_paragraph = prev is not None and "\n" not in doc.text[prev[1] : s]
        out.append(doc.text[prev[0] : e] if same_paragraph else doc.text[s:e])
    return out


def build(corpus: Path, index_dir: Path, embedder: Embedder, settings: SplitSettings = SplitSettings(),
          progress: bool = True, log=print) -> BuildReport:
    t0 = time.perf_counter()
    corpus, index_dir = Path(corpus), Path(index_dir)
    with _locked(index_dir):
        previous = {}
        try:
            previous = read_manifest(index_dir)
        except IndexProblem:
            pass
        prev_files = {**previous.get("files", {}), **previous.get("problems", {})}
        key = _cache_key(embedder.identity, settings)
        cache = index_dir / "cache" / key
        cache.mkdir(parents=True, exist_ok=True)

        docs: list[Document] = []
        states: dict[str, dict] = {}
        problems: dict[str, dict] = {}
        for path in _scan(corpus):
            name = path.relative_to(corpus).as_posix()
            try:
                state = _file_state(path, prev_files.get(name))
            except OSError as exc:
                problems[name] = {"reason": f"unreadable ({exc.strerror or type(exc).__name__})", "sha256": ""}
                log(f"skipped {name}: {problems[name]['reason']}")
                continue
            try:
                docs.append(load_file(path, corpus))
                states[name] = state
            except LoadError as exc:
                problems[name] = {"reason": str(exc), **state}
                log(f"skipped {name}: {exc}")

        per_file: list[dict] = []
        todo = []
        for doc in docs:
            cached = cache / f"{_text_key(doc)}.npz"
            if cached.exists():
                try:
                    with np.load(cached) as z:
                        per_file.append({k: z[k] for k in z.files})
                    continue
                except (OSError, ValueError, KeyError):
                    pass  # a damaged cache entry is simply embedded again
            per_file.append({})
            todo.append(len(per_file) - 1)

        n_texts = 0
        plans = {}
        for i in todo:
            doc = docs[i]
            cspans = np.array(chunk_spans(doc.text, settings), dtype=np.int64).reshape(-1, 2)
            sspans = np.array(sentence_spans(doc.text), dtype=np.int64).reshape(-1, 2)
            plans[i] = (cspans, sspans)
            n_texts += len(cspans) + 2 * len(sspans)
        words = sorted(set().union(*(analyze.lexicon(d.text) for d in docs)))
        known_words = _read_lexicon(cache)
        new_words = [w for w in words if w not in known_words]
        n_texts += len(new_words)
        if todo:
            log(f"embedding {len(todo)} file(s) with {embedder.identity}")
        with tqdm(total=n_texts, unit="text", desc="embedding", disable=not progress or not n_texts) as bar:
            for i in todo:
                doc = docs[i]
                cspans, sspans = plans[i]
                entry = {
                    "chunk_spans": cspans,
                    "chunk_vectors": _embed(embedder, [doc.text[s:e] for s, e in cspans], bar),
                    "sentence_spans": sspans,
                    "sentence_vectors": _embed(embedder, [doc.text[s:e] for s, e in sspans], bar),
                    "context_vectors": _embed(embedder, _contexts(doc, sspans), bar),
                }
                buf = _npz_bytes(entry)
                _write_atomic(cache / f"{_text_key(doc)}.npz", buf)  # kept at once: an interrupted build loses no work
                per_file[i] = entry
            if new_words:
                # words are embedded as queries: the bridge compares them with a question's words
                vectors = np.zeros((len(new_words), embedder.dim), dtype=np.float32)
                for j in range(0, len(new_words), EMBED_BATCH):
                    vectors[j : j + EMBED_BATCH] = embedder.embed_queries(new_words[j : j + EMBED_BATCH])
                    bar.update(len(new_words[j : j + EMBED_BATCH]))
                known_words.update(zip(new_words, vectors))
        lexicon = {w: known_words[w] for w in words}
        _write_atomic(cache / "lexicon.npz", _npz_bytes({"words": np.array(words, dtype=str),
                                                          "vectors": _stack(list(lexicon.values()), embedder.dim)}))

        gen = _write_generation(index_dir, docs, per_file, lexicon, states, problems, embedder, settings)
        _write_atomic(index_dir / "CURRENT", gen.encode())
        _collect_garbage(index_dir, gen, key, {_text_key(d) for d in docs})
        return BuildReport(
            files=len(docs), embedded_files=[docs[i].source for i in todo], reused_files=len(docs) - len(todo),
            chunks=sum(len(p["chunk_spans"]) for p in per_file),
            sentences=sum(len(p["sentence_spans"]) for p in per_file),
            problems={k: v["reason"] for k, v in problems.items()}, seconds=time.perf_counter() - t0,
            generation=gen,
        )


def _text_key(doc: Document) -> str:
    """Cache entries are keyed by the loaded text, not the file: a loader change re-embeds."""
    return hashlib.sha256(doc.text.encode("utf-8")).hexdigest()


def _read_lexicon(cache: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(cache / "lexicon.npz") as z:
            return dict(zip(z["words"].tolist(), z["vectors"]))
    except (OSError, ValueError, KeyError):
        return {}


def _stack(vectors: list[np.ndarray], dim: int) -> np.ndarray:
    return np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, dim), np.float32)


def _npz_bytes(arrays: dict) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _corpus_lang(docs: list[Document]) -> str:
    weight: dict[str, int] = {}
    for d in docs:
        weight[d.lang] = weight.get(d.lang, 0) + len(d.text)
    return max(weight, key=weight.get) if weight else "fr"


def _write_generation(index_dir, docs, per_file, lexicon, states, problems, embedder, settings) -> str:
    gen = f"gen-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.perf_counter_ns() % 10**6:06d}"
    tmp = index_dir / f".{gen}.tmp"
    tmp.mkdir(parents=True)
    chunks = [(d, int(s), int(e)) for d, p in enumerate(per_file) for s, e in p["chunk_spans"]]
    sentences = [(d, int(s), int(e)) for d, p in enumerate(per_file) for s, e in p["sentence_spans"]]
    dim = embedder.dim

    def stacked(key):
        return np.concatenate([p[key] for p in per_file]) if per_file else np.zeros((0, dim), np.float32)

    (tmp / "documents.json").write_text(json.dumps([_document_record(d) for d in docs], ensure_ascii=False))
    np.savez(tmp / "spans.npz", chunks=np.array(chunks, dtype=np.int64).reshape(-1, 3),
             sentences=np.array(sentences, dtype=np.int64).reshape(-1, 3))
    for name, key in (("chunks.faiss", "chunk_vectors"), ("contexts.faiss", "context_vectors")):
        flat = faiss.IndexFlatIP(dim)
        flat.add(np.ascontiguousarray(stacked(key), dtype=np.float32))
        faiss.write_index(flat, str(tmp / name))
    np.save(tmp / "sentences.npy", stacked("sentence_vectors").astype(np.float16))  # ranks unchanged, half the RAM
    np.save(tmp / "hubness.npy", np.stack([_hubness(stacked("sentence_vectors")),
                                           _hubness(stacked("context_vectors"))], axis=1).reshape(-1, 2))
    (tmp / "lexicon.json").write_text(json.dumps(list(lexicon), ensure_ascii=False))
    flat = faiss.IndexFlatIP(dim)
    words = _stack(list(lexicon.values()), dim)
    flat.add(words)
    faiss.write_index(flat, str(tmp / "lexicon.faiss"))
    background = words.mean(axis=0) if len(words) else np.zeros(dim, np.float32)
    np.save(tmp / "background.npy", (background / max(float(np.linalg.norm(background)), 1e-12)).astype(np.float32))

    lang = _corpus_lang(docs)
    corpus_tokens = [analyze.stems(docs[d].text[s:e], lang) or [""] for d, s, e in chunks]
    retriever = bm25s.BM25()
    if corpus_tokens:
        retriever.index(corpus_tokens, show_progress=False)
    retriever.save(str(tmp / "bm25"), show_progress=False)

    artefacts = {}
    for path in sorted(tmp.rglob("*")):
        if path.is_file():
            artefacts[path.relative_to(tmp).as_posix()] = _sha_file(path)
    manifest = {
        "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "embedder": {"identity": embedder.identity, "dim": dim},
        "split": settings.to_dict(),
        "lang": lang,
        "files": states,
        "problems": problems,
        "counts": {"documents": len(docs), "chunks": len(chunks), "sentences": len(sentences)},
        "artefacts": artefacts,
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1))
    for path in tmp.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    os.replace(tmp, index_dir / gen)
    return gen


HUB_NEIGHBOURS = 10


def _hubness(vectors: np.ndarray) -> np.ndarray:
    """Mean similarity of each vector to its nearest others. Sentences that sit close to everything
    (a definition of the corpus's main subject, say) come close to every question too; subtracting
    this term is CSLS (Conneau et al., 2018), the usual cure for such hubs."""
    n = len(vectors)
    if n < 2:
        return np.zeros(n, dtype=np.float32)
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(np.ascontiguousarray(vectors, dtype=np.float32))
    k = min(HUB_NEIGHBOURS + 1, n)
    sims, _ = flat.search(np.ascontiguousarray(vectors, dtype=np.float32), k)
    return sims[:, 1:].mean(axis=1).astype(np.float32)  # column 0 is the vector itself


def _collect_garbage(index_dir: Path, live: str, key: str, shas: set[str]) -> None:
    for entry in index_dir.iterdir():
        stale_gen = entry.name.startswith(("gen-", ".gen-")) and entry.name != live
        if stale_gen and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
    for folder in (index_dir / "cache").iterdir():
        if folder.name != key:
            shutil.rmtree(folder, ignore_errors=True)
            continue
        for f in folder.iterdir():
            if f.stem not in shas and f.name != "lexicon.npz":
                f.unlink(missing_ok=True)


# --- opening --------------------------------------------------------------------------------


def _live_generation(index_dir: Path) -> Path:
    try:
        gen = (index_dir / "CURRENT").read_text().strip()
    except (OSError, UnicodeDecodeError):
        raise IndexProblem("no index yet") from None
    if not gen.startswith("gen-") or "/" in gen or not (index_dir / gen).is_dir():
        raise IndexProblem("index pointer is damaged")
    return index_dir / gen


def read_manifest(index_dir: Path) -> dict:
    path = _live_generation(Path(index_dir)) / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
        manifest["embedder"]["identity"], manifest["files"], manifest["problems"], manifest["artefacts"]
    except (OSError, ValueError, KeyError, TypeError):
        raise IndexProblem("index manifest is missing or damaged") from None
    return manifest


def open_index(index_dir: Path, corpus: Path | None = None, embedder_identity: str | None = None,
               settings: SplitSettings | None = None) -> Index:
    """Open the live index after checking it against the corpus, embedder and its own checksums."""
    index_dir = Path(index_dir)
    manifest = read_manifest(index_dir)
    if corpus is not None:
        reason = staleness(Path(corpus), manifest, embedder_identity, settings)
        if reason:
            raise IndexProblem(f"index is stale ({reason})")
    gen = _live_generation(index_dir)
    for name, digest in manifest["artefacts"].items():
        path = gen / name
        if not path.is_file() or _sha_file(path) != digest:
            raise IndexProblem(f"index file {name} is missing or damaged")
    try:
        documents = [_document(r) for r in json.loads((gen / "documents.json").read_text())]
        with np.load(gen / "spans.npz") as z:
            chunk_rows, sentence_rows = z["chunks"], z["sentences"]
        chunk_vectors = faiss.read_index(str(gen / "chunks.faiss"))
        context_vectors = faiss.read_index(str(gen / "contexts.faiss"))
        lexicon = json.loads((gen / "lexicon.json").read_text())
        lexicon_vectors = faiss.read_index(str(gen / "lexicon.faiss"))
        background = np.load(gen / "background.npy")
        sentence_vectors = np.load(gen / "sentences.npy").astype(np.float32)
        hubness = np.load(gen / "hubness.npy")
        retriever = bm25s.BM25.load(str(gen / "bm25"), show_progress=False) if len(chunk_rows) else bm25s.BM25()
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise IndexProblem(f"index cannot be read ({type(exc).__name__})") from None
    chunks = [Chunk(int(d), int(s), int(e)) for d, s, e in chunk_rows]
    sentences = [Sentence(int(d), int(s), int(e)) for d, s, e in sentence_rows]
    index = Index(index_dir, manifest, documents, chunks, sentences, chunk_vectors, context_vectors, sentence_vectors,
                  hubness, retriever, lexicon, lexicon_vectors, background, manifest.get("lang", "fr"))
    index.chunk_sentences = _overlaps(chunks, sentences)
    index.sentence_chunk = np.full(len(sentences), -1, dtype=np.int64)
    for c in reversed(range(len(chunks))):
        index.sentence_chunk[list(index.chunk_sentences[c])] = c
    return index


def _overlaps(chunks: list[Chunk], sentences: list[Sentence]) -> list[range]:
    """For each chunk, the run of sentence ids that overlap it (both lists are in document order)."""
    keys = [(s.doc, s.end) for s in sentences]
    starts = [(s.doc, s.start) for s in sentences]
    import bisect

    out = []
    for c in chunks:
        lo = bisect.bisect_right(keys, (c.doc, c.start))
        hi = bisect.bisect_left(starts, (c.doc, c.end))
        out.append(range(lo, hi))
    return out
