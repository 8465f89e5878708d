"""Scale: the seed corpus at 1x, 10x, 100x and 1000x its size, built and served for real; and FAISS
index types by size.

Corpus generator (deterministic; documented here because the figures depend on it). Copy 0 is the
seed corpus verbatim, under its own names, so the gold questions' sources exist. Copy k >= 1 of each
seed file is copies/{k:04d}/{name}: the same text with its i-th run of digits replaced by
(number + k * (i + 1)) mod 10^length, zero-padded to the same length. Every copy's text differs
(dates, counts, footnote calls move), and its lengths do not: the splitter cuts every copy where it
cut the seed, so a copy's chunks and sentences are the seed's with other digits.

Vectors: embedding 1000x with the real model would take about 3 hours here (722,000 texts at ~65
texts/s), so the build runs through a replaying embedder. A text's "form" is its text with every
digit as 0. The first text of each form (the seed's own: copy 0 is read first) is embedded by the
real model; any later text of that form gets that vector plus Gaussian noise (norm 0.3, seeded by the
text), normalised: cosine ~0.96 to the original, as a near-paraphrase would be. The index and the
serving process are thus real (real FAISS indexes and their types, BM25, files, memory), and
questions are embedded by the real model; what the replay leaves out, the embedding time, is
reported beside the build: those texts at the 1x build's rate (where the real model embeds all). The
copies' words are the seed's, so the lexicon does not grow as a real corpus's would (its ~1,700
words are a lower bound).

Per size, in a temporary folder: the build from nothing (index.build in this process), a rebuild with
nothing changed, the index size on disk (the live generation, and with the per-file vector cache);
then a new serving process reports VmRSS with only the embedder loaded, after opening the index
(QA.open), and after the gold questions (one pass after 10 warm-up questions), VmHWM (peak), and the
latency p50/p95 of QA.ask over that pass. These are costs, not quality: a corpus of near-copies is no
test of answers (every sentence's nearest neighbours are its own copies). What approximate search
does to answers is measured on the real corpus by tests/test_index.py (HNSW forced on the seed).

FAISS part (no embedder needed): IndexFlatIP vs the engine's HNSW (float16, M=32, efConstruction 64) vs
IndexIVFFlat (nlist = sqrt(N), trained on 40 points per list) at --faiss-sizes vectors of dimension
384, inner product. Data, a stand-in for real embeddings (clustered by topic, of low intrinsic
dimension): N/100 Gaussian clusters around random unit centres in a 48-dimensional subspace (point
to centre cosine about 0.7), mapped into 384 dimensions by a random orthonormal map, plus a little
isotropic noise, unit-normalised; queries are new points from the same clusters (a query's 1st and
10th neighbours sit at cosines of about 0.65 and 0.58 at 100k). Full-rank noise instead is a far
harder case, in which recall at 1M drops by half. Latency is one query at a time (as the engine
searches), k=10; recall@10 is against the flat index's exact results. An HNSW build predicted over
--budget is skipped (its add rate at the previous size sets the prediction; 1M vectors take 5 to 10
minutes here).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchlib import CORPUS, GOLD, header, pct, quiet, table
from csto_qa.embed import Embedder, create
from csto_qa.index import HNSW_EF_SEARCH, _vector_index, build, read_manifest

import faiss  # noqa: E402  (after csto_qa, which sets the OpenMP wait policy)

DIM = 384
TARGET_P95_MS, TARGET_RSS_MB = 150.0, 1536.0

# Run with: corpus, index, gold. Prints one JSON object.
CHILD = r"""
import json, sys
import numpy as np
from csto_qa import QA
from csto_qa.embed import Embedder, create
from csto_qa.evaluate import load_gold

def status(key):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key)) / 1024

corpus, index, gold = sys.argv[1:4]
emb = create()
emb.embed_queries(["warm-up"])  # the model is mapped lazily: count its pages in the baseline
out = {"rss_embedder": status("VmRSS:")}
qa = QA.open(corpus, index, embedder=emb, progress=False, log=lambda m: sys.exit("index not ready: " + m))
out["rss_open"] = status("VmRSS:")
questions = [item.question for item in load_gold(gold)]
for q in questions[:10]:
    qa.ask(q)
