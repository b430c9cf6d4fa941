"""A corpus is an opened index together with the models that read it and the work worth keeping between questions.

Strategies receive a :class:`Corpus`; they never open files or load models themselves. Models are loaded on first
use and shared by every corpus in the process; a corpus also holds per-process caches such as the long-context
prefix KV cache (keyed by index content, model and rope plan) so that a second question costs only its own tokens.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .embedder import Embedder, load_embedder, parse_spec
from .errors import DimensionMismatch, EmbedderMismatch, ModelLoadError, first_line
from .generators import Generator, GeneratorConfig, load_generator
from .index.store import IndexStore
from .kv_budget import KVPool, default_budget, parse_bytes
from .records import Chunk


def index_embedder(index: str, name: str, index_dim: int | None) -> Embedder:
    """The embedder ``name`` that index ``index`` was built with, loaded, and checked to make ``index_dim``-d vectors.

    One function for both paths that rely on it: ``ask`` (through :meth:`Corpus.embedder`, before the first search)
    and ``docqa check`` (:func:`docqa.api.check`), so that check cannot call intact what ask then refuses. Raises
    :class:`ModelLoadError` (the model does not load here) or :class:`DimensionMismatch`, each naming the fix."""
    try:
        emb = load_embedder(name)
    except ModelLoadError as e:  # the loader's own fix (--embedder on ingest) is not this one
        raise ModelLoadError(
            f"Index '{index}' was built with embedder '{name}', which does not load here "
            f"({first_line(e.__cause__ or e, 160)}). Make that model available under the same name, or rebuild "
            f"the index with one this machine has: docqa ingest PATH --index {index} --embedder NAME --rebuild"
        ) from e
    if index_dim is not None and int(emb.dim) != int(index_dim):
        raise DimensionMismatch(index, name, int(index_dim), int(emb.dim))
    return emb


@dataclass
class Retrieved:
    chunks: list[tuple[Chunk, float]]
    embed_s: float
    search_s: float


@dataclass
class Corpus:
    store: IndexStore
    generator_config: GeneratorConfig = field(default_factory=GeneratorConfig)
    caches: dict[str, Any] = field(default_factory=dict)  # strategy-owned per-process caches

    @classmethod
    def open(cls, name: str, root: Path, *, embedder: str | None = None,
             generator: GeneratorConfig | None = None) -> Corpus:
        store = IndexStore(name, root)
        if embedder is not None:
            requested = parse_spec(embedder)[0]
            if requested != store.manifest.get("embedder"):
                raise EmbedderMismatch(name, store.manifest.get("embedder", "?"), requested)
        return cls(store, generator or GeneratorConfig())

    @property
    def name(self) -> str:
        return self.store.name

    def generator(self) -> Generator:
        return load_generator(self.generator_config)

    def kv_pool(self, budget: str | int | None = None) -> KVPool:
        """This corpus's kept KV caches (long-context and summarize prefixes), within ``budget`` bytes (``--kv-budget``;
        None: a share of the free memory where the cache lives, see :mod:`docqa.kv_budget`)."""
        pool = self.caches.get("kv_pool")
        if pool is None:
            gen = self.generator()
            size = parse_bytes(budget) if budget is not None else default_budget(str(getattr(gen, "device", "cpu")))
            pool = self.caches["kv_pool"] = KVPool(size)
        elif budget is not None:
            pool.budget = parse_bytes(budget)
        return pool

    def embedder(self) -> Embedder:
        """The index's embedder, loaded and checked once against the vectors it must search (:func:`index_embedder`)."""
        emb = self.caches.get("embedder")
        if emb is None:
            emb = self.caches["embedder"] = index_embedder(self.name, self.store.manifest["embedder"], self.store.dim)
        return emb

    def retrieve(self, question: str, k: int) -> Retrieved:
        """Top-``k`` chunks for ``question`` by cosine similarity, best first."""
        return self.retrieve_many([question], k)[0]

    def retrieve_many(self, questions: list[str], k: int) -> list[Retrieved]:
        """:meth:`retrieve` for several questions, embedded in one batch (the embedding time is shared equally)."""
        out = []
        for hits, embed_s, search_s in self.dense_search(questions, k):
            t1 = time.perf_counter()
            chunks = self.store.chunks([i for i, _ in hits])
            scores = dict(hits)
            out.append(Retrieved([(c, scores[c.id]) for c in chunks], embed_s,
                                 search_s + time.perf_counter() - t1))
        return out

    def dense_search(self, questions: list[str], k: int) -> list[tuple[list[tuple[int, float]], float, float]]:
        """Per question: (top-``k`` (chunk id, cosine) best first, seconds of embedding — one batch, shared equally —
        seconds of search). The dense arm of every retriever (docqa/retrieval) and of :meth:`retrieve_many`."""
        emb = self.embedder()
        t0 = time.perf_counter()
        vecs = emb.embed(list(questions), kind="query")
        embed_s = (time.perf_counter() - t0) / max(1, len(questions))
        out = []
        for vec in vecs:
            t1 = time.perf_counter()
            hits = self.store.search(vec, k)
            out.append(([(int(i), float(s)) for i, s in hits], embed_s, time.perf_counter() - t1))
        return out
