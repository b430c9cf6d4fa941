"""The FAISS index a segment keeps its vectors in, chosen by size: exact while exact search is fast, IVF past that.

Measured here (benchmarks/scale.py, 2 cores, 384-d vectors matched to all-MiniLM's statistics; RESULTS.md): exact
search grows linearly with the chunks (a query scans every vector: p50 54 ms at 10⁶), IVF with nlist = 4·√N and the
smallest nprobe reaching recall@10 ≥ 0.97 against exact search stays under a millisecond. ``AUTO_IVF_AT`` is where
exact search stops being fast enough to not matter next to an answer. A segment is immutable (segments.py), so its
index is built — and an IVF index trained and tuned — once, when the segment is written or merged; deletions are
excluded at search time by an id selector (vector_stores/faiss_store.py), which also serves HNSW, which cannot remove
vectors.

Ids are chunk ids: exact and HNSW indexes are wrapped in ``IndexIDMap2``; an IVF index stores them itself.
:func:`ids_of` reads them from either, so the store's checks (counts, id sets) are the same for every kind. The kind
and its search parameters are recorded in the segment's manifest record and applied when a version is opened.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import ConfigError

INDEX_TYPES = ("auto", "flat", "ivf", "hnsw")
# Exact search costs ~0.07 µs a vector a query here (p50 0.46 ms at 10⁴, 6.8 ms at 10⁵, 54 ms at 10⁶), so it passes
# 5 ms near 7·10⁴ chunks; IVF stays under 0.3 ms to 10⁶ (benchmarks/RESULTS.md, "Scale").
AUTO_IVF_AT = 50_000
TARGET_RECALL = 0.97  # nprobe is the smallest reaching this recall@10 on a sample (the issue asks ≥ 0.95)
_NPROBES = (4, 8, 16, 32, 64, 128, 256, 512)


def check_type(kind: str) -> str:
    if kind not in INDEX_TYPES:
        raise ConfigError(f"Unknown --index-type '{kind}'. Use {', '.join(INDEX_TYPES)}.")
    return kind


def _inner(index):
    """The index doing the search: IVF itself, or what an ``IndexIDMap2`` wraps."""
    import faiss

    index = faiss.downcast_index(index)
    return index if isinstance(index, faiss.IndexIVF) else faiss.downcast_index(index.index)


def kind_of(index) -> str:
    """flat, ivf or hnsw."""
    import faiss

    inner = _inner(index)
    if isinstance(inner, faiss.IndexIVF):
        return "ivf"
    if isinstance(inner, faiss.IndexHNSW):
        return "hnsw"
    return "flat"


def _ivf_contents(ivf) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, ids) of an IVF-Flat index, list by list (its codes are the float32 vectors)."""
    import faiss

    inv, vecs, ids = ivf.invlists, [], []
    for li in range(ivf.nlist):
        n = inv.list_size(li)
        if not n:
            continue
        ids.append(faiss.rev_swig_ptr(inv.get_ids(li), n).copy())
        codes = faiss.rev_swig_ptr(inv.get_codes(li), n * inv.code_size).copy()
        vecs.append(codes.view(np.float32).reshape(n, ivf.d))
    if not ids:
        return np.zeros((0, ivf.d), dtype=np.float32), np.zeros(0, dtype=np.int64)
    return np.vstack(vecs), np.concatenate(ids).astype(np.int64)


def ids_of(index) -> np.ndarray:
    """The chunk ids an index holds, as an int64 array."""
    import faiss

    inner = _inner(index)
    if isinstance(inner, faiss.IndexIVF):
        return _ivf_contents(inner)[1]
    return faiss.vector_to_array(faiss.downcast_index(index).id_map).astype(np.int64)


def wanted(requested: str, n: int) -> str:
    """The kind an index of ``n`` vectors should be, for ``--index-type requested``."""
    if requested != "auto":
        return requested
    return "ivf" if n >= AUTO_IVF_AT else "flat"


def all_vectors(index) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, ids) of any index docqa writes."""
    import faiss

    inner = _inner(index)
    if isinstance(inner, faiss.IndexIVF):
        return _ivf_contents(inner)
    ids = faiss.vector_to_array(faiss.downcast_index(index).id_map).astype(np.int64)
    vecs = inner.reconstruct_n(0, inner.ntotal) if inner.ntotal else np.zeros((0, index.d), dtype=np.float32)
    return np.ascontiguousarray(vecs, dtype=np.float32), ids


def build(kind: str, dim: int, vectors: np.ndarray, ids: np.ndarray) -> tuple[Any, dict]:
    """A new ``IndexIDMap2`` of ``kind`` holding ``vectors`` under ``ids``, and its manifest record."""
    import faiss

    n = len(vectors)
    if kind == "ivf":
        nlist = max(1, min(int(4 * math.sqrt(max(n, 1))), n // 39 if n >= 39 else 1))
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)
        sample = vectors[rng.choice(n, min(n, 64 * nlist), replace=False)] if n else vectors
        ivf.train(sample)
        index = ivf  # stores chunk ids itself
        params = {"type": "ivf", "nlist": nlist, "trained_on": n}
    elif kind == "hnsw":
        hnsw = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = 80
        index = faiss.IndexIDMap2(hnsw)
        params = {"type": "hnsw", "M": 32, "efConstruction": 80}
    else:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        params = {"type": "flat"}
    if n:
        index.add_with_ids(vectors, ids)
    return index, params


def tune(index, params: dict, probes: int = 200) -> dict:
    """Set and record the search parameter (IVF nprobe, HNSW efSearch): the smallest value whose recall@10 against
    exact search reaches ``TARGET_RECALL`` on ``probes`` stored vectors, each nudged off itself."""
    import faiss

    if params["type"] == "flat" or index.ntotal < 20:
        return params
    vecs, ids = all_vectors(index)
    rng = np.random.default_rng(1)
    pick = vecs[rng.choice(len(vecs), min(probes, len(vecs)), replace=False)]
    queries = pick + 0.05 * rng.standard_normal(pick.shape).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact = faiss.IndexFlatIP(index.d)
    exact.add(vecs)
    k = min(10, index.ntotal)
    _, truth = exact.search(queries, k)
    truth = ids[truth]  # positions → chunk ids, what the index itself returns
    settings = [p for p in _NPROBES if p <= params.get("nlist", 1 << 30)] or [1] if params["type"] == "ivf" \
        else (16, 32, 64, 128, 256, 512)
    chosen = settings[-1]
    for value in settings:
        apply_search(index, {**params, "nprobe" if params["type"] == "ivf" else "efSearch": value})
        _, got = index.search(queries, k)
        recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(got, truth, strict=True)]))
        if recall >= TARGET_RECALL:
            chosen = value
            break
    key = "nprobe" if params["type"] == "ivf" else "efSearch"
    params = {**params, key: chosen, "recall_at_10": round(recall, 4)}
    apply_search(index, params)
    return params


def apply_search(index, params: dict) -> None:
    """Put a recorded search parameter back on an opened index."""
    inner = _inner(index)
    if params.get("type") == "ivf" and "nprobe" in params:
        inner.nprobe = int(params["nprobe"])
    elif params.get("type") == "hnsw" and "efSearch" in params:
        inner.hnsw.efSearch = int(params["efSearch"])
