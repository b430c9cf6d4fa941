"""What a version of an index must satisfy, and the checks that prove it.

A version folder holds ``manifest.json`` and the files of its **segments** (store.py): each segment is an immutable
SQLite file of chunks and text and, with the FAISS vector store, a FAISS file of their vectors. A version shares the
segments it did not change with its predecessor through hard links, so the manifest records, per segment, the
SHA-256 and size of each file and the counts that must agree. Damage — a truncated or garbled file, a file copied
from another segment, permuted vector ids, edited chunk text — changes a checksum or breaks an agreement, so it is
reported instead of served.

Two depths:

- **open** (every reader; every writer for the segments it reads): sizes, each FAISS file's checksum (it is read
  whole to load it, so hashing it costs one more pass over bytes already in memory), the SQLite files' checksums
  while the version's files together are under ``FULL_HASH_BYTES``, counts (manifest = SQLite rows = vectors) and
  the id sets of both sides. A writer checks the segments it only links (sizes always, checksums under the same
  byte budget) without loading them: that keeps an update O(change) at 10⁶ chunks.
- **full** (``docqa check NAME``): all of that regardless of size, plus SQLite's ``PRAGMA integrity_check``, the
  per-file chunk counts and the vector dimension.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from ..errors import IndexCorrupt, first_line

# Above this, a reader skips hashing the SQLite files (sizes, counts, ids and the FAISS checksums still hold);
# `docqa check` always hashes. At ~1 GB/s for SHA-256 this bounds the opening cost to a fraction of a second.
FULL_HASH_BYTES = 512 * 2**20


class Segment(BaseModel):
    """One immutable segment of a version: its files, their checksums, and which of its files are deleted."""

    model_config = ConfigDict(extra="allow")

    name: str
    sqlite: str  # file name inside the version folder
    faiss: str | None = None  # None where vectors live in an external store (Milvus)
    rows: int  # chunk rows in the SQLite file (live and deleted)
    dead: list[str] = []  # files of this segment deleted since it was written (tombstones)
    dead_rows: int = 0
    checksums: dict[str, str] = {}
    sizes: dict[str, int] = {}
    vector_index: dict[str, Any] = {}
    # Its SQLite file holds BM25 postings (docqa/index/lexical.py); False in segments written before they existed.
    lexical: bool = False

    @field_validator("sqlite", "faiss")
    @classmethod
    def _bare_name(cls, name: str | None) -> str | None:
        """A segment file is data, not a path: a plain file name inside its version folder, as CURRENT is."""
        if name is not None and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}", name):
            raise ValueError(f"{name[:40]!r} is not a file name inside the version folder")
        return name

    @property
    def files(self) -> list[str]:
        return [f for f in (self.sqlite, self.faiss) if f]

    @property
    def live_rows(self) -> int:
        return self.rows - self.dead_rows


class Manifest(BaseModel):
    """``manifest.json`` of one version. Unknown keys are kept (newer docqa versions may add some)."""

    model_config = ConfigDict(extra="allow")

    format: int
    name: str
    version: int
    embedder: str
    tokenizer: str | None = None
    chunk_tokens: int | None = None
    overlap: int | None = None
    files: dict[str, str]  # file name → sha256 of its bytes
    chunks: int
    tokens: int
    content_id: str
    next_chunk_id: int = 1
    created: float = 0.0
    updated: float = 0.0
    dim: int | None = None
    # Written since format 2; absent in older indexes, whose readers then check sizes and counts only.
    checksums: dict[str, str] = {}
    sizes: dict[str, int] = {}
    # The FAISS index kind and its search parameters (docqa/index/vectors.py); absent before: exact search.
    vector_index: dict[str, Any] = {}
    # Format 3: the segments (a format-2 version is read as one segment made of its two files).
    segments: list[Segment] = []
    next_segment: int = 1
    vector_store: dict[str, Any] = {}  # {"type": "faiss"} or {"type": "milvus", "uri": ..., "collection": ...}
    pending_deletes: list[int] = []  # chunk ids an external vector store still holds for deleted files

    @model_validator(mode="after")
    def _one_segment_before_format_3(self) -> Manifest:
        if self.format <= 2 and not self.segments:
            self.segments = [Segment(name="s000000", sqlite="index.sqlite", faiss="vectors.faiss", rows=self.chunks,
                                     checksums=self.checksums, sizes=self.sizes, vector_index=self.vector_index)]
        return self


def read_manifest(path: Path, index: str) -> Manifest:
    """The manifest of the version folder ``path``, validated; :class:`IndexCorrupt` when unreadable or wrong."""
    try:
        raw = (path / "manifest.json").read_bytes()
        manifest = Manifest.model_validate(json.loads(raw))
    except FileNotFoundError as e:
        raise corrupt(index, f"{path.name}/manifest.json is missing") from e
    except (OSError, ValueError, RecursionError, ValidationError) as e:
        reason = str(e).splitlines()[0] if not isinstance(e, ValidationError) else _first_error(e)
        raise corrupt(index, f"{path.name}/manifest.json is unreadable ({reason})") from e
    if re.fullmatch(r"v\d{6}", path.name) and manifest.version != int(path.name[1:]):  # e.g. copied from another
        raise corrupt(index, f"{path.name}/manifest.json describes version {manifest.version}, not {path.name}")
    return manifest


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    return f"field {'.'.join(str(x) for x in err['loc']) or '(root)'}: {err['msg']}"


def corrupt(index: str, what: str) -> IndexCorrupt:
    """The one message every damage finding ends in: what is wrong, and the fix."""
    return IndexCorrupt(
        f"Index '{index}' is damaged: {what}. Nothing was read from it. Rebuild it from your documents: "
        f"docqa ingest PATH --index {index} --rebuild"
    )


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def file_facts(folder: Path, names: list[str]) -> tuple[dict[str, str], dict[str, int]]:
    """(checksums, sizes) of a segment's files, for its manifest record."""
    return ({n: sha256_file(folder / n) for n in names}, {n: (folder / n).stat().st_size for n in names})


