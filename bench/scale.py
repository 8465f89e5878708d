"""Scale: the seed corpus at 1x, 10x, 100x (1000x behind --with-1000) its size, and FAISS index types by size.

Corpus generator (deterministic, seeded by copy number and file name; seed files are read as UTF-8
text). Copy 0 is the seed corpus verbatim, under its own names, so the gold questions' sources
exist. Copy k >= 1 of each seed file is "{k:04d}_{name}": its blocks (text between blank lines)
after the first, the title, are shuffled with random.Random(f"{k}:{name}"), and every run of digits
n becomes n + k (dates, counts and footnote calls move). Every copy's loaded text thus differs (the
index caches vectors by loaded text: identical copies would not be embedded again), while its words
stay the seed's: the lexicon does not grow with the copies, as a real corpus's would, so the
lexicon's share of build time here is a lower bound.

Per size, in a temporary folder: build from nothing (index.build in this process, embedder loaded
once), then a rebuild with nothing changed (it embeds nothing but still writes a whole new
generation, including index._hubness, an exact 11-NN search of every sentence against all: N^2);
index size on disk (the live generation alone, and with the per-file vector cache); then a new
serving process reports VmRSS with only the embedder loaded, after opening the index (QA.open), and
after the gold questions (one pass after 10 warm-up questions: the first query also loads the
language-ID model), VmHWM (peak), and the query latency p50/p95 of QA.ask over that pass. "floor" is
what the engine's O(N) steps cost at that size, measured on random data of the same shape: a flat
search over the chunk vectors (k=50) and over the sentence-in-context vectors (k=200), plus the four
full argsorts over all chunks in Retriever._rrf and Retriever.search.

Time: the build embeds every chunk, every sentence twice and every lexicon word; at 1x it takes
about 45 s here, and grows linearly: 100x is about an hour, 1000x (about 720,000 texts) 10 to 15
hours. The first two sizes are always built; a further size only if the line through the sizes
already built predicts its build within --budget seconds; otherwise its row is extrapolated and
marked "est.": build time, disk and memory on that line, latency as the largest built size's p95
plus the growth of the floor. 1000x is always shown, extrapolated unless --with-1000 is given (and
the budget allows it, e.g. --budget 0 for none).

FAISS part (no embedder needed): IndexFlatIP vs IndexHNSWFlat (M=32, efConstruction 40) vs
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
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchlib import CORPUS, GOLD, header, pct, quiet, table
from csto_qa.embed import create
from csto_qa.index import build, read_manifest

import faiss  # noqa: E402  (after csto_qa, which sets the OpenMP wait policy)

DIM = 384
TARGET_P95_MS, TARGET_RSS_MB = 150.0, 1536.0

# Run with: corpus, index, gold. Prints one JSON object.
CHILD = r"""
import json, sys
import numpy as np
from csto_qa import QA
from csto_qa.embed import create
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


def generate(seed: Path, out: Path, copies: int) -> None:
    out.mkdir(parents=True)
    for path in sorted(p for p in seed.iterdir() if p.is_file()):
        text = path.read_text(encoding="utf-8")
        (out / path.name).write_text(text, encoding="utf-8")
        blocks = text.split("\n\n")
        for k in range(1, copies):
            rest = blocks[1:]
            random.Random(f"{k}:{path.name}").shuffle(rest)
            copy = re.sub(r"\d+", lambda m, k=k: str(int(m.group()) + k), "\n\n".join([blocks[0], *rest]))
            (out / f"{k:04d}_{path.name}").write_text(copy, encoding="utf-8")


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


def floor_ms(chunks: int, sentences: int, rng: np.random.Generator, reps: int = 15) -> float:
    """Median cost of the engine's O(N) per-query steps at this many chunks and sentences."""
    flat_c, flat_s = faiss.IndexFlatIP(DIM), faiss.IndexFlatIP(DIM)
    flat_c.add(rng.standard_normal((chunks, DIM), dtype=np.float32))
    flat_s.add(rng.standard_normal((sentences, DIM), dtype=np.float32))
    scores = rng.random(chunks).astype(np.float32)
    times = []
    for q in rng.standard_normal((reps, 1, DIM), dtype=np.float32):
        t = time.perf_counter()
        flat_c.search(q, min(50, chunks))
        flat_s.search(q, min(200, sentences))
        for _ in range(4):
            np.argsort(-scores, kind="stable")
        times.append((time.perf_counter() - t) * 1000)
    return pct(times, 50)


def line_through(points: list[tuple[int, float]], n: int) -> float:
    """Value at n on the least-squares line through (size, value) points."""
    slope, intercept = np.polyfit([p[0] for p in points], [p[1] for p in points], 1)
    return float(intercept + slope * n)


COLUMNS = ["size", "docs", "chunks", "sentences", "build s", "rebuild s", "disk MB", "+cache MB", "RSS emb",
           "RSS open", "RSS serving", "peak", "p50 ms", "p95 ms", "floor ms", "build x", "RSS x", "p95 x"]
