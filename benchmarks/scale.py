"""Scale: docqa's store and FAISS index types at 10⁴, 10⁵ and 10⁶ chunks.

    .venv/bin/python benchmarks/scale.py [--sizes 10000,100000,1000000] [--queries 200]

Vectors are synthetic, drawn to match the embedder's statistics: the essays of ../shared/data/haystack are chunked
and embedded for real (all-MiniLM-L6-v2, 1 194 chunks), then each synthetic vector is a real one plus Gaussian noise
in the real vectors' principal subspace, renormalised, with the noise scaled so that a vector's nearest neighbour
is as similar as real chunks' nearest neighbours are (median cosine, printed). Embedding 10⁶ real chunks would take
~3 h here, and retrieval cost depends on vectors, not on the text. Chunk texts are essay chunks re-used (varied by an
id), so SQLite holds realistic row sizes.

For each N: building the index through docqa's IndexWriter (one version); opening it and searching through docqa's
store (p50/p95 at top-k 4, one query at a time as `ask` does; recall@10 against exact search); then ten updates that
each add one file of 100 chunks (each a new version, as `docqa ingest` does: seconds, bytes the version wrote — files
it does not share with its predecessor — and peak RSS of the update), and removing one small and one large file.
Then raw FAISS search p50/p95 and recall@10 for the exact index, IVF and HNSW at the settings printed.
Writes benchmarks/results/scale.json.
"""

from __future__ import annotations

import argparse
import contextlib
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

    (index,) = store.vectors.vectors_of()
    vecs = np.vstack([index.reconstruct(int(c.id)) for c in chunks]).astype(np.float32)
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


def reset_peak() -> None:
    """Reset this process's peak RSS (Linux: writing 5 to clear_refs), so an update's own peak can be read."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_mb(field: str = "VmHWM") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def written_mb(new: Path, old: Path | None) -> float:
    """MB of files in version ``new`` that are not hard links to files of ``old``: what the update wrote."""
    have = {(p.stat().st_ino) for p in old.iterdir()} if old else set()
    return sum(p.stat().st_size for p in new.iterdir() if p.is_file() and p.stat().st_ino not in have) / 2**20


def update(home: Path, dim: int, adds=(), removes=()) -> dict:
    from docqa.index.store import IndexWriter

    before = max(p for p in (home / "scale").glob("v*"))
    gc.collect()
    rss = peak_mb("VmRSS")  # this process holds the benchmark's own vectors: report what the update adds
    reset_peak()
    t0 = time.perf_counter()
    w = IndexWriter("scale", home, dim=dim)
    for name in removes:
        w.remove_file(name)
    for args in adds:
        w.add_file(*args)
    w.commit(SETTINGS)
    seconds = time.perf_counter() - t0
    after = max(p for p in (home / "scale").glob("v*"))
    segments = len(json.loads((after / "manifest.json").read_text())["segments"])
    return {"s": seconds, "written_mb": written_mb(after, before), "peak_rss_added_mb": peak_mb() - rss,
            "segments": segments}


SETTINGS = {"embedder": "synthetic", "tokenizer": "synthetic", "chunk_tokens": 160, "overlap": 20, "dim": 384}


def text_queries(texts: list[str], n: int, rng: np.random.Generator) -> list[str]:
    """Questions' worth of words: six words of three letters or more drawn from one random essay chunk (so they
    co-occur as a question's words do), with "what" in front."""
    import re

    out = []
    for _ in range(n):
        words = [w for w in re.findall(r"[A-Za-z]{3,}", texts[int(rng.integers(len(texts)))])]
        pick = rng.choice(len(words), min(6, len(words)), replace=False) if words else []
        out.append("What " + " ".join(words[i] for i in sorted(pick)))
    return out


