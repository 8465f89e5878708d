"""Apertium (Debian's apertium, apertium-eng-spa, apertium-fr-es): rule-based translation between
English and French, by pivot through Spanish, which both pairs share.

Each direction is one long-lived pipeline of Apertium's stages (two language pairs end to end),
started on first use, in null-flush mode: a text followed by a NUL goes through every stage at once
and comes out followed by a NUL, so a process starts once, not per question. The stages are the
ones the pairs' .mode files list, with -z (``apertium-wblank-mode -z`` writes them): the ``apertium``
front end would put a deformatter and a sed before them, which hold text back until the end of the
input. A pipeline that died is restarted on the next request; one that does not answer within
TIMEOUT_S is killed (the whole process group) and that request goes untranslated.
"""

from __future__ import annotations

import logging
import os
import re
import select
import shutil
import signal
import subprocess
import threading
import time
from collections import OrderedDict
from pathlib import Path

from .base import Translation, Translator

log = logging.getLogger("csto_qa.translate")

# (source, target) -> the two pairs' modes, through Spanish
PAIRS = {("en", "fr"): ("eng-spa", "es-fr"), ("fr", "en"): ("fr-es", "spa-eng")}
MODE_DIRS = ("/usr/share/apertium/modes", "/usr/local/share/apertium/modes")
TIMEOUT_S = 2.0
STARTUP_S = 10.0  # a pipeline's first request also waits for its stages to load their transducers
CACHE_SIZE = 4096
# Characters of Apertium's stream format ("^word/analysis$", "[blank]"...) that plain text must not
# carry into the pipeline (the deformatter, left out, would escape them); NUL ends a request.
_STREAM = re.compile(r"[\^$\[\]{}/@<>\\\x00\s]+")


def modes(directory: str | None = None) -> dict[str, Path]:
    """The installed .mode files by name ("eng-spa": path)."""
    dirs = [directory] if directory else [os.environ.get("APERTIUM_MODES", ""), *MODE_DIRS]
    found = {}
    for d in filter(None, dirs):
        for path in sorted(Path(d).glob("*.mode")):
            found.setdefault(path.stem, path)
    return found


def missing() -> str | None:
    """Why Apertium cannot translate here, or None when it can."""
    if not shutil.which("apertium-wblank-mode") or not shutil.which("lt-proc"):
        return "Apertium is not installed (Debian packages apertium, apertium-eng-spa, apertium-fr-es)"
    have = modes()
    lacking = sorted({m for pair in PAIRS.values() for m in pair} - set(have))
    if lacking:
        return f"Apertium lacks the language pairs {', '.join(lacking)} (packages apertium-eng-spa, apertium-fr-es)"
    return None


class _Pipeline:
    """One direction's stages, as one process group fed through a pipe."""

    def __init__(self, mode_files: list[Path]):
        stages = []
        for path in mode_files:
            script = subprocess.run(["apertium-wblank-mode", "-z", str(path)], capture_output=True, text=True,
                                    check=True, timeout=30).stdout.strip()
            # $1: the generator's option (-n: no marks on unknown words); $2: the tagger's (none)
            stages.append(script.replace("$1", "-n").replace("$2", ""))
        self.command = " | ".join(stages)
        self.process: subprocess.Popen | None = None
        self.lock = threading.Lock()

    def start(self) -> subprocess.Popen:
        if self.process is None or self.process.poll() is not None:
            self.process = subprocess.Popen(["bash", "-c", self.command], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0,
                                            start_new_session=True)
        return self.process

    def stop(self) -> None:
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.process.wait()
            self.process = None

    def run(self, text: str, timeout: float) -> str:
        """Raises OSError (the pipeline died), TimeoutError or ValueError (undecodable output)."""
        if self.process is None or self.process.poll() is not None:
            timeout += STARTUP_S
        process = self.start()
        # a blank before the NUL: the analyser keeps a text's last token until a blank follows it
        process.stdin.write(text.encode("utf-8") + b"\n\0")
        out, deadline = b"", time.monotonic() + timeout
        while not out.endswith(b"\0"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([process.stdout], [], [], left)[0]:
                raise TimeoutError
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                raise OSError("the pipeline ended")
            out += chunk
        return out[:-1].decode("utf-8")


class ApertiumTranslator(Translator):
    name = "apertium"

    def __init__(self, timeout: float = TIMEOUT_S):
        reason = missing()
        self.available = reason is None
        self.reason = reason
        self.timeout = timeout
        self._pipelines: dict[tuple[str, str], _Pipeline] = {}
        self._cache: OrderedDict[tuple[str, str, str], str] = OrderedDict()
        self._lock = threading.Lock()

    def _pipeline(self, source: str, target: str) -> _Pipeline:
        with self._lock:
            if (source, target) not in self._pipelines:
                have = modes()
                self._pipelines[(source, target)] = _Pipeline([have[m] for m in PAIRS[(source, target)]])
            return self._pipelines[(source, target)]

    def translate(self, text: str, source: str, target: str) -> Translation | None:
        if not self.available or (source, target) not in PAIRS:
            return None
        plain = _STREAM.sub(" ", text).strip()
        if not plain:
            return None
        key = (plain, source, target)
        if key in self._cache:
            self._cache.move_to_end(key)
            return Translation(self._cache[key], source, target)
        pipeline = self._pipeline(source, target)
        with pipeline.lock:  # one request at a time per pipeline: answers come back in order
            for attempt in (1, 2):
                try:
                    out = " ".join(pipeline.run(plain, self.timeout).split())
                    break
                except TimeoutError:
                    log.warning("translation %s->%s took over %.1f s: stopped, question searched as asked",
                                source, target, self.timeout)
                    pipeline.stop()
                    return None
                except (OSError, ValueError) as exc:
                    pipeline.stop()
                    if attempt == 2:
                        log.warning("translation %s->%s failed (%s): question searched as asked", source, target, exc)
                        return None
        self._cache[key] = out
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return Translation(out, source, target) if out else None

    def close(self) -> None:
        for pipeline in self._pipelines.values():
            pipeline.stop()
