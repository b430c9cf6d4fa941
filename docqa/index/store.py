"""The on-disk index: SQLite for text and metadata, a FAISS file for vectors, a JSON manifest.

Layout of ``indexes/NAME``::

    CURRENT            the name of the live version folder, e.g. "v000004" (replaced atomically)
    v000004/
        index.sqlite   files, documents (full extracted text) and chunks
        vectors.faiss  IndexIDMap2(IndexFlatIP): ids are chunk ids, vectors are unit-norm (inner product = cosine)
        manifest.json  embedder, generator tokenizer, chunk settings, library versions, per-file hashes
    .lock              held while an ingest writes

A write never touches the live version: :class:`IndexWriter` copies it to a new folder, applies the change there in
one SQLite transaction, writes the vectors and manifest, fsyncs, and only then points ``CURRENT`` at it with
``os.replace``. A failure at any step leaves the previous version live and removes the half-written folder.
This module deliberately knows nothing about readers, splitters or embedders.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, IndexCorrupt, IndexNotFound
from ..records import Chunk

FORMAT = 1
KEEP_VERSIONS = 2  # the live one and its predecessor, so a reader that opened the old one can finish

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files(
    name TEXT PRIMARY KEY, sha256 TEXT NOT NULL, size INTEGER, chunks INTEGER, tokens INTEGER, added REAL);
CREATE TABLE IF NOT EXISTS documents(
    file TEXT NOT NULL, part INTEGER NOT NULL, page TEXT, text TEXT NOT NULL, PRIMARY KEY(file, part));
CREATE TABLE IF NOT EXISTS chunks(
    id INTEGER PRIMARY KEY, file TEXT NOT NULL, ordinal INTEGER NOT NULL, text TEXT NOT NULL,
    start_char INTEGER, end_char INTEGER, page TEXT, tokens INTEGER);
CREATE INDEX IF NOT EXISTS chunks_by_file ON chunks(file);
CREATE TABLE IF NOT EXISTS summaries(file TEXT PRIMARY KEY, text TEXT NOT NULL, model TEXT, calls INTEGER);
"""


def valid_name(name: str) -> str:
    """Index names are folder names: letters, digits, '-', '_' and '.', not starting with '.'."""
    ok = name and not name.startswith(".") and all(c.isalnum() or c in "-_." for c in name)
    if not ok:
        raise ConfigError(f"Bad index name '{name}'. Use letters, digits, '-', '_' or '.', e.g. --index handbook")
    return name


