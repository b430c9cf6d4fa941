"""Segments: the immutable SQLite files a version is made of, and the policy that merges them.

A segment holds the files, extracted text, chunks and summaries one ingest wrote (or one merge gathered). It is
never modified after its version went live; a later version deletes a file from it by listing the file in the
segment's manifest record (a tombstone) and shares the rest by hard link. So an update writes only what changed.

Merges keep the number of segments — and so the cost of a search and of opening a version — bounded, the way
Lucene's log merge policy does: segments are grouped by size level (log base ``MERGE_FACTOR`` of their live chunks),
and when a level holds ``MERGE_FACTOR`` segments they are merged into one of the next level. Each chunk is rewritten
once per level, O(log N) times over its life, so the amortized cost of an update stays O(change · log N); a segment
more than half deleted is rewritten without its deleted files (compaction). Chunk ids survive merges.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import lexical
from .integrity import Segment, corrupt, file_facts

MERGE_FACTOR = 8
COMPACT_AT = 0.5  # rewrite a segment once this share of its chunks belongs to deleted files

SCHEMA = """
CREATE TABLE IF NOT EXISTS files(
    name TEXT PRIMARY KEY, sha256 TEXT NOT NULL, size INTEGER, chunks INTEGER, tokens INTEGER, added REAL);
CREATE TABLE IF NOT EXISTS documents(
    file TEXT NOT NULL, part INTEGER NOT NULL, page TEXT, text TEXT NOT NULL, PRIMARY KEY(file, part));
CREATE TABLE IF NOT EXISTS chunks(
    id INTEGER PRIMARY KEY, file TEXT NOT NULL, ordinal INTEGER NOT NULL, text TEXT NOT NULL,
    start_char INTEGER, end_char INTEGER, page TEXT, tokens INTEGER);
CREATE INDEX IF NOT EXISTS chunks_by_file ON chunks(file);
CREATE TABLE IF NOT EXISTS summaries(
    file TEXT NOT NULL, sha256 TEXT NOT NULL, text TEXT NOT NULL, model TEXT, calls INTEGER,
    version INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(file, sha256));
"""


@dataclass
class DocumentPart:
    """Extracted text of a file, or of one page of a paged file."""

    file: str
    part: int
    page: str | None
    text: str


def open_ro(path: Path) -> sqlite3.Connection:
    """A read-only connection (a shared segment must never be written: other versions link the same bytes)."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)


# A summary may be rewritten by a later version for the same file version; merges move old rows into segments with
# newer names, so the row carries the version that wrote it and the highest version wins.
UPSERT_SUMMARY = ("INSERT INTO summaries(file, sha256, text, model, calls, version) VALUES (?, ?, ?, ?, ?, ?) "
                  "ON CONFLICT(file, sha256) DO UPDATE SET text = excluded.text, model = excluded.model, "
                  "calls = excluded.calls, version = excluded.version WHERE excluded.version >= summaries.version")


def summaries_of(db: sqlite3.Connection) -> list[tuple[str, str, str, str | None, int | None, int]]:
    """(file, sha256 of the file summarized, text, model, calls, version that wrote it). Segments written before
    format 3 kept no hash nor version: their summaries belong to the file version in the same segment, version 0."""
    try:
        return db.execute("SELECT file, sha256, text, model, calls, version FROM summaries").fetchall()
    except sqlite3.OperationalError as e:
        if "no such table" in str(e):
            return []
        if "no such column" not in str(e):
            raise
    return [(*r, 0) for r in db.execute("SELECT s.file, f.sha256, s.text, s.model, s.calls FROM summaries s "
                                        "JOIN files f ON f.name = s.file").fetchall()]


def latest_summaries(rows, live: dict[str, str]) -> dict[str, tuple]:
    """file → its newest summary row, for files live with the hash the summary was written for."""
    best: dict[str, tuple] = {}
    for r in rows:
        if live.get(r[0]) == r[1] and (r[0] not in best or r[5] >= best[r[0]][5]):
            best[r[0]] = r
    return best


def level(live_rows: int) -> int:
    return int(math.log(max(live_rows, 1), MERGE_FACTOR))


@dataclass
class SegmentState:
    """What the merge policy needs to know about one segment of the next version."""

    seg: Segment
    files: frozenset[str]  # every file the segment's SQLite lists (live or deleted)
    live_summaries: int = 0  # summaries it holds for files live in the next version

    @property
    def empty(self) -> bool:
        return not (self.files - set(self.seg.dead)) and not self.live_summaries