ms = [qa.ask(q).timings_ms["total"] for q in questions]
out.update(p50=float(np.percentile(ms, 50)), p95=float(np.percentile(ms, 95)), rss_serving=status("VmRSS:"),
           hwm=status("VmHWM:"))
print(json.dumps(out))
"""

DIGITS = re.compile(r"\d+")


def generate(seed: Path, out: Path, copies: int) -> None:
    """The corpus of the docstring: the seed, then copies/{k:04d}/ with its digit runs moved."""
    shutil.copytree(seed, out)
    for path in sorted(p for p in seed.iterdir() if p.is_file()):
        text = path.read_text(encoding="utf-8")
        for k in range(1, copies):
            runs = iter(range(1, 1 << 30))

            def move(m: re.Match, k: int = k, runs=runs) -> str:
                width = len(m.group())
                return f"{(int(m.group()) + k * next(runs)) % 10**width:0{width}d}"

            folder = out / "copies" / f"{k:04d}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / path.name).write_text(DIGITS.sub(move, text), encoding="utf-8")


class Replay(Embedder):
    """The real embedder for the first text of each form (digits as 0); later texts of that form get its
    vector plus noise seeded by the text (see the docstring). Same identity: the serving process, with
    the real embedder, takes the index as its own."""

    def __init__(self, inner: Embedder, noise: float = 0.3):
        self.inner, self.noise = inner, noise
        self.identity, self.dim = inner.identity, inner.dim
        self.first: dict[tuple[str, str], tuple[str, np.ndarray]] = {}
        self.real = self.total = 0  # texts the real model embedded; texts asked for

    def _embed(self, texts: list[str], kind: str, embed) -> np.ndarray:
        self.total += len(texts)
        forms = [(kind, re.sub(r"\d", "0", t)) for t in texts]
        new = {f: t for f, t in zip(forms, texts) if f not in self.first}
        if new:
            vectors = embed(list(new.values()))
            self.first.update({f: (t, v) for (f, t), v in zip(new.items(), vectors)})
            self.real += len(new)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, (form, text) in enumerate(zip(forms, texts)):
            original, vector = self.first[form]
            if text != original:
                seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
                vector = vector + self.noise / self.dim**0.5 * np.random.default_rng(seed).standard_normal(self.dim)
            out[i] = vector / np.linalg.norm(vector)
        return out

    def embed_passages(self, texts: list[str], progress=None) -> np.ndarray:
        out = self._embed(texts, "passage", self.inner.embed_passages)
        if progress:
            progress(len(texts), 0)
        return out

    def embed_queries(self, texts: list[str], progress=None) -> np.ndarray:
        out = self._embed(texts, "query", self.inner.embed_queries)
        if progress:
            progress(len(texts), 0)
        return out


def du_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def clustered(n: int, n_queries: int, rng: np.random.Generator, latent: int = 48,
              block: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
    """n points and n_queries other points from the same Gaussian clusters (see the docstring), unit-normalised."""
    basis = np.linalg.qr(rng.standard_normal((DIM, latent)))[0].T.astype(np.float32)  # orthonormal latent -> DIM
    centres = rng.standard_normal((max(n // 100, 10), latent), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n + n_queries, DIM), dtype=np.float32)
    for i in range(0, len(out), block):  # in blocks: 1M x 384 float32 is 1.5 GB already
        m = min(block, len(out) - i)
        spread = rng.standard_normal((m, latent), dtype=np.float32) / latent**0.5  # point to centre cosine ~0.7
        z = centres[rng.integers(len(centres), size=m)] + spread
        x = z @ basis + 0.3 / DIM**0.5 * rng.standard_normal((m, DIM), dtype=np.float32)
        out[i : i + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out[:n], out[n:]


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact)]))


def search_ms(index, queries: np.ndarray, k: int) -> tuple[list[float], np.ndarray]:
    times, ids = [], []
    for q in queries:
        t = time.perf_counter()
        ids.append(index.search(q.reshape(1, -1), k)[1][0])
        times.append((time.perf_counter() - t) * 1000)
    return times, np.array(ids)


COLUMNS = ["size", "docs", "chunks", "sentences", "index", "build s", "+embed s", "rebuild s", "disk MB",
           "+cache MB", "RSS emb", "RSS open", "RSS serving", "peak", "p50 ms", "p95 ms", "build x", "RSS x",
           "p95 x"]


def measure(n: int, args, embedder: Embedder, tmp: Path) -> dict:
    corpus, index = tmp / f"corpus-{n}", tmp / f"index-{n}"
    generate(Path(args.corpus), corpus, n)
    replay = Replay(embedder)
    report = build(corpus, index, replay, progress=False, log=quiet)
    rebuild = build(corpus, index, replay, progress=False, log=quiet)  # nothing changed
    manifest = read_manifest(index)
    gen = index / (index / "CURRENT").read_text().strip()
    types = "/".join(type(faiss.read_index(str(gen / f), faiss.IO_FLAG_MMAP)).__name__.removeprefix("Index")
                     for f in ("chunks.faiss", "contexts.faiss"))
    child = subprocess.run([sys.executable, "-c", CHILD, str(corpus), str(index), args.gold],
                           capture_output=True, text=True)
    if child.returncode:
        sys.exit(f"serving process failed at {n}x: {child.stderr[-800:]}")
    out = {"n": n, "counts": manifest["counts"], "types": types, "build_s": report.seconds,
           "rebuild_s": rebuild.seconds, "real": replay.real, "replayed": replay.total - replay.real,
           "disk_mb": du_mb(gen), "disk_all_mb": du_mb(index),
           **json.loads(child.stdout.strip().splitlines()[-1])}
    for path in (corpus, index):  # the next size needs the room more than anyone needs these
        shutil.rmtree(path)
    return out


def corpus_part(args, tmp: Path) -> None:
    embedder = create()
    embedder.embed_passages(["warm-up"])
    rows, built = [], []
    for n in sorted({1, *args.sizes}):  # 1x first: its build, all real, gives the model's throughput
        b = measure(n, args, embedder, tmp)
        rate = built[0]["real"] / built[0]["build_s"] if built else b["real"] / b["build_s"]
        prev = built[-1] if built else None
        growth = [f"{b[k] / prev[k]:.1f}x" if prev else "" for k in ("build_s", "rss_serving", "p95")]
        rows.append([f"{n}x", *b["counts"].values(), b["types"], f"{b['build_s']:.0f}", f"{b['replayed'] / rate:.0f}",
                     f"{b['rebuild_s']:.1f}", f"{b['disk_mb']:.0f}", f"{b['disk_all_mb']:.0f}",
                     *(f"{b[k]:.0f}" for k in ("rss_embedder", "rss_open", "rss_serving", "hwm")),
                     f"{b['p50']:.1f}", f"{b['p95']:.1f}", *growth])
        built.append(b)
    rate = built[0]["real"] / built[0]["build_s"]
    print(header(f"scale.py: seed corpus x N (generator and replayed vectors in the docstring), "
                 f"embedder {embedder.identity}"))
    print(f"build s: measured, copies' vectors replayed; +embed s: what embedding them would add at the 1x build's "
          f"{rate:.0f} texts/s.\nindex: FAISS type of the chunk / sentence-in-context vectors. RSS in MB of the "
          f"serving process: with the embedder only, after QA.open, after the gold pass; peak\n")
    print(table(COLUMNS, rows))
    print(f"targets at 1000x: query p95 <= {TARGET_P95_MS:.0f} ms, serving RSS <= {TARGET_RSS_MB:.0f} MB. p95 and build "
          f"time move with the shared machine's load")


def faiss_part(args) -> None:
    rng = np.random.default_rng(1)
    rows, hnsw_rate = [], None
    for n in args.faiss_sizes:
        data, queries = clustered(n, args.queries, rng)
        flat = faiss.IndexFlatIP(DIM)
        t = time.perf_counter()
        flat.add(data)
        built_s = time.perf_counter() - t
        exact_times, exact = search_ms(flat, queries, 10)
        rows.append([n, "flat (exact)", f"{built_s:.1f}", f"{n * DIM * 4 / 2**20:.0f}",
                     f"{pct(exact_times, 50):.2f}", f"{pct(exact_times, 95):.2f}", "1.000"])
        del flat

        predicted = n / hnsw_rate if hnsw_rate else None
        if predicted is None or not args.budget or predicted <= args.budget:
            os.environ["CSTO_QA_HNSW_MIN"] = "0"  # the engine's own HNSW, whatever the size
            t = time.perf_counter()
            hnsw = _vector_index(data)
            built_s = time.perf_counter() - t
            del os.environ["CSTO_QA_HNSW_MIN"]
            hnsw_rate = n / built_s / 1.2  # a bigger graph is deeper: allow for it in the next prediction
            hnsw.hnsw.efSearch = HNSW_EF_SEARCH
            times, ids = search_ms(hnsw, queries, 10)
            rows.append([n, f"HNSW fp16 efSearch={HNSW_EF_SEARCH}", f"{built_s:.1f}",
                         f"{faiss.serialize_index(hnsw).nbytes / 2**20:.0f}", f"{pct(times, 50):.2f}", f"{pct(times, 95):.2f}", f"{recall(ids, exact):.3f}"])
            del hnsw
        else:
            rows.append([n, "HNSW", f"skipped: ~{predicted:.0f} s predicted > budget", "", "", "", ""])

        nlist = int(n**0.5)
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(DIM), DIM, nlist, faiss.METRIC_INNER_PRODUCT)
        t = time.perf_counter()
        ivf.train(data[rng.choice(n, size=min(n, 40 * nlist), replace=False)])
        ivf.add(data)
        built_s = time.perf_counter() - t
        for nprobe in (8, 32):
            ivf.nprobe = nprobe
            times, ids = search_ms(ivf, queries, 10)
            rows.append([n, f"IVF nlist={nlist} nprobe={nprobe}", f"{built_s:.1f}",
                         f"{faiss.serialize_index(ivf).nbytes / 2**20:.0f}", f"{pct(times, 50):.2f}",
                         f"{pct(times, 95):.2f}", f"{recall(ids, exact):.3f}"])
        del ivf, data
    print(header(f"scale.py FAISS part: dimension {DIM}, inner product, {args.queries} single queries, k=10, "
                 f"clustered synthetic vectors (see docstring), {faiss.omp_get_max_threads()} OpenMP threads"))
    print()
    print(table(["vectors", "index", "build s", "size MB", "p50 ms", "p95 ms", "recall@10"], rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=str(CORPUS), help="seed corpus (default: the repository's)")
    ap.add_argument("--gold", default=str(GOLD))
    ap.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 10, 100, 1000],
                    help="copies of the seed corpus (default 1,10,100,1000; 1000 takes about 20 minutes)")
    ap.add_argument("--budget", type=float, default=600,
                    help="FAISS part: longest predicted HNSW build (s) that is run; 0: no limit (default 600)")
    ap.add_argument("--faiss-sizes", type=lambda s: [int(x) for x in s.split(",")],
                    default=[10_000, 100_000, 1_000_000],
                    help="vector counts for the FAISS part (default 10000,100000,1000000)")
    ap.add_argument("--queries", type=int, default=200, help="queries per FAISS index (default 200)")
    part = ap.add_mutually_exclusive_group()
    part.add_argument("--corpus-only", action="store_true", help="skip the FAISS part")
    part.add_argument("--faiss-only", action="store_true", help="skip the corpus part")
    args = ap.parse_args()
    if not args.faiss_only:
        with tempfile.TemporaryDirectory(prefix="csto-qa-bench-scale-") as tmp:
            corpus_part(args, Path(tmp))
    if not args.corpus_only:
        if not args.faiss_only:
            print()
        faiss_part(args)


if __name__ == "__main__":
    main()
