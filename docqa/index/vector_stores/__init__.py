"""Where an index keeps its vectors: a name → implementation registry with one shared interface.

- ``faiss`` (default, embedded): each segment of a version has its own FAISS file (exact, IVF or HNSW by the
  segment's size, :mod:`.vectors`), immutable like the segment, shared between versions by hard link. A search asks
  every segment and merges; deleted files are excluded by an id selector, so no segment is rewritten to delete.
- ``milvus``: one Milvus collection per index, through ``pymilvus`` — Milvus Lite (a file, the same engine embedded;
  the default URI is ``milvus.db`` in the index folder) or a Milvus server or cluster (``--uri http://host:19530``,
  token from ``MILVUS_TOKEN``). Rows are (chunk id, vector, file), so chunk ids, metadata and citations come from the
  same SQLite segments as with FAISS.

The versioned SQLite segments stay the source of truth. A Milvus collection is shared by all versions, so it is
kept consistent with them by construction rather than by a transaction it cannot join:

- a writer *upserts* its new vectors before the version goes live; their ids are above the live version's
  ``next_chunk_id`` and readers filter ``id < next_chunk_id``, so nothing is seen before the commit, and a dead
  writer's rows are overwritten when the next writer reuses those ids;
- deleted files' rows are deleted *after* the new version is live (an older reader must still find them); the ids
  are recorded in the manifest (``pending_deletes``) first, so a writer killed in between leaves work the next writer
  finishes, and readers meanwhile drop any hit whose chunk is not live in their version.

Interface (what :class:`~docqa.index.store.IndexWriter` and :class:`~docqa.index.store.IndexStore` call):
``spec`` (the manifest record), ``write_segment(folder, segment, vectors, ids, files, index_type) -> (file | None,
params)``, ``segment_vectors(path, segment) -> (vectors, ids)`` for merges, ``commit_deletes(ids)``, ``open(path,
segments, dead_ids) -> searcher`` with ``search(query, k) -> [(id, score)]`` and ``ntotal``, ``verify`` hooks, and
``close()``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import ConfigError, IndexCorrupt
from ...registry import Registry
from .faiss_store import FaissSearcher, FaissVectors, faiss_gpus, import_faiss
from .milvus_store import MilvusSearcher, MilvusVectors

__all__ = ["VECTOR_STORES", "FaissSearcher", "FaissVectors", "MilvusSearcher", "MilvusVectors", "faiss_gpus",
           "for_writer", "import_faiss", "vector_store"]

VECTOR_STORES: Registry[type] = Registry("vector store")
VECTOR_STORES.register("faiss", FaissVectors)
VECTOR_STORES.register("milvus", MilvusVectors)


def vector_store(spec: dict[str, Any] | None, *, home: Path, index: str):
    """The vector store a manifest's ``vector_store`` record (or a request) names; FAISS when absent."""
    spec = dict(spec or {"type": "faiss"})
    cls = VECTOR_STORES.get(spec.get("type", "faiss"))
    return cls(spec, home=home, index=index)


def for_writer(index: str, home: Path, version: int, base, requested: dict[str, Any] | None, live: Path | None,
               dim: int):
    """(the store a writer of ``version`` uses, a store whose collection goes once the version is live, or None).

    An existing index keeps its store (only a Milvus ``index_type`` may be asked anew); moving to another store needs
    ``--rebuild``. A new Milvus store gets the collection ``docqa_<index>_v<version>`` unless one is named, so a
    rebuild writes a fresh collection while readers of the old version keep theirs until the new one is live. A
    killed writer's pending deletes are finished here."""
    from ..integrity import read_manifest

    have = dict(base.vector_store or {"type": "faiss"}) if base is not None else None
    if have is not None and requested and requested.get("type", "faiss") != have.get("type", "faiss"):
        raise ConfigError(f"Index '{index}' keeps its vectors in {have['type']}; to move it to "
                          f"{requested.get('type')}, re-ingest with --rebuild.")
    if have is not None:
        spec = {**have, **{k: v for k, v in (requested or {}).items() if k == "index_type"}}
    else:
        spec = dict(requested or {"type": "faiss"})
        if spec.get("type") == "milvus" and not spec.get("collection"):
            spec["collection"] = f"docqa_{''.join(c if c.isalnum() else '_' for c in index)}_v{version}"
    store = vector_store(spec, home=home, index=index)
    if store.external:
        store.ensure(dim)
    if base is not None and base.pending_deletes:  # a killed writer's deletes, finished now
        store.commit_deletes(base.pending_deletes)
    drop_after = None
    if base is None and live is not None:  # --rebuild: the old collection goes once this version is live
        try:
            old = read_manifest(live, index).vector_store
        except IndexCorrupt:
            old = {}
        if old.get("type") == "milvus" and (old.get("uri"), old.get("collection")) != (
                store.spec.get("uri"), store.spec.get("collection")):
            drop_after = vector_store(old, home=home, index=index)
    return store, drop_after