def list_indexes(root: Path) -> list[str]:
    """Names of the indexes under ``root``."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "CURRENT").is_file())


@dataclass
class DocumentPart:
    """Extracted text of a file, or of one page of a paged file."""

    file: str
    part: int
    page: str | None
    text: str


class IndexStore:
    """A read-only view of one version of an index."""

    def __init__(self, name: str, root: Path):
        self.name, self.root = valid_name(name), Path(root)
        home = self.root / name
        current = home / "CURRENT"
        if not current.is_file():
            raise IndexNotFound(name, str(self.root), list_indexes(self.root))
        self.path = home / current.read_text().strip()
        try:
            self.manifest: dict[str, Any] = json.loads((self.path / "manifest.json").read_text())
            self.db = sqlite3.connect(f"file:{self.path / 'index.sqlite'}?mode=ro", uri=True, check_same_thread=False)
        except (OSError, ValueError, sqlite3.Error) as e:
            raise IndexCorrupt(
                f"Index '{name}' at {self.path} is unreadable ({e}). Rebuild it: docqa ingest PATH --index {name} "
                f"--rebuild"
            ) from e
        self._faiss = None

    # -------------------------------------------------------------------------------------------------- facts
    @property
    def version(self) -> int:
        return int(self.manifest["version"])

    @property
    def content_id(self) -> str:
        """Changes whenever the indexed content or chunking changes (used to invalidate caches)."""
        return str(self.manifest["content_id"])

    def file_names(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT name FROM files ORDER BY name")]

    def documents(self) -> list[DocumentPart]:
        """Every file's extracted text, in a stable order (file name, then page)."""
        rows = self.db.execute("SELECT file, part, page, text FROM documents ORDER BY file, part")
        return [DocumentPart(*r) for r in rows]

    def summaries(self) -> dict[str, str]:
        """Per-document summaries written by ``ingest --summaries`` (file → summary), in file order."""
        try:
            return dict(self.db.execute("SELECT file, text FROM summaries ORDER BY file"))
        except sqlite3.OperationalError:  # an index written before summaries existed
            return {}

    def chunk_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])

    def chunks(self, ids: list[int] | None = None) -> list[Chunk]:
        """Chunks by id (in the order asked), or all chunks in document order."""
        cols = "id, file, ordinal, text, start_char, end_char, page, tokens"
        if ids is None:
            return [Chunk(*r) for r in self.db.execute(f"SELECT {cols} FROM chunks ORDER BY file, ordinal")]
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        found = {r[0]: Chunk(*r) for r in self.db.execute(f"SELECT {cols} FROM chunks WHERE id IN ({marks})", ids)}
        return [found[i] for i in ids if i in found]

    # -------------------------------------------------------------------------------------------------- search
    @property
    def faiss_index(self):
        if self._faiss is None:
            import faiss

            try:
                self._faiss = faiss.read_index(str(self.path / "vectors.faiss"))
            except RuntimeError as e:
                raise IndexCorrupt(f"Vectors of index '{self.name}' are unreadable: {e}") from e
        return self._faiss

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Top-``k`` (chunk id, cosine similarity) for one unit-norm query vector, best first."""
        index = self.faiss_index
        k = min(k, index.ntotal)
        if k <= 0:
            return []
        scores, ids = index.search(np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32), k)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i != -1]


class IndexWriter:
    """Builds the next version of an index beside the live one and swaps it in on :meth:`commit`."""

    def __init__(self, name: str, root: Path, *, dim: int, rebuild: bool = False):
        self.name, self.root = valid_name(name), Path(root)
        self.home = self.root / name
        self.home.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.home / ".lock", "w")  # noqa: SIM115 - held for the writer's lifetime
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            self._lock_file.close()
            raise ConfigError(
                f"Index '{name}' is being written by another docqa process; try again when it ends."
            ) from e
        current = self.home / "CURRENT"
        self.previous: Path | None = None
        if current.is_file() and not rebuild:
            self.previous = self.home / current.read_text().strip()
        self.old_manifest: dict[str, Any] = {}
        if self.previous is not None:
            self.old_manifest = json.loads((self.previous / "manifest.json").read_text())
        self.version = int(self.old_manifest.get("version", self._last_version())) + 1
        self.path = self.home / f"v{self.version:06d}"
        self.tmp = self.home / f".tmp-v{self.version:06d}-{os.getpid()}"
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir()
        if self.previous is not None:
            shutil.copy2(self.previous / "index.sqlite", self.tmp / "index.sqlite")
        self.db = sqlite3.connect(self.tmp / "index.sqlite")
        self.db.executescript(_SCHEMA)
        import faiss

        if self.previous is not None:
            self.vectors = faiss.read_index(str(self.previous / "vectors.faiss"))
            if self.vectors.d != dim:
                raise IndexCorrupt(f"Index '{name}' holds {self.vectors.d}-d vectors; the embedder makes {dim}-d.")
        else:
            self.vectors = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self.db.execute("BEGIN")

    def _last_version(self) -> int:
        versions = [int(p.name[1:]) for p in self.home.glob("v[0-9]*") if p.name[1:].isdigit()]
        return max(versions, default=0)

    def file_hashes(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT name, sha256 FROM files"))

    def remove_file(self, name: str) -> None:
        ids = [r[0] for r in self.db.execute("SELECT id FROM chunks WHERE file = ?", (name,))]
        if ids:
            self.vectors.remove_ids(np.asarray(ids, dtype=np.int64))
        self.db.execute("DELETE FROM chunks WHERE file = ?", (name,))
        self.db.execute("DELETE FROM documents WHERE file = ?", (name,))
        self.db.execute("DELETE FROM summaries WHERE file = ?", (name,))
        self.db.execute("DELETE FROM files WHERE name = ?", (name,))

    def add_file(
        self, name: str, sha256: str, size: int, parts: list[DocumentPart], chunks: list[Chunk], vectors: np.ndarray
    ) -> None:
        """Insert one file's documents, chunks and vectors (chunk ids are assigned here)."""
        self.remove_file(name)
        next_id = int(self.db.execute("SELECT COALESCE(MAX(id), 0) FROM chunks").fetchone()[0]) + 1
        next_id = max(next_id, int(self.old_manifest.get("next_chunk_id", 1)))
        ids = np.arange(next_id, next_id + len(chunks), dtype=np.int64)
        self.db.executemany(
            "INSERT INTO documents(file, part, page, text) VALUES (?, ?, ?, ?)",
            [(name, p.part, p.page, p.text) for p in parts],
        )
        self.db.executemany(
            "INSERT INTO chunks(id, file, ordinal, text, start_char, end_char, page, tokens) VALUES (?,?,?,?,?,?,?,?)",
            [(int(i), name, c.ordinal, c.text, c.start_char, c.end_char, c.page, c.tokens)
             for i, c in zip(ids, chunks)],
        )
        self.db.execute(
            "INSERT INTO files(name, sha256, size, chunks, tokens, added) VALUES (?, ?, ?, ?, ?, ?)",
            (name, sha256, size, len(chunks), sum(c.tokens for c in chunks), time.time()),
        )
        if len(chunks):
            self.vectors.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        self.old_manifest["next_chunk_id"] = int(next_id + len(chunks))

    def files_without_summary(self) -> list[str]:
        return [r[0] for r in self.db.execute(
            "SELECT name FROM files WHERE name NOT IN (SELECT file FROM summaries) ORDER BY name")]

    def document_parts(self, name: str) -> list[DocumentPart]:
        rows = self.db.execute("SELECT file, part, page, text FROM documents WHERE file = ? ORDER BY part", (name,))
        return [DocumentPart(*r) for r in rows]

    def set_summary(self, name: str, text: str, model: str, calls: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO summaries(file, text, model, calls) VALUES (?, ?, ?, ?)",
                        (name, text, model, calls))

    def commit(self, manifest: dict[str, Any]) -> Path:
        """Write everything, then make this version live atomically. Returns the version folder."""
        import faiss

        self.db.commit()
        files = dict(self.db.execute("SELECT name, sha256 FROM files ORDER BY name"))
        chunks, tokens = self.db.execute("SELECT COUNT(*), COALESCE(SUM(tokens), 0) FROM chunks").fetchone()
        self.db.close()
        faiss.write_index(self.vectors, str(self.tmp / "vectors.faiss"))
        settings = {k: manifest.get(k) for k in ("embedder", "tokenizer", "chunk_tokens", "overlap")}
        content = hashlib.sha256(json.dumps([files, settings], sort_keys=True).encode()).hexdigest()[:16]
        now = time.time()
        manifest = {
            **manifest,
            "format": FORMAT,
            "name": self.name,
            "version": self.version,
            "created": self.old_manifest.get("created", now),
            "updated": now,
            "files": files,
            "chunks": int(chunks),
            "tokens": int(tokens),
            "content_id": content,
            "next_chunk_id": int(self.old_manifest.get("next_chunk_id", 1)),
        }
        _write_atomic(self.tmp / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True))
        for f in self.tmp.iterdir():
            _fsync(f)
        os.replace(self.tmp, self.path)
        _write_atomic(self.home / "CURRENT", self.path.name)
        self._prune()
        self._release()
        return self.path

    def abort(self) -> None:
        """Drop the unfinished version; the live one is untouched."""
        with contextlib.suppress(Exception):
            self.db.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        if not (self.home / "CURRENT").exists() and not any(self.home.glob("v[0-9]*")):
            shutil.rmtree(self.home, ignore_errors=True)  # a first ingest that failed leaves nothing behind
        self._release()

    def _prune(self) -> None:
        versions = sorted(p for p in self.home.glob("v[0-9]*") if p.is_dir())
        for old in versions[:-KEEP_VERSIONS]:
            shutil.rmtree(old, ignore_errors=True)

    def _release(self) -> None:
        with contextlib.suppress(Exception):
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()


@contextlib.contextmanager
def writing(name: str, root: Path, *, dim: int, rebuild: bool = False) -> Iterator[IndexWriter]:
    """``with writing(...) as w:`` — the caller must call ``w.commit(manifest)``; any exception aborts."""
    writer = IndexWriter(name, root, dim=dim, rebuild=rebuild)
    try:
        yield writer
    except BaseException:
        writer.abort()
        raise
    if writer.tmp.exists():  # the body returned without committing
        writer.abort()


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