def load_vectors(path: Path, index: str, seg: Segment, *, verify: bool = True):
    """Read a segment's FAISS file whole, check its size and checksum against the manifest, and deserialize it."""
    import faiss

    assert seg.faiss is not None
    name = seg.faiss
    file = path / name
    try:
        data = file.read_bytes()
    except FileNotFoundError as e:
        raise corrupt(index, f"{path.name}/{name} is missing") from e
    except OSError as e:
        raise corrupt(index, f"{path.name}/{name} is unreadable ({e.strerror})") from e
    if verify and seg.sizes and len(data) != seg.sizes.get(name):
        raise corrupt(index, f"{path.name}/{name} has {len(data):,} bytes, the manifest says "
                             f"{seg.sizes.get(name, 0):,}")
    if verify and seg.checksums and hashlib.sha256(data).hexdigest() != seg.checksums.get(name):
        raise corrupt(index, f"{path.name}/{name} does not match its checksum")
    try:
        return faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
    except (RuntimeError, ValueError) as e:  # faiss raises RuntimeError for any malformed file
        raise corrupt(index, f"{path.name}/{name} is not a FAISS index ({str(e).splitlines()[0][:120]})") from e


def vector_ids(vectors) -> np.ndarray:
    """The chunk ids a FAISS index holds (an ``IndexIDMap2``, or an IVF index with its own ids)."""
    from .vectors import ids_of

    return ids_of(vectors)


@dataclass
class CheckReport:
    """What ``docqa check`` found: one line per check, and the problems."""

    index: str
    version: str = ""
    checks: list[tuple[str, bool, str]] = field(default_factory=list)  # (check, passed, detail)

    @property
    def ok(self) -> bool:
        return all(passed for _, passed, _ in self.checks)

    def add(self, name: str, passed: bool, detail: str = "") -> bool:
        self.checks.append((name, passed, detail))
        return passed

    collect: bool = True  # False: the first failure raises IndexCorrupt (readers, writers)
    dim: int | None = None  # the vectors' size, as the reader sees it (docqa.api.check compares the embedder's)
    embedder: str = ""  # the embedder the manifest names

    def need(self, name: str, passed: bool, detail: str) -> bool:
        """Record a check; outside ``docqa check`` a failure raises at once."""
        self.add(name, passed, "" if passed else detail)
        if not passed and not self.collect:
            raise corrupt(self.index, detail)
        return passed

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "version": self.version, "ok": self.ok,
                "checks": [{"check": c, "ok": p, "detail": d} for c, p, d in self.checks]}


def check_files(path: Path, segments: list[Segment], *, hash_sqlite: bool, report: CheckReport,
                hash_faiss: bool = False) -> None:
    """Sizes of every segment file, and SQLite checksums when ``hash_sqlite`` (FAISS files are hashed as they load;
    a writer that only links a segment passes ``hash_faiss`` to hash its FAISS files here, under the same budget)."""
    for seg in segments:
        for n in seg.files:
            size = (path / n).stat().st_size if (path / n).exists() else None
            if seg.sizes:
                report.need(f"size of {n}", size == seg.sizes.get(n),
                            f"{path.name}/{n} has {size or 0:,} bytes, the manifest says {seg.sizes.get(n, 0):,}")
            elif size is None:
                report.need(f"{n} present", False, f"{path.name}/{n} is missing")
        if hash_sqlite and seg.checksums:
            for n in (seg.files if hash_faiss else [seg.sqlite]):
                if not (path / n).is_file():
                    continue  # reported by its size, or by opening it
                report.need(f"checksum of {n}", sha256_file(path / n) == seg.checksums.get(n),
                            f"{path.name}/{n} does not match its checksum (edited, truncated or copied from "
                            f"elsewhere)")


