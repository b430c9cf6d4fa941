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

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DocQAError, IndexCorrupt
from ..registry import Registry
from .integrity import Segment, load_vectors
from .vectors import apply_search, build, kind_of, tune, wanted


def import_faiss():
    """faiss, or one line naming the extra to install (it is an extra so that ``[gpu]`` can replace ``[cpu]``)."""
    try:
        import faiss
    except ImportError as e:
        raise ConfigError("FAISS is not installed. Install docqa with one of its FAISS builds: "
                          "pip install 'docqa[cpu]' (or 'docqa[gpu]' on a CUDA machine).") from e
    return faiss


def faiss_gpus() -> int:
    """GPUs FAISS can use: 0 unless a GPU build of faiss is installed and CUDA devices are visible."""
    faiss = import_faiss()
    get = getattr(faiss, "get_num_gpus", None)
    try:
        return int(get()) if get else 0
    except RuntimeError:
        return 0


class FaissSearcher:
    """Top-k over a version's FAISS segments, excluding deleted chunks."""

    def __init__(self, indexes: list[tuple[Any, np.ndarray]]):
        faiss = import_faiss()
        self.indexes = []
        for index, dead in indexes:
            if index is None:
                continue
            params = None
            if len(dead):
                # The selector object must outlive the searches: keep it with its parameters.
                sel = faiss.IDSelectorNot(faiss.IDSelectorBatch(np.ascontiguousarray(dead, dtype=np.int64)))
                kind = kind_of(index)
                inner = faiss.downcast_index(index if kind == "ivf" else faiss.downcast_index(index).index)
                if kind == "ivf":
                    params = faiss.SearchParametersIVF(sel=sel, nprobe=int(inner.nprobe))
                elif kind == "hnsw":
                    params = faiss.SearchParametersHNSW(sel=sel, efSearch=int(inner.hnsw.efSearch))
                else:
                    params = faiss.SearchParameters(sel=sel)
                params._keep = sel  # noqa: SLF001 - SWIG does not keep the selector alive by itself
            # GPU indexes take no id selector: a segment with deletions searches on the CPU
            self.indexes.append((index if params is not None else self._maybe_gpu(index), params,
                                 index.ntotal - len(dead)))
        self.ntotal = sum(n for *_, n in self.indexes)

    @staticmethod
    def _maybe_gpu(index):
        """Exact and IVF segments go to the GPUs when a GPU build of faiss sees any (the ``[gpu]`` extra); a
        segment FAISS cannot move stays on the CPU."""
        if os.environ.get("DOCQA_FAISS_GPU", "1") == "0" or index.ntotal < 10_000 or not faiss_gpus():
            return index
        faiss = import_faiss()
        try:
            return faiss.index_cpu_to_all_gpus(index)
        except (RuntimeError, AttributeError):
            return index

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        hits: list[tuple[int, float]] = []
        for index, params, live in self.indexes:
            n = min(k, live)
            if n <= 0:
                continue
            scores, ids = index.search(q, n, params=params) if params is not None else index.search(q, n)
            hits += [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i != -1]
        hits.sort(key=lambda h: (-h[1], h[0]))
        return hits[:k]

    def vectors_of(self) -> list[Any]:
        return [index for index, *_ in self.indexes]


class FaissVectors:
    """Vectors in one FAISS file per segment (default). Embedded: no server; the index kind follows the segment's
    size (exact below 50 000 vectors, IVF above; ``--index-type`` overrides)."""

    name = "faiss"
    external = False

    def __init__(self, spec: dict[str, Any] | None = None, *, home: Path | None = None, index: str = ""):
        import_faiss()  # the first use of FAISS anywhere: a missing build is one line naming the extra
        self.index = index
        self.spec = {"type": "faiss"}

    def write_segment(self, folder: Path, seg: str, vectors: np.ndarray, ids: np.ndarray, files: list[str],
                      index_type: str) -> tuple[str | None, dict[str, Any]]:
        faiss = import_faiss()
        dim = vectors.shape[1]
        index, params = build(wanted(index_type, len(ids)), dim, np.ascontiguousarray(vectors, dtype=np.float32),
                              np.ascontiguousarray(ids, dtype=np.int64))
        if params["type"] != "flat":
            params = {**tune(index, params), "tuned_at": int(index.ntotal)}
        name = f"{seg}.faiss"
        faiss.write_index(index, str(folder / name))
        return name, params

    def segment_vectors(self, path: Path, seg: Segment) -> tuple[np.ndarray, np.ndarray]:
        from .vectors import all_vectors

        return all_vectors(load_vectors(path, self.index, seg))

    def load(self, path: Path, seg: Segment):
        if seg.faiss is None:  # a segment with summaries only
            return None
        index = load_vectors(path, self.index, seg)
        apply_search(index, seg.vector_index)
        return index

    def searcher(self, loaded: list[tuple[Any, np.ndarray]], *, next_chunk_id: int, live: int = 0,
                 exclude: int = 0) -> FaissSearcher:
        return FaissSearcher(loaded)  # deleted chunks are excluded per segment by the selectors

    def commit_deletes(self, ids: list[int]) -> None:  # FAISS segments are immutable: deletes are tombstones
        return None

    def close(self) -> None:
        return None


