"""The segment one ingest writes: its SQLite file in the version's temp folder, plus the vectors and BM25 postings of
the files it adds, held until :meth:`NewSegment.finish` writes them beside it.

Split from :mod:`.writer` so that the writer is the version's transaction (verify the base, tombstone, merge, link,
commit, recover) and this is one segment's content. Chunk ids are the writer's to assign (they run across segments);
this class stores what it is given.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..records import Chunk
from .integrity import Segment, file_facts
from .lexical import PostingsBuilder
from .segments import SCHEMA, UPSERT_SUMMARY, DocumentPart, open_ro


class NewSegment:
    """One new segment, open for writing inside a transaction (``BEGIN`` until :meth:`finish`)."""

    def __init__(self, folder: Path, name: str):
        self.folder, self.name = folder, name
        self.sqlite = f"{name}.sqlite"
        self.db: sqlite3.Connection | None = sqlite3.connect(folder / self.sqlite)
        self.db.executescript(SCHEMA)
        self.vectors: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # file → (chunk ids, vectors)
        self.lexical = PostingsBuilder()  # BM25 postings of its chunks, written with it
        self.ro: sqlite3.Connection | None = None  # the finished file, read-only (the merge plan reads it)
        self.db.execute("BEGIN")

    def _db(self) -> sqlite3.Connection:
        assert self.db is not None, "the new segment is finished"
        return self.db

    def q(self, sql: str, args: tuple | list = ()):
        return self._db().execute(sql, args)

    def remove(self, name: str) -> tuple[int, int]:
        """Drop a file this ingest added; returns the (chunks, tokens) it held, (0, 0) when it holds none."""
        if name not in self.vectors and not self.q("SELECT 1 FROM files WHERE name = ?", (name,)).fetchone():
            return 0, 0
        ids, _ = self.vectors.pop(name, (np.zeros(0, dtype=np.int64), None))
        self.lexical.remove_file(name, ids)
        chunks, tokens = self.q("SELECT chunks, tokens FROM files WHERE name = ?", (name,)).fetchone()
        for table, col in (("chunks", "file"), ("documents", "file"), ("summaries", "file"), ("files", "name")):
            self.q(f"DELETE FROM {table} WHERE {col} = ?", (name,))
        return int(chunks or 0), int(tokens or 0)

    def add(self, name: str, sha256: str, size: int, parts: list[DocumentPart], chunks: list[Chunk],
            ids: np.ndarray, vectors: np.ndarray) -> int:
        """Insert one file's documents, chunks (under ``ids``) and vectors; returns its tokens."""
        db = self._db()
        db.executemany("INSERT INTO documents(file, part, page, text) VALUES (?, ?, ?, ?)",
                       [(name, p.part, p.page, p.text) for p in parts])
        db.executemany(
            "INSERT INTO chunks(id, file, ordinal, text, start_char, end_char, page, tokens) VALUES (?,?,?,?,?,?,?,?)",
            [(int(i), name, c.ordinal, c.text, c.start_char, c.end_char, c.page, c.tokens)
             for i, c in zip(ids, chunks)])
        tokens = sum(c.tokens for c in chunks)
        self.q("INSERT INTO files(name, sha256, size, chunks, tokens, added) VALUES (?, ?, ?, ?, ?, ?)",
               (name, sha256, size, len(chunks), tokens, time.time()))
        if len(chunks):
            self.vectors[name] = (ids, np.ascontiguousarray(vectors, dtype=np.float32))
        self.lexical.add_file(name, ids, [c.text for c in chunks])
        return tokens

    def document_parts(self, name: str) -> list[DocumentPart]:
        rows = self.q("SELECT file, part, page, text FROM documents WHERE file = ? ORDER BY part", (name,)).fetchall()
        return [DocumentPart(*r) for r in rows]

    def set_summary(self, name: str, sha256: str, text: str, model: str, calls: int, version: int) -> None:
        self.q(UPSERT_SUMMARY, (name, sha256, text, model, calls, version))

    def finish(self, store, index_type: str, fault: Callable[[str], None] = lambda point: None) -> Segment | None:
        """Commit the SQLite transaction, write the vectors (``store.write_segment``), then the lexical postings into
        the SQLite file, and close it; None (and no file) when this ingest added nothing to it. A kill between the
        vectors and the postings (``fault("before-lexical")``) leaves a temp folder the next writer sweeps: the
        version goes live with both or neither."""
        db = self._db()
        db.commit()
        rows = int(self.q("SELECT COUNT(*) FROM chunks").fetchone()[0])
        has = self.q("SELECT (SELECT COUNT(*) FROM files) + (SELECT COUNT(*) FROM summaries)").fetchone()[0]
        if not has:
            db.close()
            self.db = None
            (self.folder / self.sqlite).unlink()
            return None
        faiss_name, params = None, {}
        if rows:
            order = sorted(self.vectors.items(), key=lambda kv: int(kv[1][0][0]))
            ids = np.concatenate([i for _, (i, _) in order])
            vecs = np.vstack([v for _, (_, v) in order])
            files = [f for f, (i, _) in order for _ in range(len(i))]
            faiss_name, params = store.write_segment(self.folder, self.name, vecs, ids, files, index_type)
        fault("before-lexical")
        self.lexical.write(db)
        db.commit()
        db.close()
        self.db = None
        seg = Segment(name=self.name, sqlite=self.sqlite, faiss=faiss_name, rows=rows, vector_index=params,
                      lexical=True)
        seg.checksums, seg.sizes = file_facts(self.folder, seg.files)
        self.ro = open_ro(self.folder / self.sqlite)
        return seg

    def close(self) -> None:
        """Close whatever is open (an aborted or finished segment); the files are the writer's to remove."""
        for db in (self.db, self.ro):
            if db is not None:
                try:
                    db.close()
                except sqlite3.Error:
                    pass
        self.db = self.ro = None
