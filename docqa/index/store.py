"""The on-disk index: SQLite for text and metadata, a FAISS file for vectors, a JSON manifest.

Layout of ``indexes/NAME``::

    CURRENT            the name of the live version folder, e.g. "v000004" (replaced atomically)
    v000004/
        index.sqlite   files, documents (full extracted text) and chunks
        vectors.faiss  IndexIDMap2 over exact search, or IVF from 50 000 chunks (index/vectors.py): ids are chunk ids,
                       vectors are unit-norm (inner product = cosine)
        manifest.json  embedder, tokenizer, chunk settings, per-file hashes, checksums and sizes of the two files
    .lock              held while an ingest writes

A write never touches the live version: :class:`IndexWriter` copies it to a temp folder, applies the change there in
one SQLite transaction, writes the vectors and manifest, fsyncs, renames the folder to its version name and only
then points ``CURRENT`` at it with ``os.replace``. A failure at any step leaves the previous version live.

Recovery is done by the next writer, under the lock, before it reads anything: temp folders of dead writers are
removed, and so is a version folder newer than ``CURRENT`` (a writer killed between its rename and the ``CURRENT``
update: that ingest never reported success). A writer verifies its base version fully (:mod:`.integrity`) and
refuses to build on a damaged one.

Readers hold a shared ``flock`` on their version folder for their lifetime; pruning skips any version so held, so a
writer never removes files from under a reader. This module knows nothing about readers, splitters or embedders.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, IndexCorrupt, IndexNotFound, IndexWriteError
from ..records import Chunk
from .integrity import CheckReport, Manifest, corrupt, file_facts, load_vectors, read_manifest, verify
from .vectors import RETRAIN_GROWTH, all_vectors, apply_search, build, check_type, kind_of, remove, tune, wanted

FORMAT = 2  # 2: checksums and sizes in the manifest
KEEP_VERSIONS = 2  # the live one and its predecessor; older ones go unless a reader still holds them
MAX_NAME = 100  # an index name is a folder name; 255 bytes is the usual limit, and we add suffixes
_VERSION = re.compile(r"^v\d{6}$")

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
    """Index names are folder names: letters, digits, '-', '_' and '.', not starting with '.', at most 100 long."""
    ok = bool(name) and not name.startswith(".") and all(c.isascii() and (c.isalnum() or c in "-_.") for c in name)
    if not ok:
        shown = name if len(name) <= 60 else name[:57] + "..."
        raise ConfigError(f"Bad index name '{shown}'. Use letters, digits, '-', '_' or '.', e.g. --index handbook")
    if len(name) > MAX_NAME:
        raise ConfigError(f"Index name '{name[:40]}...' is {len(name)} characters long; use at most {MAX_NAME}.")
    return name


def valid_root(root: Path) -> Path:
    """The folder of indexes: it may not exist yet, but it may not be a file."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--root '{root}' is a file, not a folder. Point --root at a folder of indexes "
                          f"(it is created when missing).")
    return root


def list_indexes(root: Path) -> list[str]:
    """Names of the indexes under ``root``."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "CURRENT").is_file())


def live_version(home: Path, index: str) -> Path | None:
    """The version folder ``CURRENT`` names, or None when there is no ``CURRENT``. ``CURRENT`` is data, not a path:
    it must name a version folder (``v`` and six digits) directly inside the index."""
    try:
        raw = (home / "CURRENT").read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise corrupt(index, f"CURRENT is unreadable ({e.strerror})") from e
    name = raw.decode("ascii", "replace").strip()
    if not _VERSION.match(name):
        raise corrupt(index, f"CURRENT holds {name[:40]!r}, not a version name like v000001")
    path = home / name
    if not path.is_dir():
        raise corrupt(index, f"CURRENT names {name}, which does not exist")
    return path


def read_live_manifest(name: str, root: Path) -> Manifest:
    """The live version's manifest alone (no data files opened): for listings and for picking an embedder."""
    valid_name(name)
    path = live_version(valid_root(root) / name, name)
    if path is None:
        raise IndexNotFound(name, str(root), list_indexes(root))
    return read_manifest(path, name)


@dataclass
class DocumentPart:
    """Extracted text of a file, or of one page of a paged file."""

    file: str
    part: int
    page: str | None
    text: str