class MilvusSearcher:
    """Top-k from a Milvus collection, limited to the ids a version has committed."""

    def __init__(self, store: MilvusVectors, next_chunk_id: int, ntotal: int, exclude: int):
        self.store, self.next_chunk_id, self.ntotal, self.exclude = store, next_chunk_id, ntotal, exclude

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        # Over-fetch by what may still be in the collection without being live here (deleted files whose rows go
        # after the commit); the store drops those hits.
        limit = max(1, min(16_384, k + self.exclude))
        return self.store.search(query, limit, f"id < {int(self.next_chunk_id)}")


class MilvusVectors:
    """Vectors in a Milvus collection (``pymilvus``): Milvus Lite in a file, or a Milvus server or cluster.

    One collection per index, named ``docqa_<index>`` unless given; FLAT index with inner product (cosine on
    docqa's unit vectors) unless the spec names another Milvus index type (e.g. ``HNSW`` or ``IVF_FLAT`` on a
    cluster). The token for a secured server comes from ``MILVUS_TOKEN`` and is never written to disk."""

    name = "milvus"
    external = True

    def __init__(self, spec: dict[str, Any] | None = None, *, home: Path | None = None, index: str = ""):
        spec = dict(spec or {})
        uri = spec.get("uri") or (str(Path(home) / "milvus.db") if home is not None else None)
        if not uri:
            raise ConfigError("--vector-store milvus needs --uri (a Milvus server, e.g. http://localhost:19530, or a "
                              "Milvus Lite file path).")
        if "://" not in uri and not uri.endswith(".db"):
            raise ConfigError(f"--uri '{uri}' is neither a server address (http://host:19530) nor a Milvus Lite file "
                              f"(a path ending in .db).")
        collection = spec.get("collection") or "docqa_" + "".join(c if c.isalnum() else "_" for c in index)
        self.index = index
        self.spec = {"type": "milvus", "uri": uri, "collection": collection,
                     "index_type": spec.get("index_type", "FLAT")}
        self._client = None
        self._loaded = False

    # ------------------------------------------------------------------------------------------------ connection
    @property
    def client(self):
        if self._client is None:
            try:
                from pymilvus import MilvusClient
            except ImportError as e:
                raise ConfigError("The Milvus vector store needs pymilvus: pip install 'docqa[milvus]' for a Milvus "
                                  "server, or 'docqa[milvus-lite]' for a local file.") from e
            uri = self.spec["uri"]
            lite = "://" not in uri
            if lite:
                import importlib.util

                if importlib.util.find_spec("milvus_lite") is None:
                    raise ConfigError(f"The Milvus Lite file {uri} needs milvus-lite: pip install "
                                      f"'docqa[milvus-lite]', or point --uri at a Milvus server.")
                Path(uri).parent.mkdir(parents=True, exist_ok=True)
            try:
                self._client = MilvusClient(uri=uri, token=os.environ.get("MILVUS_TOKEN", ""))
            except Exception as e:  # pymilvus raises MilvusException / grpc errors / ConnectionError
                if lite:
                    raise DocQAError(f"Cannot open the Milvus Lite file {uri} ({_reason(e)}). Either it is not a "
                                     f"Milvus Lite database (point --uri at a new .db path), or another process "
                                     f"holds it: Milvus Lite serves one process at a time, so close the other docqa "
                                     f"process or run a Milvus server (--uri http://host:19530).") from e
                raise DocQAError(f"Cannot connect to Milvus at {uri} ({_reason(e)}). Start the server, check --uri "
                                 f"and MILVUS_TOKEN, or use --vector-store faiss.") from e
            if lite:
                key = str(Path(uri).resolve())
                _LITE_USERS[key] = _LITE_USERS.get(key, 0) + 1
        return self._client

    def _call(self, what: str, fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except DocQAError:
            raise
        except Exception as e:
            raise DocQAError(f"Milvus at {self.spec['uri']} failed to {what} in collection "
                             f"'{self.spec['collection']}' ({_reason(e)}). The index's SQLite versions are "
                             f"unchanged; retry, or re-ingest with --rebuild.") from e

    def ensure(self, dim: int) -> None:
        """Create the collection (id, vector, file) when missing; refuse one of another dimension."""
        from pymilvus import DataType, MilvusClient

        name, c = self.spec["collection"], self.client
        if self._call("list collections", c.has_collection, name):
            have = self.dim()
            if have is not None and have != dim:
                raise ConfigError(f"Milvus collection '{name}' holds {have}-d vectors; this embedder makes {dim}-d. "
                                  f"Use another --collection or --rebuild.")
            return
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("file", DataType.VARCHAR, max_length=4096)
        params = c.prepare_index_params()
        params.add_index(field_name="vector", index_type=self.spec["index_type"], metric_type="IP")
        self._call("create the collection", c.create_collection, name, schema=schema, index_params=params)

    def dim(self) -> int | None:
        info = self._call("describe the collection", self.client.describe_collection, self.spec["collection"])
        for f in info.get("fields", []):
            if f.get("name") == "vector":
                return int(f.get("params", {}).get("dim"))
        return None

    def drop(self) -> None:
        c = self.client
        if self._call("list collections", c.has_collection, self.spec["collection"]):
            self._call("drop the collection", c.drop_collection, self.spec["collection"])

    def sweep(self, referenced: set[str]) -> list[str]:
        """Drop the collections docqa named for this index (``docqa_<index>_v<N>``) on this server that no version
        on disk references: what a ``--rebuild`` killed before its version went live left behind. Collections a user
        named are never touched. Returns the names dropped."""
        stem = "docqa_" + "".join(c if c.isalnum() else "_" for c in self.index) + "_v"
        names = self._call("list collections", self.client.list_collections)
        orphans = [n for n in names if n.startswith(stem) and n[len(stem):].isdigit() and n not in referenced]
        for name in orphans:
            self._call("drop an orphaned collection", self.client.drop_collection, name)
        return orphans

    # ------------------------------------------------------------------------------------------------ writes
    def write_segment(self, folder: Path, seg: str, vectors: np.ndarray, ids: np.ndarray, files: list[str],
                      index_type: str) -> tuple[str | None, dict[str, Any]]:
        self.ensure(int(vectors.shape[1]))
        batch = 2048
        for i in range(0, len(ids), batch):
            rows = [{"id": int(j), "vector": v.tolist(), "file": f[:4096]}
                    for j, v, f in zip(ids[i:i + batch], vectors[i:i + batch], files[i:i + batch])]
            self._call("upsert vectors", self.client.upsert, self.spec["collection"], rows)
        return None, {"type": "milvus"}

    def segment_vectors(self, path: Path, seg: Segment) -> tuple[np.ndarray, np.ndarray]:
        raise AssertionError("Milvus rows survive merges: merges never read them")  # pragma: no cover

    def commit_deletes(self, ids: list[int]) -> None:
        for i in range(0, len(ids), 8192):
            self._call("delete vectors", self.client.delete, self.spec["collection"], ids=[int(x) for x in
                                                                                            ids[i:i + 8192]])

    # ------------------------------------------------------------------------------------------------ reads
    def _load(self) -> None:
        """Milvus searches only collections loaded into memory; a reopened one starts released."""
        if not self._loaded:
            self._call("load the collection", self.client.load_collection, self.spec["collection"])
            self._loaded = True

    def count(self, next_chunk_id: int) -> int:
        self._load()
        res = self._call("count rows", self.client.query, self.spec["collection"],
                         filter=f"id < {int(next_chunk_id)}", output_fields=["count(*)"], consistency_level="Strong")
        return int(res[0]["count(*)"]) if res else 0

    def search(self, query: np.ndarray, limit: int, where: str) -> list[tuple[int, float]]:
        self._load()
        res = self._call("search", self.client.search, self.spec["collection"],
                         data=[np.asarray(query, dtype=np.float32).reshape(-1).tolist()], limit=limit, filter=where,
                         output_fields=["file"], consistency_level="Strong", search_params={"metric_type": "IP"})
        return [(int(h["id"]), float(h["distance"])) for h in (res[0] if res else [])]

    def load(self, path: Path, seg: Segment):
        return None

    def searcher(self, loaded: list[tuple[Any, np.ndarray]], *, next_chunk_id: int, live: int = 0,
                 exclude: int = 0) -> MilvusSearcher:
        c = self.client
        if not self._call("list collections", c.has_collection, self.spec["collection"]):
            if live == 0:
                return MilvusSearcher(self, next_chunk_id, 0, 0)
            raise IndexCorrupt(f"Index '{self.index}' is damaged: its Milvus collection "
                               f"'{self.spec['collection']}' at {self.spec['uri']} does not exist. Nothing was read "
                               f"from it. Rebuild it from your documents: docqa ingest PATH --index {self.index} "
                               f"--rebuild")
        return MilvusSearcher(self, next_chunk_id, live, exclude)

    def close(self) -> None:
        """Close the connection; for Milvus Lite, stop its in-process server once no store in this process uses the
        file, so that another process (the next ingest) can open it."""
        if self._client is None:
            return
        try:
            self._client.close()
        except Exception:  # noqa: BLE001 - closing a dead connection is not an error worth reporting
            pass
        self._client, self._loaded = None, False
        uri = self.spec["uri"]
        if "://" in uri:
            return
        key = str(Path(uri).resolve())
        _LITE_USERS[key] = _LITE_USERS.get(key, 1) - 1
        if _LITE_USERS[key] <= 0:
            _LITE_USERS.pop(key, None)
            try:
                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(key)
            except Exception:  # noqa: BLE001 - an older milvus-lite without release: it ends with the process
                pass


_LITE_USERS: dict[str, int] = {}  # Milvus Lite file → open stores in this process (its server is in-process)


def _reason(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]


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
    from .integrity import read_manifest

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
