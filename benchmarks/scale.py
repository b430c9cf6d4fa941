"""Scale: docqa's store and FAISS index types at 10⁴, 10⁵ and 10⁶ chunks.

    .venv/bin/python benchmarks/scale.py [--sizes 10000,100000,1000000] [--queries 200]

Vectors are synthetic, drawn to match the embedder's statistics: the essays of ../shared/data/haystack are chunked
and embedded for real (all-MiniLM-L6-v2, 1 194 chunks), then each synthetic vector is a real one plus Gaussian noise
in the real vectors' principal subspace, renormalised, with the noise scaled so that a vector's nearest neighbour
is as similar as real chunks' nearest neighbours are (median cosine, printed). Embedding 10⁶ real chunks would take
~3 h here, and retrieval cost depends on vectors, not on the text. Chunk texts are essay chunks re-used (varied by an
id), so SQLite holds realistic row sizes.

For each N: building the index through docqa's IndexWriter (one version), adding one file of 100 chunks and removing
it again (each a new version, as `docqa ingest --sync` does), disk per version, peak RSS; then search p50/p95 at
top-k 4 (one query at a time, as `ask` does) and recall@10 against exact search, for the exact index and for IVF and
HNSW at the settings printed. Writes benchmarks/results/scale.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import resource
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ESSAYS = ROOT.parent / "shared" / "data" / "haystack" / "paul_graham_essays"


def real_vectors() -> tuple[np.ndarray, list[str]]:
    import docqa

    root = Path(tempfile.mkdtemp(prefix="docqa-scale-real-"))
    docqa.ingest(ESSAYS, "essays", root=root)
    idx = docqa.open_index("essays", root=root)
    store = idx.corpus.store
    chunks = store.chunks()
    import faiss

    vecs = np.vstack([store.faiss_index.reconstruct(int(c.id)) for c in chunks]).astype(np.float32)
    del faiss
    return vecs, [c.text for c in chunks]


def synth(real: np.ndarray, n: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    mean = real.mean(0)
    u, s, vt = np.linalg.svd(real - mean, full_matrices=False)
    basis = vt * (s[:, None] / math.sqrt(len(real)))  # principal directions scaled by their spread
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    step = 100_000
    for a in range(0, n, step):
        b = min(n, a + step)
        base = real[rng.integers(0, len(real), b - a)]
        noise = rng.standard_normal((b - a, basis.shape[0])).astype(np.float32) @ basis
        v = base + sigma * noise
        out[a:b] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def nn_cos(v: np.ndarray, sample: int = 300) -> float:
    import faiss

    idx = faiss.IndexFlatIP(v.shape[1])
    idx.add(v)
    s, _ = idx.search(v[:sample], 2)
    return float(np.median(s[:, 1]))


def timed_search(index, queries: np.ndarray, k: int) -> tuple[list[float], np.ndarray]:
    times, ids = [], []
    for q in queries:
        t = time.perf_counter()
        _, i = index.search(q[None, :], k)
        times.append((time.perf_counter() - t) * 1000)
        ids.append(i[0])
    return times, np.array(ids)


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--hnsw-max", type=int, default=100_000, help="build HNSW up to this size (slow on 2 cores)")
    args = ap.parse_args()
    import faiss

    from docqa.index.store import DocumentPart, IndexWriter
    from docqa.records import Chunk

    rng = np.random.default_rng(0)
    real, texts = real_vectors()
    target = nn_cos(real)
    sigma = 0.5  # pick the noise that gives synthetic vectors the real nearest-neighbour similarity
    for s in (0.2, 0.35, 0.5, 0.7, 1.0):
        if nn_cos(synth(real, len(real), s, rng)) <= target:
            sigma = s
            break
    print(f"real nearest-neighbour cosine (median) {target:.3f}; noise scale {sigma}", flush=True)
    rows = []
    for n in [int(x) for x in args.sizes.split(",")]:
        gc.collect()
        vecs = synth(real, n, sigma, rng)
        queries = synth(real, args.queries, sigma, rng)  # unseen vectors from the same distribution
        home = Path(tempfile.mkdtemp(prefix=f"docqa-scale-{n}-"))
        row: dict = {"n": n, "synthetic_nn_cos": nn_cos(vecs[: min(n, 50_000)])}
        per_file = 1000
        t0 = time.perf_counter()
        w = IndexWriter("scale", home, dim=vecs.shape[1])
        for f in range(0, n, per_file):
            chunks = [Chunk(0, f"file{f // per_file:05d}.txt", j, f"{texts[(f + j) % len(texts)]} #{f + j}", 0, 100,
                            None, 160) for j in range(min(per_file, n - f))]
            parts = [DocumentPart(f"file{f // per_file:05d}.txt", 0, None, "")]
            w.add_file(f"file{f // per_file:05d}.txt", f"{f:064x}", 1000, parts, chunks, vecs[f: f + len(chunks)])
        w.commit({"embedder": "synthetic", "tokenizer": "synthetic", "chunk_tokens": 160, "overlap": 20})
        row["build_s"] = time.perf_counter() - t0
        version = max(p for p in (home / "scale").glob("v*"))
        row["disk_per_version_mb"] = sum(p.stat().st_size for p in version.iterdir()) / 2**20
        extra = synth(real, 100, sigma, rng)
        t0 = time.perf_counter()
        w = IndexWriter("scale", home, dim=vecs.shape[1])
        w.add_file("new.txt", "f" * 64, 1000, [DocumentPart("new.txt", 0, None, "")],
                   [Chunk(0, "new.txt", j, texts[j], 0, 100, None, 160) for j in range(100)], extra)
        w.commit({"embedder": "synthetic", "tokenizer": "synthetic", "chunk_tokens": 160, "overlap": 20})
        row["add_file_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        w = IndexWriter("scale", home, dim=vecs.shape[1])
        w.remove_file("new.txt")
        w.commit({"embedder": "synthetic", "tokenizer": "synthetic", "chunk_tokens": 160, "overlap": 20})
        row["remove_file_s"] = time.perf_counter() - t0
        row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        shutil.rmtree(home, ignore_errors=True)
        # Search: exact, IVF, HNSW
        exact = faiss.IndexFlatIP(vecs.shape[1])
        exact.add(vecs)
        t_exact, truth = timed_search(exact, queries, 10)
        row["flat"] = {"p50_ms": pct(t_exact, 50), "p95_ms": pct(t_exact, 95), "recall10": 1.0}
        nlist = int(4 * math.sqrt(n))
        t0 = time.perf_counter()
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(vecs.shape[1]), vecs.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.train(vecs[rng.choice(n, min(n, 64 * nlist), replace=False)])
        ivf.add(vecs)
        row["ivf_build_s"] = time.perf_counter() - t0
        row["ivf_nlist"] = nlist
        row["ivf"] = {}
        for nprobe in (4, 8, 16, 32, 64, 128):
            ivf.nprobe = nprobe
            t, got = timed_search(ivf, queries, 10)
            recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth, strict=True)]))
            row["ivf"][nprobe] = {"p50_ms": pct(t, 50), "p95_ms": pct(t, 95), "recall10": recall}
        if n <= args.hnsw_max:
            t0 = time.perf_counter()
            hnsw = faiss.IndexHNSWFlat(vecs.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
            hnsw.hnsw.efConstruction = 80
            hnsw.add(vecs)
            row["hnsw_build_s"] = time.perf_counter() - t0
            row["hnsw"] = {}
            for ef in (16, 32, 64, 128):
                hnsw.hnsw.efSearch = ef
                t, got = timed_search(hnsw, queries, 10)
                recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth, strict=True)]))
                row["hnsw"][ef] = {"p50_ms": pct(t, 50), "p95_ms": pct(t, 95), "recall10": recall}
            del hnsw
        print(json.dumps(row, default=lambda x: round(x, 3) if isinstance(x, float) else x), flush=True)
        rows.append(row)
        del exact, ivf, vecs
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cores": os.cpu_count(),
              "faiss": faiss.__version__, "noise_sigma": sigma, "real_nn_cos": target, "rows": rows}
    out = ROOT / "benchmarks" / "results" / "scale.json"
    out.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