def lexical_timings(store, texts: list[str], vectors: np.ndarray) -> dict:
    """p50 / p95 of a BM25 top-4 and of a hybrid top-4 (dense top-50 + BM25 top-50 fused by RRF, as docqa's hybrid
    retriever does; embedding excluded, as in the dense figures)."""
    from docqa.retrieval.fusion import rrf

    lex, hyb = [], []
    half = len(texts) // 2  # the hybrid queries are others than the BM25 ones: no term warmed by the same question
    for text in texts[:half]:
        t = time.perf_counter()
        store.search_lexical(text, 4)
        lex.append((time.perf_counter() - t) * 1000)
    for text, vec in zip(texts[half:], vectors, strict=False):
        t = time.perf_counter()
        dense = store.search(vec, 50)
        hit = store.search_lexical(text, 50)
        rrf(dense, list(zip(hit.ids.tolist(), hit.scores.tolist(), strict=True)), 0.7)[:4]
        hyb.append((time.perf_counter() - t) * 1000)
    return {"bm25_search": {"p50_ms": pct(lex, 50), "p95_ms": pct(lex, 95)},
            "hybrid_search": {"p50_ms": pct(hyb, 50), "p95_ms": pct(hyb, 95)}}


def against_bm25s(home: Path, queries: list[str]) -> dict:
    """docqa's BM25 over a version of many segments (with tombstones) against bm25s over its live chunks as one
    corpus: top-10 overlap and the largest score difference."""
    import bm25s

    from docqa.index import lexical
    from docqa.index.store import IndexStore

    store = IndexStore("scale", home)
    chunks = store.chunks()
    model = bm25s.BM25(method="lucene", k1=lexical.K1, b=lexical.B, dtype="float64")
    model.index([lexical.analyze(c.text) for c in chunks], show_progress=False)
    ids = np.array([c.id for c in chunks])
    overlap, worst, rank_worst = [], 0.0, 0.0
    for q in queries:
        terms = [t for t in lexical.query_terms(q) if t in model.vocab_dict]
        ref = model.get_scores(terms)
        top = np.argsort(-ref, kind="stable")[:10]
        hit = store.search_lexical(q, 10)
        overlap.append(len(set(ids[top].tolist()) & set(hit.ids.tolist())) / 10)
        by_id = dict(zip(ids.tolist(), ref.tolist(), strict=True))
        worst = max([worst, *(abs(by_id[int(i)] - s) for i, s in zip(hit.ids, hit.scores, strict=True))])
        # rank by rank: equal score lists mean the same ranking up to ties (the corpus repeats its texts)
        rank_worst = max([rank_worst, *np.abs(ref[top][:len(hit.scores)] - hit.scores).tolist()])
    segments = len(store.segments)
    store.close()
    return {"segments": segments, "top10_overlap": float(np.mean(overlap)), "max_score_diff": worst,
            "max_rank_score_diff": rank_worst}


def build_index(home: Path, texts: list[str], vecs: np.ndarray, per_file: int = 1000) -> None:
    """The first version of index "scale" under ``home``: one file per ``per_file`` chunks, texts re-used with an id
    word, one commit."""
    from docqa.index.segments import DocumentPart
    from docqa.index.store import IndexWriter
    from docqa.records import Chunk

    n = len(vecs)
    w = IndexWriter("scale", home, dim=vecs.shape[1])
    for f in range(0, n, per_file):
        name = f"file{f // per_file:05d}.txt"
        chunks = [Chunk(0, name, j, f"{texts[(f + j) % len(texts)]} #{f + j}", 0, 100, None, 160)
                  for j in range(min(per_file, n - f))]
        w.add_file(name, f"{f:064x}", 1000, [DocumentPart(name, 0, None, "")], chunks, vecs[f: f + len(chunks)])
    w.commit(SETTINGS)


@contextlib.contextmanager
def no_postings():
    """The index writer with BM25 postings switched off (its PostingsBuilder swapped for one that does nothing): what
    an ingest cost before the lexical index. Also used by benchmarks/ingest.py."""
    from docqa.index import writer as writer_mod

    class NoPostings:
        def add_file(self, *a, **k): ...
        def remove_file(self, *a, **k): ...
        def write(self, *a, **k): ...

    saved, writer_mod.PostingsBuilder = writer_mod.PostingsBuilder, NoPostings
    try:
        yield
    finally:
        writer_mod.PostingsBuilder = saved