def plan(states: list[SegmentState]) -> tuple[list[SegmentState], list[list[SegmentState]]]:
    """(segments to drop, groups of segments to merge into one each). A segment with nothing live is dropped; one
    more than half deleted is rewritten; a size level with ``MERGE_FACTOR`` segments is merged."""
    drop = [s for s in states if s.empty]
    rest = [s for s in states if not s.empty]
    groups: list[list[SegmentState]] = []
    by_level: dict[int, list[SegmentState]] = {}
    for s in rest:
        by_level.setdefault(level(s.seg.live_rows), []).append(s)
    taken: set[str] = set()
    for lv in sorted(by_level):
        members = by_level[lv]
        if len(members) >= MERGE_FACTOR:
            groups.append(members)
            taken.update(m.seg.name for m in members)
    for s in rest:
        if s.seg.name not in taken and s.seg.rows and s.seg.dead_rows > COMPACT_AT * s.seg.rows:
            groups.append([s])
    return drop, groups


def merge(group: list[SegmentState], out_dir: Path, name: str, *, live: dict[str, str],
          where: Callable[[Segment], Path], store, index_type: str, index: str = "") -> Segment:
    """Write segment ``name`` into ``out_dir`` with the live files, chunks and summaries of ``group`` (chunk ids
    kept), and its vectors through ``store`` (an external store keeps its rows: nothing to move). ``live`` maps live
    files to their hashes; ``where`` gives the folder a source segment's files are in."""
    out = out_dir / f"{name}.sqlite"
    db = sqlite3.connect(f"file:{out}", uri=True)
    db.executescript(SCHEMA)
    all_ids, all_vecs = [], []
    lexical_sources = []  # (connection, dead chunk ids, dead files) while every source has postings
    with_lexical = all(st.seg.lexical for st in group)
    for st in group:
        seg, folder = st.seg, where(st.seg)
        dead = list(seg.dead)
        marks = ",".join("?" * len(dead))  # SQLite allows "NOT IN ()"; "NOT IN (NULL)" would match nothing
        db.execute("ATTACH DATABASE ? AS src", (f"file:{folder / seg.sqlite}?mode=ro",))
        with db:
            db.execute(f"INSERT INTO files SELECT name, sha256, size, chunks, tokens, added FROM src.files "
                       f"WHERE name NOT IN ({marks})", dead)
            db.execute(f"INSERT INTO documents SELECT file, part, page, text FROM src.documents "
                       f"WHERE file NOT IN ({marks})", dead)
            db.execute(f"INSERT INTO chunks SELECT id, file, ordinal, text, start_char, end_char, page, tokens "
                       f"FROM src.chunks WHERE file NOT IN ({marks})", dead)
        src = open_ro(folder / seg.sqlite)
        try:
            keep = [r for r in summaries_of(src) if live.get(r[0]) == r[1]]
            dead_ids = np.fromiter((r[0] for r in src.execute(f"SELECT id FROM chunks WHERE file IN ({marks})",
                                                              dead)), dtype=np.int64)
        finally:
            if with_lexical:
                lexical_sources.append((src, dead_ids, dead))
            else:
                src.close()
        with db:
            db.executemany(UPSERT_SUMMARY, keep)
        db.execute("DETACH DATABASE src")
        if not store.external and seg.faiss:
            vecs, ids = store.segment_vectors(folder, seg)
            alive = ~np.isin(ids, dead_ids)
            all_vecs.append(vecs[alive])
            all_ids.append(ids[alive])
    if with_lexical:  # postings concatenated term by term, deleted chunks dropped: no re-tokenizing
        try:
            lexical.merge_into(db, lexical_sources)
            db.commit()
        except lexical.DamagedPostings as e:
            db.close()
            raise corrupt(index, f"the lexical postings of term {e.term!r} in a merged segment are damaged") from e
        finally:
            for src, _, _ in lexical_sources:
                src.close()
    rows = int(db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])
    db.close()
    faiss_name, params = None, ({"type": "milvus"} if store.external else {})
    if all_ids and sum(len(i) for i in all_ids):
        ids, vecs = np.concatenate(all_ids), np.vstack(all_vecs)
        order = np.argsort(ids, kind="stable")
        faiss_name, params = store.write_segment(out_dir, name, vecs[order], ids[order], [], index_type)
    seg = Segment(name=name, sqlite=out.name, faiss=faiss_name, rows=rows, vector_index=params, lexical=with_lexical)
    seg.checksums, seg.sizes = file_facts(out_dir, seg.files)
    return seg
