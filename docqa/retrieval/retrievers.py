"""Retrievers: how candidates are found. A name → function registry with one signature:
``fn(corpus, queries, depth, options) -> [Ranked]``, one per query, each at most ``depth`` chunk ids best first.

- ``dense``: the index's embedder and vector store (cosine).
- ``bm25``: the lexical index kept in the index's segments (docqa/index/lexical.py), exact BM25 over the live corpus.
- ``hybrid``: both, ``depth`` candidates each, merged by a fusion (docqa/retrieval/fusion.py) with the dense
  ranking's weight ``fusion_weight``.

A query with no searchable word (only stop words) has no lexical ranking: bm25 and hybrid then answer with dense
alone and say so in the result's notes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..registry import Registry
from .fusion import FUSIONS

STOP_WORDS_ONLY = "the query holds only stop words, so BM25 has nothing to search; dense retrieval alone answered"


@dataclass
class Ranked:
    """One query's candidates, best first, with the seconds each stage took."""

    ranking: list[tuple[int, float]]
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def dense(corpus, queries: list[str], depth: int, options) -> list[Ranked]:
    """Cosine similarity of the query's embedding to each chunk's (the index's embedder)."""
    return [Ranked(hits, {"embed": embed_s, "search": search_s})
            for hits, embed_s, search_s in corpus.dense_search(queries, depth)]


def _lexical(corpus, query: str, depth: int) -> tuple[list[tuple[int, float]] | None, float]:
    """(BM25 ranking, seconds); None where the query has no searchable word."""
    t0 = time.perf_counter()
    hit = corpus.store.search_lexical(query, depth)
    ranking = [(int(i), float(s)) for i, s in zip(hit.ids, hit.scores, strict=True)] if hit.terms else None
    return ranking, time.perf_counter() - t0


def bm25(corpus, queries: list[str], depth: int, options) -> list[Ranked]:
    """Okapi BM25 (Lucene's variant, k1 1.2, b 0.75) over stemmed words without stop words."""
    out: list[Ranked | None] = []
    fallback = []
    for i, q in enumerate(queries):
        ranking, s = _lexical(corpus, q, depth)
        if ranking is None:
            fallback.append(i)
            out.append(None)
        else:
            out.append(Ranked(ranking, {"lexical": s}))
    if fallback:
        for i, r in zip(fallback, dense(corpus, [queries[i] for i in fallback], depth, options), strict=True):
            r.notes.append(STOP_WORDS_ONLY)
            out[i] = r
    return out  # type: ignore[return-value]


def hybrid(corpus, queries: list[str], depth: int, options) -> list[Ranked]:
    """Dense and BM25 candidates (``depth`` each) fused by ``options.fusion`` with weight ``options.fusion_weight``
    on the dense side."""
    fuse = FUSIONS.get(options.fusion)
    out = []
    for q, d in zip(queries, dense(corpus, queries, depth, options), strict=True):
        lexical, s = _lexical(corpus, q, depth)
        d.timings["lexical"] = s
        if lexical is None:
            d.notes.append(STOP_WORDS_ONLY)
            out.append(d)
            continue
        t0 = time.perf_counter()
        fused = fuse(d.ranking, lexical, options.fusion_weight)[:depth]
        d.timings["fuse"] = time.perf_counter() - t0
        out.append(Ranked(fused, d.timings, d.notes))
    return out


RETRIEVERS: Registry = Registry("retriever")
RETRIEVERS.register("dense", dense, aliases=("vector", "faiss"))
RETRIEVERS.register("bm25", bm25, aliases=("lexical", "sparse"))
RETRIEVERS.register("hybrid", hybrid, aliases=("fusion",))