def verify_segment(path: Path, index: str, seg: Segment, db: sqlite3.Connection, vectors, *, full: bool,
                   report: CheckReport) -> tuple[set[str], np.ndarray]:
    """Counts and ids of one opened segment against its record; returns (its live files, its dead chunk ids)."""
    try:
        if full:
            result = db.execute("PRAGMA integrity_check").fetchone()[0]
            report.need(f"SQLite integrity_check of {seg.sqlite}", result == "ok",
                        f"SQLite integrity check of {path.name}/{seg.sqlite} says: {result[:120]}")
        rows = int(db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])
        per_file = dict(db.execute("SELECT name, chunks FROM files"))
        # O(rows) reads only where the segment's vectors are loaded anyway (readers) or for `docqa check`: a writer
        # that links the segment unread stays O(change).
        db_ids = np.fromiter((r[0] for r in db.execute("SELECT id FROM chunks ORDER BY id")), dtype=np.int64) \
            if vectors is not None else None
        counted = dict(db.execute("SELECT file, COUNT(*) FROM chunks GROUP BY file")) if full else {}
        marks = ",".join("?" * len(seg.dead))
        dead_ids = np.fromiter((r[0] for r in db.execute(f"SELECT id FROM chunks WHERE file IN ({marks})", seg.dead)),
                               dtype=np.int64) if seg.dead else np.zeros(0, dtype=np.int64)
    except sqlite3.DatabaseError as e:
        report.need("SQLite readable", False, f"{path.name}/{seg.sqlite} is unreadable ({first_line(e)})")
        return set(), np.zeros(0, dtype=np.int64)
    report.need(f"chunks of {seg.name} = manifest", rows == seg.rows,
                f"{path.name}/{seg.sqlite} holds {rows} chunks, the manifest says {seg.rows}")
    report.need(f"deleted chunks of {seg.name} = manifest", len(dead_ids) == seg.dead_rows,
                f"{path.name}/{seg.sqlite} has {len(dead_ids)} chunks of deleted files, the manifest says "
                f"{seg.dead_rows}")
    report.need(f"deleted files of {seg.name} exist", set(seg.dead) <= set(per_file),
                f"the manifest deletes files {path.name}/{seg.sqlite} does not hold")
    if vectors is not None:
        report.need(f"chunks of {seg.name} = vectors", rows == vectors.ntotal,
                    f"{rows} chunks but {vectors.ntotal} vectors in {seg.name}")
        ids = np.sort(vector_ids(vectors))
        report.need(f"same ids in {seg.name}", len(ids) == len(db_ids) and bool(np.array_equal(ids, db_ids)),
                    f"the vector ids of {seg.name} differ from its chunk ids")
    if full:
        bad = sorted(f for f, n in per_file.items() if (n or 0) != counted.get(f, 0))
        report.need(f"chunks per file in {seg.name}", not bad, f"chunk counts disagree for {', '.join(bad[:3])}")
    if seg.lexical:
        from . import lexical

        try:
            found = lexical.has_lexical(db)
            problems = lexical.verify(db, per_file) if full and found else []
        except sqlite3.DatabaseError as e:
            found, problems = False, [f"it is unreadable ({first_line(e)})"]
        report.need(f"lexical index of {seg.name}", found and not problems,
                    f"{path.name}/{seg.sqlite}: " + (problems[0] if problems else "its lexical index is missing"))
    return set(per_file) - set(seg.dead), dead_ids


def verify_totals(manifest: Manifest, live_files: list[set[str]], report: CheckReport) -> None:
    """The version's totals: live chunks and live files agree with the manifest, and no file is live twice."""
    live_rows = sum(s.live_rows for s in manifest.segments)
    report.need("chunks = manifest", live_rows == manifest.chunks,
                f"the segments hold {live_rows} live chunks, the manifest says {manifest.chunks}")
    counts = Counter(f for files in live_files for f in files)
    union = set(counts)
    twice = [f for f, n in counts.items() if n > 1]
    report.need("each file in one segment", not twice, f"file {twice[:1]} is live in two segments")
    report.need("files = manifest", union == set(manifest.files),
                f"the segments list {len(union)} files, the manifest {len(manifest.files)}")