LINEAR = ("build_s", "disk_mb", "disk_all_mb", "rss_embedder", "rss_open", "rss_serving", "hwm")  # extrapolated


def measure(n: int, args, embedder, tmp: Path, rng: np.random.Generator) -> dict:
    corpus, index = tmp / f"corpus-{n}", tmp / f"index-{n}"
    generate(Path(args.corpus), corpus, n)
    report = build(corpus, index, embedder, progress=False, log=quiet)
    rebuild = build(corpus, index, embedder, progress=False, log=quiet)  # nothing changed
    counts = read_manifest(index)["counts"]
    child = subprocess.run([sys.executable, "-c", CHILD, str(corpus), str(index), args.gold],
                           capture_output=True, text=True)
    if child.returncode:
        sys.exit(f"serving process failed at {n}x: {child.stderr[-800:]}")
    gen = index / (index / "CURRENT").read_text().strip()
    out = {"n": n, "counts": counts, "build_s": report.seconds, "rebuild_s": rebuild.seconds,
           "disk_mb": du_mb(gen), "disk_all_mb": du_mb(index), **json.loads(child.stdout.strip().splitlines()[-1]),
           "floor": floor_ms(counts["chunks"], counts["sentences"], rng)}
    for path in (corpus, index):  # the next size needs the room more than anyone needs these
        shutil.rmtree(path)
    return out


def corpus_part(args, tmp: Path) -> None:
    embedder = create()
    embedder.embed_passages(["warm-up"])
    rng = np.random.default_rng(0)
    rows, built = [], []
    for n in sorted({*args.sizes, 1000}):
        predicted = line_through([(b["n"], b["build_s"]) for b in built], n) if len(built) >= 2 else None
        if (n != 1000 or args.with_1000) and (predicted is None or not args.budget or predicted <= args.budget):
            b = measure(n, args, embedder, tmp, rng)
            prev = built[-1] if built else None
            growth = [f"{b[k] / prev[k]:.1f}x" if prev else "" for k in ("build_s", "rss_serving", "p95")]
            rows.append([f"{n}x", *b["counts"].values(), f"{b['build_s']:.0f}", f"{b['rebuild_s']:.1f}",
                         f"{b['disk_mb']:.1f}", f"{b['disk_all_mb']:.1f}",
                         *(f"{b[k]:.0f}" for k in ("rss_embedder", "rss_open", "rss_serving", "hwm")),
                         f"{b['p50']:.1f}", f"{b['p95']:.1f}", f"{b['floor']:.1f}", *growth])
            built.append(b)
        elif len(built) < 2:
            rows.append([f"{n}x", "not run; extrapolating needs two built sizes", *[""] * (len(COLUMNS) - 2)])
        else:
            last = built[-1]
            counts = {k: v * n // last["n"] for k, v in last["counts"].items()}
            floor = floor_ms(counts["chunks"], counts["sentences"], rng)
            est = [f"~{line_through([(b['n'], b[k]) for b in built], n):.0f}" for k in LINEAR]
            rows.append([f"{n}x est.", *counts.values(), est[0], "", *est[1:], "",
                         f"~{last['p95'] + floor - last['floor']:.0f}", f"{floor:.1f}", "", "", ""])
    print(header(f"scale.py: seed corpus x N (generator in the docstring), embedder {embedder.identity}, "
                 f"budget {args.budget or 'none'} s per build"))
    print("rows marked 'est.' were NOT RUN (predicted build over the budget; 1000x only with --with-1000): "
          "extrapolated as the docstring says")
    print("RSS in MB of the serving process: with the embedder only, after QA.open, after the gold pass; peak\n")
    print(table(COLUMNS, rows))
    print(f"targets at 1000x: query p95 <= {TARGET_P95_MS:.0f} ms, serving RSS <= {TARGET_RSS_MB:.0f} MB. p95 and build "
          f"time move with the shared machine's load, the floor much less. 'rebuild s' (nothing changed) is not "
          f"extrapolated: it grows with N^2 (see the docstring)")


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
            hnsw = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
            t = time.perf_counter()
            hnsw.add(data)
            built_s = time.perf_counter() - t
            hnsw_rate = n / built_s / 1.2  # a bigger graph is deeper: allow for it in the next prediction
            for ef in (32, 128):
                hnsw.hnsw.efSearch = ef
                times, ids = search_ms(hnsw, queries, 10)
                rows.append([n, f"HNSW efSearch={ef}", f"{built_s:.1f}",
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
    ap.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 10, 100],
                    help="copies of the seed corpus (default 1,10,100)")
    ap.add_argument("--with-1000", action="store_true", help="also build 1000x (10 to 15 hours here)")
    ap.add_argument("--budget", type=float, default=600,
                    help="longest predicted build (s) that is run rather than extrapolated; 0: no limit (default 600)")
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
