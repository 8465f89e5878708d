"""The served corpus as the server's state: what it holds, files added and removed from the browser, and
the index rebuilt in the background when it changes.

- An upload enters the corpus folder under a safe name (the client's path is never trusted: only its
  last component, in Unicode NFC, with characters outside letters, digits, spaces and ``._-()``
  replaced, no leading dot; an existing name gets " (2)", " (3)"...), after a check of what it is:
  its size (MAX_FILE_BYTES), and the whole loader run on it in a private folder, so a file is
  admitted only when it would be indexed (type by content, not extension: "%PDF", a Word or
  OpenDocument ZIP with its parts, text in a known encoding; archives guarded against decompression
  bombs). It is written aside (a hidden file) and renamed into place.
- A removal names a file the corpus lists; nothing else can be removed.
- Any change starts a rebuild in a child process (spawned, at a lower priority: questions keep their
  CPU), which embeds only what changed; questions are answered from the previous generation until the
  new one is opened and swapped in. ``watch`` polls the folder for changes made by other means.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import re
import shutil
import tempfile
import threading
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from .formats import MAX_FILE_BYTES, READERS, SUFFIXES
from .index import lower_priority, staleness
from .load import LoadError, corpus_files, load_file
from .qa import QA

WATCH_SECONDS = 2.0


class EditError(ValueError):
    """An upload or a removal refused. The message says why in English (the log, the API); ``code``
    and ``params`` say it to the page, which words it in its own language."""

    def __init__(self, message: str, code: str, **params):
        super().__init__(message)
        self.code, self.params = code, params


def safe_name(client_name: str, existing: set[str]) -> str:
    """A file name for an upload: the last component of what the client sent, made harmless, and new."""
    name = unicodedata.normalize("NFC", re.split(r"[\\/]", str(client_name))[-1])
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")  # controls, bidi overrides
    name = re.sub(r"[^\w .()-]", "_", name).strip(" .")
    stem, suffix = os.path.splitext(name)
    if suffix.lower() not in SUFFIXES:
        accepted = ", ".join(sorted(SUFFIXES))
        raise EditError(f"{client_name!r}: unsupported file type '{suffix or '(none)'}' (accepted: {accepted})",
                        "type" if suffix else "no_type", name=client_name, suffix=suffix, accepted=accepted)
    stem = stem[:100] or "document"
    candidate, n = f"{stem}{suffix.lower()}", 1
    while candidate in existing:
        n += 1
        candidate = f"{stem} ({n}){suffix.lower()}"
    return candidate


@dataclass
class Progress:
    """The background rebuild, as the page shows it."""

    running: bool = False
    done: int = 0
    total: int = 0
    changes: int = 0  # generation counter: bumped each time a new index is swapped in
    # the last build's outcome, as data for the page to word: "" (none yet), "ready" or "failed"
    outcome: str = ""
    files: int = 0  # documents in the index it made
    embedded: int = 0  # of them, embedded anew
    error: str = ""  # why it failed


def _build(corpus: str, index: str, embedder: str | None, translator: str, messages) -> None:
    """The child process: a build at a lower priority, reporting its progress."""
    lower_priority()
    from . import translate
    from .embed import create
    from .index import build

    try:
        report = build(Path(corpus), Path(index), create(embedder, log=lambda *_: None),
                       progress=lambda done, total: messages.put(("progress", done, total)), log=lambda *_: None,
                       translator=translate.create(translator))
        messages.put(("done", report.files, len(report.embedded_files)))
    except Exception as exc:  # noqa: BLE001 - reported to the page, the previous index stays
        messages.put(("error", f"{type(exc).__name__}: {exc}".splitlines()[0], 0))


class Library:
    def __init__(self, qa: QA, corpus: Path, index: Path, embedder: str | None = None, allow_edits: bool = False,
                 log=print):
        self.qa = qa
        self.corpus, self.index = Path(corpus), Path(index)
        self.embedder = embedder
        self.allow_edits = allow_edits
        self.log = log
        self.progress = Progress()
        self._lock = threading.Lock()
        self._again = False

    # --- what it holds ---------------------------------------------------------------------

    def documents(self) -> tuple[list[dict], dict[str, str]]:
        """The indexed documents (title, file, format, size, and their count of pages, paragraphs or
        lines: ``units`` of ``unit``) and the files left out with their reasons."""
        problems = {k: v["reason"] for k, v in self.qa.index.manifest.get("problems", {}).items()}
        rows = []
        for doc in self.qa.index.documents:
            path = self.corpus / doc.source
            unit = READERS[doc.format].unit
            rows.append({"source": doc.source, "title": doc.title, "format": doc.format,
                         "size": path.stat().st_size if path.exists() else 0,
                         "units": len(doc.units) if unit else len(doc.line_starts), "unit": unit or "line"})
        return rows, problems

    # --- edits -------------------------------------------------------------------------------

    def add(self, uploads: list[tuple[str, Path]]) -> tuple[list[str], list[EditError]]:
        """Admits each (client name, temporary path) or says why not; starts a rebuild when any was
        admitted. Returns the names admitted and the refusals."""
        self._editable()
        added, refused = [], []
        for client_name, path in uploads:
            try:
                added.append(self._admit(client_name, Path(path)))
            except EditError as exc:
                refused.append(exc)
        if added:
            self.rebuild()
        return added, refused

    def _admit(self, client_name: str, path: Path) -> str:
        existing = {p.name for p in self.corpus.iterdir()}
        name = safe_name(client_name, existing)
        try:
            size = path.stat().st_size
        except OSError:
            raise EditError(f"{client_name!r}: the upload did not arrive", "missing", name=client_name) from None
        if size > MAX_FILE_BYTES:
            mb, limit = round(size / 2**20), MAX_FILE_BYTES // 2**20
            raise EditError(f"{client_name!r}: too large ({mb} MB, over {limit} MB)", "too_large", name=client_name,
                            mb=mb, limit=limit)
        with tempfile.TemporaryDirectory(prefix="csto-qa-upload-") as tmp:
            trial = Path(tmp) / name
            shutil.copyfile(path, trial)
            try:
                load_file(trial, Path(tmp))  # every check the build makes, on this file alone
            except LoadError as exc:
                raise EditError(f"{client_name!r} refused: {exc}", "refused", name=client_name,
                                reason=str(exc)) from None
            hidden = self.corpus / f".{name}.upload"  # hidden files are not part of the corpus
            shutil.copyfile(trial, hidden)
            os.replace(hidden, self.corpus / name)
        self.log(f"csto-qa: added {name} to {self.corpus}")
        return name

    def remove(self, name: str) -> str:
        self._editable()
        listed = {p.relative_to(self.corpus).as_posix() for p in corpus_files(self.corpus)}
        if name not in listed or not (self.corpus / name).is_file():
            raise EditError(f"{name!r} is not a document of this corpus", "unknown", name=name)
        (self.corpus / name).unlink()
        self.log(f"csto-qa: removed {name} from {self.corpus}")
        self.rebuild()
        return f"removed {name}"

    def _editable(self) -> None:
        if not self.allow_edits:
            raise EditError("this server is read-only: start it with --allow-edits to add or remove documents",
                            "read_only")

    # --- rebuilding ------------------------------------------------------------------------

    def rebuild(self) -> None:
        """Starts a background rebuild, or asks the running one to be followed by another."""
        with self._lock:
            if self.progress.running:
                self._again = True
                return
            self.progress.running, self.progress.done, self.progress.total = True, 0, 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            context = multiprocessing.get_context("spawn")  # no fork of a threaded server
            messages = context.Queue()
            child = context.Process(target=_build, daemon=True, args=(
                str(self.corpus), str(self.index), self.embedder, self.qa.translator.name, messages))
            child.start()
            outcome = None
            while outcome is None:
                try:
                    kind, a, b = messages.get(timeout=0.5)
                except queue.Empty:
                    if not child.is_alive():
                        outcome = ("error", f"the build process ended ({child.exitcode})", 0)
                    continue
                if kind == "progress":
                    self.progress.done, self.progress.total = a, b
                else:
                    outcome = (kind, a, b)
            child.join()
            if outcome[0] == "done":
                self.qa = QA.open(self.corpus, self.index, self.qa.embedder, extract=self.qa.extractor.settings,
                                  progress=False, log=self.log, translator=self.qa.translator)
                self.progress.changes += 1
                self.progress.outcome, self.progress.files, self.progress.embedded = "ready", outcome[1], outcome[2]
                self.log(f"csto-qa: index ready: {outcome[1]} documents ({outcome[2]} embedded)")
            else:
                self.progress.outcome, self.progress.error = "failed", outcome[1]
                self.log(f"csto-qa: indexing failed: {outcome[1]} (the previous index stays in use)")
            with self._lock:
                if not self._again:
                    self.progress.running = False
                    return
                self._again = False

    def watch(self, seconds: float = WATCH_SECONDS) -> threading.Thread:
        """Polls the corpus folder and rebuilds when its files changed (added, removed, modified)."""
        def loop():
            while True:
                time.sleep(seconds)
                if self.progress.running:
                    continue
                try:
                    reason = staleness(self.corpus, self.qa.index.manifest, self.qa.embedder.identity, None)
                except Exception as exc:  # noqa: BLE001 - a folder gone missing, say: keep serving
                    reason = None
                    self.log(f"csto-qa: cannot watch {self.corpus}: {exc}")
                if reason:
                    self.log(f"csto-qa: {reason}: indexing in the background")
                    self.rebuild()

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        return thread