def open_version(path: Path, index: str):
    """(manifest, read-only SQLite connection, FAISS index) of one version folder, every failure an
    :class:`IndexCorrupt`. Nothing is verified beyond readability and the FAISS checksum; see :func:`verify`."""
    manifest = read_manifest(path, index)
    if not (path / "index.sqlite").is_file():
        raise corrupt(index, f"{path.name}/index.sqlite is missing")
    vectors = load_vectors(path, index, manifest)
    apply_search(vectors, manifest.vector_index)
    try:
        db = sqlite3.connect(f"file:{path / 'index.sqlite'}?mode=ro", uri=True, check_same_thread=False)
    except sqlite3.Error as e:
        raise corrupt(index, f"{path.name}/index.sqlite cannot be opened ({e})") from e
    return manifest, db, vectors


def _shared_lock(path: Path) -> int:
    """A shared flock on a version folder, held by a reader: pruning skips folders so held."""
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


class IndexStore:
    """A read-only view of one version of an index, verified when opened and held until :meth:`close`."""

    def __init__(self, name: str, root: Path):
        self.name, self.root = valid_name(name), valid_root(Path(root))
        home = self.root / name
        for attempt in range(3):  # a writer may prune the version between reading CURRENT and locking it
            path = live_version(home, name)
            if path is None:
                raise IndexNotFound(name, str(self.root), list_indexes(self.root))
            try:
                self._fd = _shared_lock(path)
            except FileNotFoundError:
                if attempt == 2:
                    raise
                continue
            if (path / "manifest.json").exists():
                break
            os.close(self._fd)
        self.path = path
        try:
            self._manifest, self.db, self.faiss_index = open_version(path, name)
            self.manifest: dict[str, Any] = self._manifest.model_dump()
            verify(path, name, self._manifest, self.db, self.faiss_index, full=False)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the version (its files may be pruned by a later writer)."""
        with contextlib.suppress(Exception):
            self.db.close()
        fd, self._fd = getattr(self, "_fd", None), None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __del__(self) -> None:
        self.close()

    def _rows(self, sql: str, args: tuple | list = ()) -> list[tuple]:
        try:
            return self.db.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as e:  # a damaged file that passed the cheap open check (very large index)
            raise corrupt(self.name, f"{self.path.name}/index.sqlite is unreadable ({e})") from e

    # -------------------------------------------------------------------------------------------------- facts
    @property
    def version(self) -> int:
        return int(self.manifest["version"])

    @property
    def content_id(self) -> str:
        """Changes whenever the indexed content or chunking changes (used to invalidate caches)."""
        return str(self.manifest["content_id"])

    def file_names(self) -> list[str]:
        return [r[0] for r in self._rows("SELECT name FROM files ORDER BY name")]

    def documents(self) -> list[DocumentPart]:
        """Every file's extracted text, in a stable order (file name, then page)."""
        rows = self._rows("SELECT file, part, page, text FROM documents ORDER BY file, part")
        return [DocumentPart(*r) for r in rows]

    def summaries(self) -> dict[str, str]:
        """Per-document summaries written by ``ingest --summaries`` (file → summary), in file order."""
        try:
            return dict(self.db.execute("SELECT file, text FROM summaries ORDER BY file"))
        except sqlite3.OperationalError:  # an index written before summaries existed
            return {}

    def chunk_count(self) -> int:
        return int(self._rows("SELECT COUNT(*) FROM chunks")[0][0])

    def chunks(self, ids: list[int] | None = None) -> list[Chunk]:
        """Chunks by id (in the order asked), or all chunks in document order."""
        cols = "id, file, ordinal, text, start_char, end_char, page, tokens"
        if ids is None:
            return [Chunk(*r) for r in self._rows(f"SELECT {cols} FROM chunks ORDER BY file, ordinal")]
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        found = {r[0]: Chunk(*r) for r in self._rows(f"SELECT {cols} FROM chunks WHERE id IN ({marks})", ids)}
        missing = [i for i in ids if i not in found]
        if missing:  # verified at open, so only a file changed under us gets here
            raise corrupt(self.name, f"vector ids {missing[:3]} have no chunk")
        return [found[i] for i in ids]

    # -------------------------------------------------------------------------------------------------- search
    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Top-``k`` (chunk id, cosine similarity) for one unit-norm query vector, best first."""
        index = self.faiss_index
        k = min(k, index.ntotal)
        if k <= 0:
            return []
        scores, ids = index.search(np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32), k)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i != -1]


def check_index(name: str, root: Path) -> CheckReport:
    """Verify the live version of an index fully (``docqa check``): every checksum, SQLite's integrity check,
    counts, ids and dimensions. Returns every finding instead of stopping at the first."""
    valid_name(name)
    root = valid_root(Path(root))
    report = CheckReport(name)
    try:
        path = live_version(root / name, name)
    except IndexCorrupt as e:
        report.add("CURRENT names a version", False, str(e).split(": ", 1)[-1].split(". Nothing")[0])
        return report
    if path is None:
        raise IndexNotFound(name, str(root), list_indexes(root))
    report.version = path.name
    report.add("CURRENT names a version", True)
    fd = _shared_lock(path)
    try:
        try:
            manifest, db, vectors = open_version(path, name)
            report.add("files readable, vectors.faiss matches its checksum", True)
        except IndexCorrupt as e:
            report.add("files readable", False, str(e).split(": ", 1)[-1].split(". Nothing")[0])
            return report
        try:
            verify(path, name, manifest, db, vectors, full=True, report=report)
        finally:
            db.close()
        if not manifest.checksums:
            report.add("checksums recorded", False, "written by an older docqa; re-ingest with --rebuild to add them")
    finally:
        os.close(fd)
    return report


def _fault(point: str) -> None:
    """Crash-test hook: ``DOCQA_FAULT=point`` makes the writer kill itself (SIGKILL) at that point, so tests can
    prove recovery at every step of a commit. Does nothing otherwise."""
    if os.environ.get("DOCQA_FAULT") == point:
        os.kill(os.getpid(), signal.SIGKILL)


FAULT_POINTS = ("begin", "after-vectors", "after-manifest", "after-rename", "after-current", "after-prune")


class IndexWriter:
    """Builds the next version of an index beside the live one and swaps it in on :meth:`commit`."""

    def __init__(self, name: str, root: Path, *, dim: int, rebuild: bool = False, index_type: str = "auto"):
        self.name, self.root = valid_name(name), valid_root(Path(root))
        self.index_type = check_type(index_type)
        self.home = self.root / name
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            self._lock_file = open(self.home / ".lock", "w")  # noqa: SIM115 - held for the writer's lifetime
        except OSError as e:
            raise IndexWriteError(f"Cannot create index '{name}' under {self.root} ({e.strerror}). Choose a writable "
                                  f"--root.") from e
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            self._lock_file.close()
            raise ConfigError(
                f"Index '{name}' is being written by another docqa process; try again when it ends."
            ) from e
        self.tmp: Path | None = None
        self.db: sqlite3.Connection | None = None
        try:
            self._open(dim, rebuild)
        except BaseException as e:
            self.abort()
            if isinstance(e, OSError):
                raise IndexWriteError(f"Cannot write index '{name}' ({e}). Free disk space or fix permissions "
                                      f"under {self.home}.") from e
            raise

    def _open(self, dim: int, rebuild: bool) -> None:
        import faiss

        live = self.recover(keep_current=rebuild)
        previous = None if rebuild else live  # --rebuild starts empty: the live version is not read
        self.previous = previous
        self.old_manifest: dict[str, Any] = {}
        base_vectors = None
        if previous is not None:
            manifest, db, base_vectors = open_version(previous, self.name)
            try:  # never build on damage: the base is checked as fully as `docqa check` does
                verify(previous, self.name, manifest, db, base_vectors, full=True)
            finally:
                db.close()
            self.old_manifest = manifest.model_dump()
            if base_vectors.d != dim:
                raise ConfigError(f"Index '{self.name}' holds {base_vectors.d}-d vectors; this embedder makes {dim}-d. "
                                  f"Use the index's embedder ({manifest.embedder}) or --rebuild.")
        self.version = max(int(self.old_manifest.get("version", 0)), self._last_version()) + 1
        self.path = self.home / f"v{self.version:06d}"
        self.tmp = self.home / f".tmp-v{self.version:06d}-{os.getpid()}"
        self.tmp.mkdir()
        if previous is not None:
            shutil.copy2(previous / "index.sqlite", self.tmp / "index.sqlite")
        self.db = sqlite3.connect(self.tmp / "index.sqlite")
        self.db.executescript(_SCHEMA)
        self.vectors = base_vectors if base_vectors is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self.vector_params: dict[str, Any] = dict(self.old_manifest.get("vector_index") or {"type": "flat"})
        self.db.execute("BEGIN")
        _fault("begin")

    def recover(self, keep_current: bool = False) -> Path | None:
        """Under the lock: sweep what dead writers left and return the live version (None for a new index).

        Temp folders and files are always a dead writer's (we hold the lock). A version folder newer than the live
        one, or any version folder when there is no ``CURRENT``, was renamed by a writer killed before it updated
        ``CURRENT``: its ingest never reported success, so it is removed and this ingest redoes the work."""
        for p in self.home.glob(".tmp-*"):
            shutil.rmtree(p, ignore_errors=True)
        for p in self.home.glob(".CURRENT.tmp-*"):
            p.unlink(missing_ok=True)
        try:
            live = live_version(self.home, self.name)
        except IndexCorrupt:
            if keep_current:  # --rebuild: the damaged CURRENT will be replaced
                return None
            raise
        live_n = int(live.name[1:]) if live else 0
        for p in self.home.glob("v[0-9]*"):
            if _VERSION.match(p.name) and int(p.name[1:]) > live_n:
                shutil.rmtree(p, ignore_errors=True)
        return live

    def _last_version(self) -> int:
        versions = [int(p.name[1:]) for p in self.home.glob("v[0-9]*") if _VERSION.match(p.name)]
        return max(versions, default=0)

    def _q(self, sql: str, args: tuple | list = ()):
        return self.db.execute(sql, args)

    def file_hashes(self) -> dict[str, str]:
        return dict(self._q("SELECT name, sha256 FROM files"))

    def remove_file(self, name: str) -> None:
        ids = [r[0] for r in self._q("SELECT id FROM chunks WHERE file = ?", (name,))]
        if ids and kind_of(self.vectors) == "hnsw":  # HNSW cannot remove: rebuilt without them (O(corpus))
            vecs, have = all_vectors(self.vectors)
            keep = ~np.isin(have, np.asarray(ids, dtype=np.int64))
            self.vectors, self.vector_params = build("hnsw", self.vectors.d, vecs[keep], have[keep])
        elif ids:
            remove(self.vectors, np.asarray(ids, dtype=np.int64))
        for table, col in (("chunks", "file"), ("documents", "file"), ("summaries", "file"), ("files", "name")):
            self._q(f"DELETE FROM {table} WHERE {col} = ?", (name,))

    def add_file(
        self, name: str, sha256: str, size: int, parts: list[DocumentPart], chunks: list[Chunk], vectors: np.ndarray
    ) -> None:
        """Insert one file's documents, chunks and vectors (chunk ids are assigned here)."""
        self.remove_file(name)
        next_id = int(self._q("SELECT COALESCE(MAX(id), 0) FROM chunks").fetchone()[0]) + 1
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
        self._q(
            "INSERT INTO files(name, sha256, size, chunks, tokens, added) VALUES (?, ?, ?, ?, ?, ?)",
            (name, sha256, size, len(chunks), sum(c.tokens for c in chunks), time.time()),
        )
        if len(chunks):
            self.vectors.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        self.old_manifest["next_chunk_id"] = int(next_id + len(chunks))

    def files_without_summary(self) -> list[str]:
        return [r[0] for r in self._q(
            "SELECT name FROM files WHERE name NOT IN (SELECT file FROM summaries) ORDER BY name")]

    def document_parts(self, name: str) -> list[DocumentPart]:
        rows = self._q("SELECT file, part, page, text FROM documents WHERE file = ? ORDER BY part", (name,))
        return [DocumentPart(*r) for r in rows]

    def set_summary(self, name: str, text: str, model: str, calls: int) -> None:
        self._q("INSERT OR REPLACE INTO summaries(file, text, model, calls) VALUES (?, ?, ?, ?)",
                (name, text, model, calls))

    def commit(self, manifest: dict[str, Any]) -> Path:
        """Write everything, then make this version live atomically. Returns the version folder."""
        try:
            return self._commit(manifest)
        except OSError as e:
            raise IndexWriteError(f"Cannot write index '{self.name}' ({e}). The previous version is still live. "
                                  f"Free disk space or fix permissions under {self.home}.") from e

    def _commit(self, manifest: dict[str, Any]) -> Path:
        import faiss

        assert self.db is not None and self.tmp is not None
        self.db.commit()
        files = dict(self._q("SELECT name, sha256 FROM files ORDER BY name"))
        chunks, tokens = self._q("SELECT COUNT(*), COALESCE(SUM(tokens), 0) FROM chunks").fetchone()
        self.db.close()
        self.db = None
        self._shape_vectors()
        faiss.write_index(self.vectors, str(self.tmp / "vectors.faiss"))
        _fault("after-vectors")
        checksums, sizes = file_facts(self.tmp)
        settings = {k: manifest.get(k) for k in ("embedder", "tokenizer", "chunk_tokens", "overlap")}
        content = hashlib.sha256(json.dumps([files, settings], sort_keys=True).encode()).hexdigest()[:16]
        now = time.time()
        record = {
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
            "checksums": checksums,
            "sizes": sizes,
            "vector_index": self.vector_params,
        }
        Manifest.model_validate(record)  # what we write, we can read back
        _write_atomic(self.tmp / "manifest.json", json.dumps(record, indent=2, sort_keys=True))
        for f in self.tmp.iterdir():
            _fsync(f)
        _fault("after-manifest")
        os.replace(self.tmp, self.path)
        _fsync_dir(self.home)
        _fault("after-rename")
        _write_atomic(self.home / "CURRENT", self.path.name)
        _fsync_dir(self.home)
        self.tmp = None
        _fault("after-current")
        self._prune()
        _fault("after-prune")
        self._release()
        return self.path

    def _shape_vectors(self) -> None:
        """Make the index the kind its size calls for (vectors.py): converted when the wanted kind changes or an IVF
        index has outgrown its training; search parameters re-tuned when rebuilt or when the count moved by 10 %."""
        n, kind = self.vectors.ntotal, kind_of(self.vectors)
        target = wanted(self.index_type, n)
        params = self.vector_params if self.vector_params.get("type") == kind else {"type": kind}
        grown = kind == "ivf" and n > RETRAIN_GROWTH * max(1, int(params.get("trained_on", n)))
        if target != kind or grown:
            vecs, ids = all_vectors(self.vectors)
            self.vectors, params = build(target, self.vectors.d, vecs, ids)
        if params["type"] != "flat" and abs(n - int(params.get("tuned_at", -1))) > 0.1 * max(1, n):
            params = {**tune(self.vectors, params), "tuned_at": n}
        else:
            apply_search(self.vectors, params)
        self.vector_params = params

    def abort(self) -> None:
        """Drop the unfinished version; the live one is untouched."""
        if self.db is not None:
            with contextlib.suppress(Exception):
                self.db.close()
            self.db = None
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
        with contextlib.suppress(OSError):
            if not (self.home / "CURRENT").exists() and not any(self.home.glob("v[0-9]*")):
                shutil.rmtree(self.home, ignore_errors=True)  # a first ingest that failed leaves nothing behind
        self._release()

    @property
    def pending(self) -> bool:
        """True between opening and commit/abort."""
        return self.tmp is not None

    def _prune(self) -> None:
        versions = sorted(p for p in self.home.glob("v[0-9]*") if p.is_dir() and _VERSION.match(p.name))
        for old in versions[:-KEEP_VERSIONS]:
            try:
                fd = os.open(old, os.O_RDONLY)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a reader still holds it: the next writer prunes it
                os.close(fd)
                continue
            try:
                shutil.rmtree(old, ignore_errors=True)
            finally:
                os.close(fd)

    def _release(self) -> None:
        with contextlib.suppress(Exception):
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()


@contextlib.contextmanager
def writing(name: str, root: Path, *, dim: int, rebuild: bool = False,
            index_type: str = "auto") -> Iterator[IndexWriter]:
    """``with writing(...) as w:`` — the caller must call ``w.commit(manifest)``; any exception aborts."""
    writer = IndexWriter(name, root, dim=dim, rebuild=rebuild, index_type=index_type)
    try:
        yield writer
    except sqlite3.DatabaseError as e:  # the base passed its check, so the file changed under us
        writer.abort()
        raise corrupt(name, f"index.sqlite is unreadable ({e})") from e
    except BaseException:
        writer.abort()
        raise
    if writer.pending:  # the body returned without committing
        writer.abort()


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
