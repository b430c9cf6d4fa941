"""The ``milvus`` vector store: one Milvus collection per index through ``pymilvus`` (Milvus Lite in a file, or a
server or cluster). How it stays consistent with the versioned SQLite segments is in the package's docstring."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError, DocQAError, IndexCorrupt
from ..integrity import Segment


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
