"""Retrieval: the room between the strategies and the index. The index stores and searches its segments (vectors,
BM25 postings); here they are combined — a retriever finds candidates (:mod:`.retrievers`), a fusion merges dense and
lexical rankings (:mod:`.fusion`), a reranker reorders the best of them (:mod:`.rerank`). rag, auto's first step and
summarize's ``--map-top-k`` selection all ask through :func:`retrieve_many`, so they see the same passages.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..records import Chunk
from .fusion import FUSIONS, rrf, weighted
from .rerank import RERANKERS
from .rerank import parse as parse_rerank
from .retrievers import RETRIEVERS, STOP_WORDS_ONLY, Ranked

__all__ = ["DEFAULT_FUSION_WEIGHT", "DEFAULT_RETRIEVER", "FUSIONS", "RERANKERS", "RETRIEVERS", "STOP_WORDS_ONLY",
           "Ranked", "RetrievalOptions", "Retrieved", "retrieve_many", "rrf", "weighted"]

# The retriever an index uses when neither the question nor the index names one. Hybrid (RRF, the dense ranking
# weighted 0.7, 50 candidates a side) was ahead of dense on both L-Eval sets docqa measures with — financial MRR
# +6.2 [+1.8, +12.5], scientific token recall +4.2 [+1.1, +7.6] at k = 4 — and behind it on neither; BM25 alone and
# score fusion lost on scientific QA (benchmarks/RESULTS.md, "Retrieval as the field builds it").
DEFAULT_RETRIEVER = "hybrid"
DEFAULT_FUSION_WEIGHT = 0.7
DEFAULT_DEPTH = 50  # candidates each arm of hybrid hands to fusion (and the most a reranker may read)


@dataclass
class RetrievalOptions:
    """How passages are found. ``retriever`` None: the one the index records (ingest --retriever), else
    :data:`DEFAULT_RETRIEVER`."""

    retriever: str | None = None
    fusion: str = "rrf"
    fusion_weight: float = DEFAULT_FUSION_WEIGHT  # the dense ranking's share in fusion; 1 − weight is BM25's
    rerank: str | None = None  # "cross-encoder:MODEL", "reader" or None
    rerank_top_n: int = 20  # fused candidates the reranker reads
    depth: int = DEFAULT_DEPTH

    def check(self) -> None:
        """Raise ConfigError naming the bad option (nothing is searched before)."""
        if self.retriever is not None:
            RETRIEVERS.canonical(self.retriever)
        FUSIONS.canonical(self.fusion)
        if not 0.0 <= float(self.fusion_weight) <= 1.0:
            raise ConfigError(f"--fusion-weight is the dense ranking's share, in [0, 1]; got {self.fusion_weight}.")
        parse_rerank(self.rerank)
        if self.rerank_top_n < 1:
            raise ConfigError(f"--rerank-top-n must be at least 1, got {self.rerank_top_n}.")
        if self.depth < 1:
            raise ConfigError(f"The retrieval depth must be at least 1, got {self.depth}.")


@dataclass
class Retrieved:
    """One query's passages, best first, with the seconds of each stage and anything worth saying."""

    chunks: list[tuple[Chunk, float]]
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    retriever: str = "dense"

    @property
    def seconds(self) -> float:
        return sum(self.timings.values())


def resolve(corpus, options: RetrievalOptions) -> tuple[str, list[str]]:
    """(the retriever to use, notes). An index written before lexical postings existed answers a default hybrid or
    bm25 with dense and says so; asked for by name, it is refused (:class:`~docqa.errors.LexicalMissing`)."""
    if options.retriever is not None:
        return RETRIEVERS.canonical(options.retriever), []
    name = RETRIEVERS.canonical(corpus.store.manifest.get("retriever") or DEFAULT_RETRIEVER)
    if name != "dense" and not corpus.store.has_lexical:
        return "dense", [f"index '{corpus.name}' has no lexical index (written by an older docqa): dense retrieval "
                         f"answered; docqa ingest PATH --index {corpus.name} adds it in place, for {name}"]
    return name, []


def retrieve_many(corpus, queries: list[str], k: int, options: RetrievalOptions | None = None) -> list[Retrieved]:
    """The ``k`` best passages for each query: candidates from the retriever, reranked when asked, best first."""
    options = options or RetrievalOptions()
    options.check()
    if not queries:
        return []
    name, notes = resolve(corpus, options)
    rerank = parse_rerank(options.rerank)
    depth = max(k, options.depth if name == "hybrid" else k, options.rerank_top_n if rerank else k)
    ranked = RETRIEVERS.get(name)(corpus, list(queries), depth, options)
    reranker = None
    if rerank is not None:
        reranker = corpus.caches.get(("reranker", options.rerank))
        if reranker is None:
            reranker = corpus.caches[("reranker", options.rerank)] = RERANKERS.get(rerank[0])(corpus, rerank[1])
    out = []
    for q, r in zip(queries, ranked, strict=True):
        ranking = r.ranking
        if reranker is not None and ranking:
            t0 = time.perf_counter()
            head = ranking[:options.rerank_top_n]
            texts = {c.id: c.text for c in corpus.store.chunks([cid for cid, _ in head])}
            scores = reranker.rerank(q, [(cid, texts[cid]) for cid, _ in head])
            ranking = sorted(((cid, s) for (cid, _), s in zip(head, scores, strict=True)),
                             key=lambda kv: (-kv[1], kv[0])) + ranking[options.rerank_top_n:]
            r.timings["rerank"] = time.perf_counter() - t0
        top = ranking[:k]
        chunks = corpus.store.chunks([cid for cid, _ in top])
        out.append(Retrieved([(c, s) for c, (_, s) in zip(chunks, top, strict=True)], r.timings,
                             [*notes, *r.notes], name))
    return out