def build_without_lexical(n: int, texts: list[str], vecs: np.ndarray) -> float:
    """Seconds of the same first build with BM25 postings switched off (what a build cost before them)."""
    home = Path(tempfile.mkdtemp(prefix=f"docqa-scale-nolex-{n}-"))
    try:
        with no_postings():
            t0 = time.perf_counter()
            build_index(home, texts, vecs)
            return time.perf_counter() - t0
    finally:
        shutil.rmtree(home, ignore_errors=True)


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--hnsw-max", type=int, default=100_000, help="build HNSW up to this size (slow on 2 cores)")
    ap.add_argument("--no-lexical-baseline", action="store_true",
                    help="skip the second build without BM25 postings (the cost the lexical index adds to a build)")
    ap.add_argument("--lexical-only", action="store_true",
                    help="build, then time BM25 and hybrid only (no updates, no raw FAISS comparison)")
    ap.add_argument("--exact-max", type=int, default=100_000,
                    help="compare docqa's BM25 with bm25s over the live chunks up to this size")
    args = ap.parse_args()
    import faiss

    from docqa.index.segments import DocumentPart
    from docqa.index.store import IndexStore
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
        reset_peak()
        t0 = time.perf_counter()
        build_index(home, texts, vecs)
        row["build_s"] = time.perf_counter() - t0
        row["build_chunks_per_s"] = n / row["build_s"]
        row["build_peak_rss_mb"] = peak_mb()
        if not args.no_lexical_baseline and not args.lexical_only:
            row["build_without_lexical_s"] = build_without_lexical(n, texts, vecs)
        version = max(p for p in (home / "scale").glob("v*"))
        row["disk_first_version_mb"] = written_mb(version, None)
        # docqa's own retrieval: open the version, top-4 one query at a time; recall@10 against exact search
        gc.collect()
        t0 = time.perf_counter()
        store = IndexStore("scale", home)
        row["open_s"] = time.perf_counter() - t0
        row["index_kind"] = store.manifest["vector_index"]
        times = []
        for q in queries:
            t = time.perf_counter()
            store.search(q, 4)
            times.append((time.perf_counter() - t) * 1000)
        exact = faiss.IndexFlatIP(vecs.shape[1])
        exact.add(vecs)
        _, truth = exact.search(queries, 10)
        got = [[i - 1 for i, _ in store.search(q, 10)] for q in queries]  # chunk ids are positions + 1 here
        row["docqa_search"] = {"p50_ms": pct(times, 50), "p95_ms": pct(times, 95),
                               "recall10": float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth)]))}
        row.update(lexical_timings(store, text_queries(texts, args.queries, rng), queries))
        store.close()
        if args.lexical_only:
            shutil.rmtree(home, ignore_errors=True)
            print(json.dumps(row, default=lambda x: round(x, 3) if isinstance(x, float) else x), flush=True)
            rows.append(row)
            continue
        # updates: ten one-file additions (100 chunks each), then a small and a large removal
        adds = []
        for u in range(10):
            extra = synth(real, 100, sigma, rng)
            name = f"new{u}.txt"
            new_file = (name, f"{u:064x}", 1000, [DocumentPart(name, 0, None, "")],
                    [Chunk(0, name, j, texts[j], 0, 100, None, 160) for j in range(100)], extra)
            adds.append(update(home, vecs.shape[1], adds=[new_file]))
        row["add_file"] = {"s_p50": pct([a["s"] for a in adds], 50), "s_max": max(a["s"] for a in adds),
                           "written_mb_max": max(a["written_mb"] for a in adds),
                           "peak_rss_added_mb_max": max(a["peak_rss_added_mb"] for a in adds),
                           "segments_max": max(a["segments"] for a in adds)}
        row["remove_small_file"] = update(home, vecs.shape[1], removes=["new3.txt"])
        row["remove_large_file"] = update(home, vecs.shape[1], removes=["file00000.txt"])
        if n <= args.exact_max:  # many segments, a tombstoned file: still one BM25 over the live corpus?
            row["bm25_vs_bm25s"] = against_bm25s(home, text_queries(texts, 50, rng))
        store = IndexStore("scale", home)
        row.update({f"after_updates_{k}": v for k, v in lexical_timings(store, text_queries(texts, args.queries, rng),
                                                                          queries).items()})
        store.close()
        row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        shutil.rmtree(home, ignore_errors=True)
        # Raw FAISS search: exact, IVF, HNSW
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
    out = ROOT / "benchmarks" / "results" / ("scale_lexical.json" if args.lexical_only else "scale.json")
    out.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
