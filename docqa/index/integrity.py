"""What a version of an index must satisfy, and the checks that prove it.

A version folder holds ``index.sqlite``, ``vectors.faiss`` and ``manifest.json``. The manifest (validated by
:class:`Manifest`, a pydantic schema) records the SHA-256 and size of the two data files and the counts that must
agree. Damage — a truncated or garbled file, a file copied from another version, permuted vector ids, edited chunk
text — changes a checksum or breaks an agreement, so it is reported instead of served.

Two depths:

- **open** (every reader, every writer's base version): sizes, the FAISS file's checksum (it is read whole to load
  it, so hashing it costs one more pass over bytes already in memory), the SQLite file's checksum while the two
  files together are under ``FULL_HASH_BYTES``, counts (manifest chunks = SQLite rows = FAISS vectors) and the
  id sets of both sides. Measured on the examples/ index (15 files, 204 chunks, 1.3 MB): ~3 ms
  (benchmarks/reliability.py, RESULTS.md).
- **full** (``docqa check NAME``): all of that regardless of size, plus SQLite's ``PRAGMA integrity_check``, the
  per-file chunk counts and the vector dimension.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import IndexCorrupt

DATA_FILES = ("index.sqlite", "vectors.faiss")
# Above this, a reader skips hashing the SQLite file (sizes, counts, ids and the FAISS checksum still hold);
# `docqa check` always hashes. At ~1 GB/s for SHA-256 this bounds the opening cost to a fraction of a second.
FULL_HASH_BYTES = 512 * 2**20


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


def read_manifest(path: Path, index: str) -> Manifest:
    """The manifest of the version folder ``path``, validated; :class:`IndexCorrupt` when unreadable or wrong."""
    try:
        raw = (path / "manifest.json").read_bytes()
        return Manifest.model_validate(json.loads(raw))
    except FileNotFoundError as e:
        raise corrupt(index, f"{path.name}/manifest.json is missing") from e
    except (OSError, ValueError, RecursionError, ValidationError) as e:
        reason = str(e).splitlines()[0] if not isinstance(e, ValidationError) else _first_error(e)
        raise corrupt(index, f"{path.name}/manifest.json is unreadable ({reason})") from e


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


def file_facts(folder: Path) -> tuple[dict[str, str], dict[str, int]]:
    """(checksums, sizes) of a version's data files, for its manifest."""
    return ({n: sha256_file(folder / n) for n in DATA_FILES}, {n: (folder / n).stat().st_size for n in DATA_FILES})


def load_vectors(path: Path, index: str, manifest: Manifest, *, verify: bool = True):
    """Read ``vectors.faiss`` whole, check its size and checksum against the manifest, and deserialize it."""
    import faiss

    file = path / "vectors.faiss"
    try:
        data = file.read_bytes()
    except FileNotFoundError as e:
        raise corrupt(index, f"{path.name}/vectors.faiss is missing") from e
    except OSError as e:
        raise corrupt(index, f"{path.name}/vectors.faiss is unreadable ({e.strerror})") from e
    if verify and manifest.sizes and len(data) != manifest.sizes.get("vectors.faiss"):
        raise corrupt(index, f"{path.name}/vectors.faiss has {len(data):,} bytes, the manifest says "
                             f"{manifest.sizes.get('vectors.faiss'):,}")
    if verify and manifest.checksums and hashlib.sha256(data).hexdigest() != manifest.checksums.get("vectors.faiss"):
        raise corrupt(index, f"{path.name}/vectors.faiss does not match its checksum")
    try:
        return faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
    except (RuntimeError, ValueError) as e:  # faiss raises RuntimeError for any malformed file
        raise corrupt(index, f"{path.name}/vectors.faiss is not a FAISS index ({str(e).splitlines()[0][:120]})") from e


def vector_ids(vectors) -> np.ndarray:
    """The chunk ids a version's FAISS index holds (an ``IndexIDMap2``, or an IVF index with its own ids)."""
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

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "version": self.version, "ok": self.ok,
                "checks": [{"check": c, "ok": p, "detail": d} for c, p, d in self.checks]}


def verify(path: Path, index: str, manifest: Manifest, db: sqlite3.Connection, vectors, *, full: bool,
           report: CheckReport | None = None) -> CheckReport:
    """Check one opened version against its manifest; raises :class:`IndexCorrupt` at the first failure unless a
    ``report`` is given to collect every finding (``docqa check``)."""
    collect = report is not None
    report = report or CheckReport(index, path.name)

    def need(name: str, passed: bool, detail: str) -> bool:
        report.add(name, passed, "" if passed else detail)
        if not passed and not collect:
            raise corrupt(index, detail)
        return passed

    sizes = {n: (path / n).stat().st_size for n in DATA_FILES if (path / n).exists()}
    if manifest.sizes:
        for n in DATA_FILES:
            need(f"size of {n}", sizes.get(n) == manifest.sizes.get(n),
                 f"{path.name}/{n} has {sizes.get(n, 0):,} bytes, the manifest says {manifest.sizes.get(n, 0):,}")
    if manifest.checksums and (full or sum(sizes.values()) <= FULL_HASH_BYTES):
        got = sha256_file(path / "index.sqlite")
        need("checksum of index.sqlite", got == manifest.checksums.get("index.sqlite"),
             f"{path.name}/index.sqlite does not match its checksum (edited, truncated or copied from elsewhere)")
    try:
        if full:
            result = db.execute("PRAGMA integrity_check").fetchone()[0]
            need("SQLite integrity_check", result == "ok", f"SQLite integrity check says: {result[:120]}")
        rows = int(db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0])
        db_ids = np.fromiter((r[0] for r in db.execute("SELECT id FROM chunks ORDER BY id")), dtype=np.int64)
        per_file = dict(db.execute("SELECT name, chunks FROM files"))
        counted = dict(db.execute("SELECT file, COUNT(*) FROM chunks GROUP BY file"))
    except sqlite3.DatabaseError as e:
        need("SQLite readable", False, f"{path.name}/index.sqlite is unreadable ({e})")
        return report
    need("chunks = manifest", rows == manifest.chunks,
         f"the database holds {rows} chunks, the manifest says {manifest.chunks}")
    need("chunks = vectors", rows == vectors.ntotal, f"{rows} chunks but {vectors.ntotal} vectors")
    ids = np.sort(vector_ids(vectors))
    need("same ids", len(ids) == len(db_ids) and bool(np.array_equal(ids, db_ids)),
         "the vector ids differ from the chunk ids")
    need("files = manifest", set(per_file) == set(manifest.files),
         f"the database lists {len(per_file)} files, the manifest {len(manifest.files)}")
    if full:
        bad = sorted(f for f, n in per_file.items() if (n or 0) != counted.get(f, 0))
        need("chunks per file", not bad, f"chunk counts disagree for {', '.join(bad[:3])}")
        if manifest.dim is not None:
            need("vector dimension", vectors.d == manifest.dim, f"vectors are {vectors.d}-d, manifest says "
                                                                 f"{manifest.dim}-d")
    return report
