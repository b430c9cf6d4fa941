"""The on-disk index, read side: one verified version — its SQLite segments and its vector store — held until closed.

The layout and versioning are in :mod:`.versions`, writing in :mod:`.writer`, segments and merges in
:mod:`.segments`, vector stores in :mod:`.vector_stores`, BM25 search in :mod:`.lexical_search`; :func:`remove_index`
(:mod:`.removal`) deletes a whole index. This module knows nothing about readers, splitters or embedders. Names
other modules import from here (``IndexWriter``, ``writing``, ``DocumentPart``…) are re-exported.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import (
    ConfigError,
    IndexCorrupt,
    IndexNotFound,
    LexicalMissing,
    first_line,
)
from ..records import Chunk
from .integrity import (
    FULL_HASH_BYTES,
    CheckReport,
    Manifest,
    Segment,
    check_files,
    corrupt,
    read_manifest,
    verify_segment,
    verify_totals,
)
from .lexical import DamagedPostings
from .lexical_search import LexicalHit, LexicalSearcher
from .removal import Removed, disk_bytes, remove_index
from .segments import DocumentPart, latest_summaries, open_ro, summaries_of
from .vector_stores import vector_store
from .versions import (
    list_indexes,
    live_version,
    read_live_manifest,
    shared_lock,
    valid_name,
    valid_root,
)
from .writer import FAULT_POINTS, MERGE_FAULT_POINTS, IndexWriter, writing

__all__ = ["CheckReport", "DocumentPart", "FAULT_POINTS", "MERGE_FAULT_POINTS", "IndexStore", "IndexWriter", "Removed",
           "check_index", "disk_bytes", "list_indexes", "read_live_manifest", "remove_index", "valid_name",
           "valid_root", "writing"]


class OpenVersion:
    """A version's segments opened and verified: SQLite connections, dead chunk ids, and a searcher."""

    def __init__(self, path: Path, index: str, *, full: bool, report: CheckReport | None = None):
        self.path, self.index = path, index
        self.report = report or CheckReport(index, path.name, collect=False)
        self.manifest: Manifest = read_manifest(path, index)
        m = self.manifest
        self.store = vector_store(m.vector_store, home=path.parent, index=index)
        self.dbs: list[tuple[Segment, sqlite3.Connection]] = []
        self.dead: set[int] = set()
        self.dead_by_segment: dict[str, np.ndarray] = {}  # segment → chunk ids of its deleted files
        self._lexical: LexicalSearcher | None = None
        # The manifest's record of the vector size (an index written before it was recorded: the first segment's).
        self.dim: int | None = m.dim
        total = sum(seg.sizes.get(n, 0) for seg in m.segments for n in seg.files)
        check_files(path, m.segments, hash_sqlite=full or total <= FULL_HASH_BYTES, report=self.report)
        loaded, live_files = [], []
        for seg in m.segments:
            if not (path / seg.sqlite).is_file():
                self.report.need(f"{seg.sqlite} present", False, f"{path.name}/{seg.sqlite} is missing")
                continue
            try:
                db = open_ro(path / seg.sqlite)
            except sqlite3.Error as e:
                self.report.need(f"{seg.sqlite} opens", False,
                                 f"{path.name}/{seg.sqlite} cannot be opened ({first_line(e)})")
                continue
            self.dbs.append((seg, db))
            try:
                vectors = self.store.load(path, seg)
            except IndexCorrupt as e:
                self.report.need(f"{seg.faiss} loads", False, str(e).split(": ", 1)[-1].split(". Nothing")[0])
                continue
            files, dead = verify_segment(path, index, seg, db, vectors, full=full, report=self.report)
            if vectors is not None:  # at every open, not only in `docqa check`: a search of the wrong size asserts
                self.dim = self.dim or int(vectors.d)
                self.report.need(f"vector dimension of {seg.name}", vectors.d == self.dim,
                                 f"vectors of {seg.name} are {vectors.d}-d, the manifest says {self.dim}-d")
            live_files.append(files)
            self.dead_by_segment[seg.name] = np.sort(dead)
            self.dead.update(int(i) for i in dead)
            loaded.append((vectors, dead))
        verify_totals(m, live_files, self.report)
        self.searcher = self.store.searcher(loaded, next_chunk_id=m.next_chunk_id, live=m.chunks,
                                            exclude=len(self.dead) + len(m.pending_deletes))
        if self.store.external:
            have = self.store.count(m.next_chunk_id) if m.chunks else 0
            self.report.need("vector store holds every chunk", have >= m.chunks,
                             f"the Milvus collection '{self.store.spec['collection']}' holds {have} vectors for "
                             f"{m.chunks} chunks")

    @property
    def has_lexical(self) -> bool:
        """Every segment holds BM25 postings (an index written before docqa kept them has none)."""
        return all(seg.lexical for seg, _ in self.dbs)

    def lexical(self) -> LexicalSearcher:
        """The BM25 searcher over this version (built on first use: it reads each segment's length totals)."""
        if self._lexical is None:
            if not self.has_lexical:
                raise LexicalMissing(self.index)
            self._lexical = LexicalSearcher(
                [(db, self.dead_by_segment.get(seg.name, np.zeros(0, np.int64)), list(seg.dead))
                 for seg, db in self.dbs], self.manifest.chunks)
        return self._lexical

    def close(self) -> None:
        for _, db in self.dbs:
            with contextlib.suppress(Exception):
                db.close()
        self.dbs = []
        with contextlib.suppress(Exception):
            self.store.close()


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
                self._fd = shared_lock(path)
            except FileNotFoundError:
                if attempt == 2:
                    raise
                continue
            if (path / "manifest.json").exists():
                break
            os.close(self._fd)
        self.path = path
        self._open: OpenVersion | None = None
        try:
            self._open = OpenVersion(path, name, full=False)
            self._manifest = self._open.manifest
            self.manifest: dict[str, Any] = self._manifest.model_dump()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the version (its files may be pruned by a later writer)."""
        opened, self._open = getattr(self, "_open", None), None
        if opened is not None:
            opened.close()
        fd, self._fd = getattr(self, "_fd", None), None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __del__(self) -> None:
        self.close()

    def _each(self, sql: str, args: tuple | list = ()) -> list[tuple[Segment, list[tuple]]]:
        assert self._open is not None, "the store is closed"
        out = []
        for seg, db in self._open.dbs:
            try:
                out.append((seg, db.execute(sql, args).fetchall()))
            except sqlite3.DatabaseError as e:  # a damaged file that passed the cheap open checks (very large index)
                raise corrupt(self.name, f"{self.path.name}/{seg.sqlite} is unreadable ({first_line(e)})") from e
        return out

    # -------------------------------------------------------------------------------------------------- facts
    @property
    def version(self) -> int:
        return int(self.manifest["version"])

    @property
    def content_id(self) -> str:
        """Changes whenever the indexed content or chunking changes (used to invalidate caches)."""
        return str(self.manifest["content_id"])

    @property
    def segments(self) -> list[Segment]:
        return list(self._manifest.segments)

    @property
    def vectors(self):
        """The searcher over this version's vectors (``ntotal``: live vectors)."""
        assert self._open is not None, "the store is closed"
        return self._open.searcher

    @property
    def dim(self) -> int | None:
        """The size of this index's vectors (None: no vectors yet, or an external store that does not say)."""
        assert self._open is not None, "the store is closed"
        return self._open.dim

    def file_names(self) -> list[str]:
        return sorted(self._manifest.files)

    def documents(self) -> list[DocumentPart]:
        """Every file's extracted text, in a stable order (file name, then page)."""
        live = self._manifest.files
        parts = [DocumentPart(*r) for seg, rows in self._each("SELECT file, part, page, text FROM documents")
                 for r in rows if r[0] in live and r[0] not in seg.dead]
        return sorted(parts, key=lambda p: (p.file, p.part))

    def summaries(self) -> dict[str, str]:
        """Per-document summaries written by ``ingest --summaries`` (file → summary), in file order. A summary
        counts only for the file version it summarized; the one written by the latest version wins."""
        assert self._open is not None
        rows = [r for _, db in self._open.dbs for r in summaries_of(db)]
        return {f: r[2] for f, r in sorted(latest_summaries(rows, self._manifest.files).items())}

    def chunk_count(self) -> int:
        return int(self._manifest.chunks)

    def chunks(self, ids: list[int] | None = None, files: list[str] | None = None) -> list[Chunk]:
        """Chunks by id (in the order asked), or all live chunks in document order (of ``files`` only, when given)."""
        cols = "id, file, ordinal, text, start_char, end_char, page, tokens"
        if ids is None:
            where, args = ("", []) if files is None else (f" WHERE file IN ({','.join('?' * len(files))})", files)
            if files is not None and not files:
                return []
            rows = [r for seg, rs in self._each(f"SELECT {cols} FROM chunks{where}", args) for r in rs
                    if r[1] not in seg.dead]
            return [Chunk(*r) for r in sorted(rows, key=lambda r: (r[1], r[2]))]
        if not ids:
            return []
        found = self._lookup(ids)
        missing = [i for i in ids if i not in found]
        if missing:  # verified at open, so only a file changed under us gets here
            raise corrupt(self.name, f"vector ids {missing[:3]} have no chunk")
        return [found[i] for i in ids]

    def _lookup(self, ids: list[int]) -> dict[int, Chunk]:
        cols = "id, file, ordinal, text, start_char, end_char, page, tokens"
        marks = ",".join("?" * len(ids))
        return {r[0]: Chunk(*r) for seg, rows in self._each(f"SELECT {cols} FROM chunks WHERE id IN ({marks})", ids)
                for r in rows if r[1] not in seg.dead}

    # -------------------------------------------------------------------------------------------------- search
    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Top-``k`` (chunk id, cosine similarity) for one unit-norm query vector, best first."""
        assert self._open is not None, "the store is closed"
        k = min(k, self.chunk_count())
        if k <= 0:
            return []
        if self.dim is not None and query.shape[-1] != self.dim:  # Corpus checks the embedder first; this is a guard
            raise ConfigError(f"Index '{self.name}' holds {self.dim}-d vectors; the query vector is "
                              f"{query.shape[-1]}-d. Embed queries with the index's embedder "
                              f"({self._manifest.embedder}).")
        hits = self._open.searcher.search(query, k)
        if self._open.store.external:  # the collection may hold rows this version has deleted or not yet seen
            live = self._lookup([i for i, _ in hits]) if hits else {}
            hits = [(i, s) for i, s in hits if i in live and i not in self._open.dead]
        return hits[:k]


    @property
    def has_lexical(self) -> bool:
        """This version can be searched by BM25 (``retriever="bm25"`` or ``"hybrid"``)."""
        assert self._open is not None, "the store is closed"
        return self._open.has_lexical

    def search_lexical(self, query: str, k: int) -> LexicalHit:
        """Top-``k`` chunk ids by BM25 over this version's live chunks, best first, with their scores and the query
        terms searched (none: the query held only stop words). :class:`LexicalMissing` where the index predates
        lexical postings; damaged postings are refused as index damage."""
        assert self._open is not None, "the store is closed"
        try:
            return self._open.lexical().search(query, min(k, self.chunk_count()))
        except DamagedPostings as e:
            raise corrupt(self.name, f"the lexical postings of term {e.term!r} are damaged") from e
        except sqlite3.DatabaseError as e:
            raise corrupt(self.name, f"a segment's lexical index is unreadable ({first_line(e)})") from e


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
    fd = shared_lock(path)
    try:
        try:
            opened = OpenVersion(path, name, full=True, report=report)
        except IndexCorrupt as e:  # the manifest itself, or an external store that is gone
            report.add("manifest readable", False, str(e).split(": ", 1)[-1].split(". Nothing")[0])
            return report
        opened.close()
        report.dim, report.embedder = opened.dim, opened.manifest.embedder
        if opened.manifest.segments and not any(seg.checksums for seg in opened.manifest.segments):
            report.add("checksums recorded", False, "written by an older docqa; re-ingest with --rebuild to add them")
    finally:
        os.close(fd)
    return report
