"""The on-disk index, write side: the next version, built beside the live one from what changed.

:class:`IndexWriter` writes one new segment (:mod:`.new_segment`) with the files this ingest added, tombstones the
files it removed in the segments that hold them, merges segments when the merge policy says so, hard-links every
unchanged segment file from the live version, writes the manifest, fsyncs, renames the folder to its version name
and only then points ``CURRENT`` at it with ``os.replace``. A failure at any step leaves the previous version live;
the cost of a version is what changed (plus, amortized, the merges), not the corpus.

Recovery is done by the next writer, under the lock, before it reads anything: temp folders of dead writers are
removed, and so is a version folder newer than ``CURRENT`` (a writer killed between its rename and the ``CURRENT``
update: that ingest never reported success). A writer verifies the segments it builds on — sizes, counts and, under
a byte budget, checksums of the files it links; everything it reads — and refuses to build on damage.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DocQAError, IndexCorrupt, IndexWriteError, first_line
from ..records import Chunk
from .integrity import (
    FULL_HASH_BYTES,
    CheckReport,
    Manifest,
    Segment,
    check_files,
    corrupt,
    read_manifest,
    sha256_file,
    verify_segment,
    verify_totals,
)
from .lexical import PostingsBuilder
from .new_segment import NewSegment
from .segments import DocumentPart, SegmentState, merge, open_ro, plan, summaries_of
from .vector_stores import for_writer
from .vectors import check_type
from .versions import fsync, fsync_dir, link_or_copy, prune, recover, valid_name, valid_root, versions, write_atomic

FORMAT = 3  # 3: segments shared between versions; 2: checksums and sizes in the manifest
KEEP_VERSIONS = 2  # the live one and its predecessor; older ones go unless a reader still holds them
# "before-lexical": the new segment's vectors written, its BM25 postings not yet.
FAULT_POINTS = ("begin", "before-lexical", "after-vectors", "after-manifest", "after-rename", "after-current",
                "after-prune")
# Within a commit that merges segments (every MERGE_FACTOR small segments): before the merged segment is written, and
# once it is, before the manifest names it.
MERGE_FAULT_POINTS = ("merge-begin", "after-merge")


def _fault(point: str) -> None:
    """Crash-test hook: ``DOCQA_FAULT=point`` makes the writer kill itself (SIGKILL) at that point, so tests can
    prove recovery at every step of a commit. Does nothing otherwise."""
    if os.environ.get("DOCQA_FAULT") == point:
        os.kill(os.getpid(), signal.SIGKILL)


class IndexWriter:
    """Builds the next version of an index beside the live one and swaps it in on :meth:`commit`."""

    def __init__(self, name: str, root: Path, *, dim: int, rebuild: bool = False, index_type: str = "auto",
                 vector_store: dict[str, Any] | None = None):
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
        self.seg: NewSegment | None = None
        self.base_dbs: dict[str, sqlite3.Connection] = {}
        self.store = None
        try:
            self._open(dim, rebuild, vector_store)
        except BaseException as e:
            self.abort()
            if isinstance(e, OSError):
                raise IndexWriteError(f"Cannot write index '{name}' ({first_line(e)}). Free disk space or fix "
                                      f"permissions under {self.home}.") from e
            raise

    # ------------------------------------------------------------------------------------------------ opening
    def _open(self, dim: int, rebuild: bool, requested: dict[str, Any] | None) -> None:
        live = recover(self.home, self.name, keep_current=rebuild)  # sweeps what dead writers left
        previous = None if rebuild else live  # --rebuild starts empty: the live version is not read
        self.previous = previous
        self.old_manifest: dict[str, Any] = {}
        self.placement: dict[str, str] = {}  # live file → the base segment holding it
        base = self._verify_base(previous) if previous is not None else None
        if base is not None:
            self.old_manifest = base.model_dump()
            if base.dim is not None and base.dim != dim:
                raise ConfigError(f"Index '{self.name}' holds {base.dim}-d vectors; this embedder makes {dim}-d. "
                                  f"Use the index's embedder ({base.embedder}) or --rebuild.")
        self.segments: list[Segment] = [s.model_copy(deep=True) for s in base.segments] if base else []
        self.files: dict[str, str] = dict(base.files) if base else {}
        self.chunks_live = base.chunks if base else 0
        self.tokens_live = base.tokens if base else 0
        self.next_chunk_id = base.next_chunk_id if base else 1
        self.next_segment = base.next_segment if base else 1
        self.deleted_ids: list[int] = []
        self.version = max(base.version if base else 0, self._last_version()) + 1
        self.store, self._drop_after = for_writer(self.name, self.home, self.version, base, requested, live, dim)
        self.path = self.home / f"v{self.version:06d}"
        self.tmp = self.home / f".tmp-v{self.version:06d}-{os.getpid()}"
        self.tmp.mkdir()
        self.seg = NewSegment(self.tmp, self._new_segment_name())
        self.rewritten: set[str] = set()  # base segments copied into this version with postings added
        _fault("begin")

    def _verify_base(self, previous: Path) -> Manifest:
        """Never build on damage: every segment's sizes and counts, and checksums of all files while the version is
        under the hashing budget. Segments stay open (read-only) for lookups; none is loaded whole."""
        base = read_manifest(previous, self.name)
        report = CheckReport(self.name, previous.name, collect=False)
        total = sum(seg.sizes.get(n, 0) for seg in base.segments for n in seg.files)
        check_files(previous, base.segments, hash_sqlite=total <= FULL_HASH_BYTES, report=report, hash_faiss=True)
        live_files = []
        for seg in base.segments:
            try:
                db = open_ro(previous / seg.sqlite)
            except sqlite3.Error as e:
                raise corrupt(self.name, f"{previous.name}/{seg.sqlite} cannot be opened ({first_line(e)})") from e
            self.base_dbs[seg.name] = db
            files, _ = verify_segment(previous, self.name, seg, db, None, full=False, report=report)
            live_files.append(files)
        verify_totals(base, live_files, report)
        self.placement = {f: seg.name for seg, files in zip(base.segments, live_files) for f in files}
        return base

    def _new_segment_name(self) -> str:
        name = f"s{self.next_segment:06d}"
        self.next_segment += 1
        return name

    def _last_version(self) -> int:
        return max((int(p.name[1:]) for p in versions(self.home)), default=0)

    # ------------------------------------------------------------------------------------------------ changes
    def _base_rows(self, seg: str, sql: str, args: tuple | list = ()) -> list[tuple]:
        try:
            return self.base_dbs[seg].execute(sql, args).fetchall()
        except sqlite3.DatabaseError as e:  # passed its checks, so the file changed under us
            raise corrupt(self.name, f"segment {seg} is unreadable ({first_line(e)})") from e

    def file_hashes(self) -> dict[str, str]:
        return dict(self.files)

    def remove_file(self, name: str) -> None:
        """Delete a file: from the new segment if this ingest added it, else by a tombstone in its segment."""
        chunks, tokens = self.seg.remove(name)
        self.chunks_live -= chunks
        self.tokens_live -= tokens
        seg_name = self.placement.pop(name, None)
        if seg_name is not None:
            seg = next(s for s in self.segments if s.name == seg_name)
            ids = [r[0] for r in self._base_rows(seg_name, "SELECT id FROM chunks WHERE file = ?", (name,))]
            tokens = self._base_rows(seg_name, "SELECT tokens FROM files WHERE name = ?", (name,))
            seg.dead = sorted({*seg.dead, name})
            seg.dead_rows += len(ids)
            self.deleted_ids += ids
            self.chunks_live -= len(ids)
            self.tokens_live -= int(tokens[0][0] or 0) if tokens else 0
        self.files.pop(name, None)

    def add_file(
        self, name: str, sha256: str, size: int, parts: list[DocumentPart], chunks: list[Chunk], vectors: np.ndarray
    ) -> None:
        """Insert one file's documents, chunks and vectors into the new segment (chunk ids are assigned here)."""
        self.remove_file(name)
        ids = np.arange(self.next_chunk_id, self.next_chunk_id + len(chunks), dtype=np.int64)
        tokens = self.seg.add(name, sha256, size, parts, chunks, ids, vectors)
        self.files[name] = sha256
        self.next_chunk_id += len(chunks)
        self.chunks_live += len(chunks)
        self.tokens_live += tokens

    def missing_lexical(self) -> int:
        """Live chunks in base segments written before docqa kept BM25 postings."""
        return sum(s.live_rows for s in self.segments if not s.lexical)

    def add_lexical(self, progress: Callable[[int], None] | None = None) -> int:
        """Give every base segment without BM25 postings its postings, in place: its SQLite file is copied into this
        version with the lexical tables added (its vectors stay shared), the copy's checksum recorded. The live
        version is untouched until commit. Returns the chunks tokenized; ``progress(n)`` after each file."""
        done = 0
        for seg in self.segments:
            if seg.lexical:
                continue
            out = self.tmp / seg.sqlite
            shutil.copyfile(self.previous / seg.sqlite, out)
            db = sqlite3.connect(out)
            try:
                # Postings of another analyzer (a segment not marked lexical may still hold tables) are rebuilt.
                db.executescript("DROP TABLE IF EXISTS lex_postings; DROP TABLE IF EXISTS lex_files; "
                                 "DROP TABLE IF EXISTS lex_meta;")
                builder = PostingsBuilder()
                for (file,) in db.execute("SELECT name FROM files ORDER BY name").fetchall():
                    rows = db.execute("SELECT id, text FROM chunks WHERE file = ? ORDER BY id", (file,)).fetchall()
                    builder.add_file(file, [r[0] for r in rows], [r[1] for r in rows])
                    done += len(rows)
                    if progress is not None:
                        progress(len(rows))
                builder.write(db)
                db.commit()
            finally:
                db.close()
            seg.lexical = True
            seg.checksums = {**seg.checksums, seg.sqlite: sha256_file(out)}
            seg.sizes = {**seg.sizes, seg.sqlite: out.stat().st_size}
            self.rewritten.add(seg.name)
        return done

    def _summarized(self) -> set[str]:
        done = set()
        for db in [*self.base_dbs.values(), self.seg.db]:
            done.update(f for f, sha, *_ in summaries_of(db) if self.files.get(f) == sha)
        return done

    def files_without_summary(self) -> list[str]:
        return sorted(set(self.files) - self._summarized())

    def document_parts(self, name: str) -> list[DocumentPart]:
        parts = self.seg.document_parts(name)
        if not parts and name in self.placement:
            sql = "SELECT file, part, page, text FROM documents WHERE file = ? ORDER BY part"
            parts = [DocumentPart(*r) for r in self._base_rows(self.placement[name], sql, (name,))]
        return parts

    def set_summary(self, name: str, text: str, model: str, calls: int) -> None:
        self.seg.set_summary(name, self.files[name], text, model, calls, self.version)

    # ------------------------------------------------------------------------------------------------ commit
    def commit(self, manifest: dict[str, Any]) -> Path:
        """Write everything, then make this version live atomically. Returns the version folder."""
        try:
            return self._commit(manifest)
        except OSError as e:
            raise IndexWriteError(f"Cannot write index '{self.name}' ({first_line(e)}). The previous version is "
                                  f"still live. Free disk space or fix permissions under {self.home}.") from e

    def _commit(self, manifest: dict[str, Any]) -> Path:
        assert self.seg is not None and self.tmp is not None
        new = self.seg.finish(self.store, self.index_type, _fault)
        states = [self._state(s, self.base_dbs.get(s.name)) for s in self.segments]
        if new is not None:
            states.append(self._state(new, self.seg.ro))
        drop, groups = plan(states)
        gone = {s.seg.name for s in drop} | {s.seg.name for g in groups for s in g}
        final = [s.seg for s in states if s.seg.name not in gone]
        final += [self._merge(g) for g in groups]
        self.seg.close()
        if new is not None and new.name in gone:  # merged into another segment: its own files are not needed
            for f in new.files:
                (self.tmp / f).unlink(missing_ok=True)
        final.sort(key=lambda s: s.name)
        _fault("after-vectors")
        for name in self.rewritten & gone:  # merged away: its copy with postings is not part of the version
            (self.tmp / next(s for s in self.segments if s.name == name).sqlite).unlink(missing_ok=True)
        for seg in final:
            if seg.name in self.base_dbs:  # unchanged since the live version: shared, not copied
                for f in seg.files:
                    if not (seg.name in self.rewritten and f == seg.sqlite):
                        link_or_copy(self.previous / f, self.tmp / f)
        settings = {k: manifest.get(k) for k in ("embedder", "tokenizer", "chunk_tokens", "overlap")}
        content = hashlib.sha256(json.dumps([sorted(self.files.items()), settings]).encode()).hexdigest()[:16]
        now = time.time()
        largest = max(final, key=lambda s: s.live_rows, default=None)
        record = {
            **manifest,
            "format": FORMAT,
            "name": self.name,
            "version": self.version,
            "created": self.old_manifest.get("created", now),
            "updated": now,
            "files": dict(sorted(self.files.items())),
            "chunks": int(self.chunks_live),
            "tokens": int(self.tokens_live),
            "content_id": content,
            "next_chunk_id": int(self.next_chunk_id),
            "next_segment": int(self.next_segment),
            "segments": [s.model_dump() for s in final],
            "vector_index": dict(largest.vector_index) if largest else {"type": "flat"},
            "vector_store": self.store.spec,
            "pending_deletes": [int(i) for i in self.deleted_ids] if self.store.external else [],
            "checksums": {},
            "sizes": {},
        }
        Manifest.model_validate(record)  # what we write, we can read back
        write_atomic(self.tmp / "manifest.json", json.dumps(record, indent=1, sort_keys=True))
        linked = {f for seg in self.segments for f in seg.files  # already durable in the live version
                  if not (seg.name in self.rewritten and f == seg.sqlite)}
        for f in self.tmp.iterdir():
            if f.name not in linked:
                fsync(f)
        _fault("after-manifest")
        self._close_base()
        os.replace(self.tmp, self.path)
        fsync_dir(self.home)
        _fault("after-rename")
        write_atomic(self.home / "CURRENT", self.path.name)
        fsync_dir(self.home)
        self.tmp = None
        _fault("after-current")
        self.store.commit_deletes(record["pending_deletes"])  # Milvus; the next writer redoes it if killed here
        if self._drop_after is not None:
            with contextlib.suppress(DocQAError):  # an unreachable old server: its collection is left, not fatal
                self._drop_after.drop()
            self._drop_after.close()
        prune(self.home, KEEP_VERSIONS)
        _fault("after-prune")
        self._sweep_collections()
        self._release()
        return self.path

    def _sweep_collections(self) -> None:
        """After a Milvus version is live: drop docqa-named collections of this index that no version on disk
        references (left by a --rebuild killed before its version went live). Only in a Milvus Lite file of this
        index's own folder: on a shared server two index names that sanitize alike ("a-b", "a_b") would share the
        name pattern, so a sweep there could drop another index's collection. Skipped if any manifest is
        unreadable — its collection cannot be known — and never fatal: the commit is already done."""
        uri = self.store.spec.get("uri", "") if self.store.external else ""
        if not uri or "://" in uri or Path(uri).resolve().parent != self.home.resolve():
            return
        referenced = set()
        for folder in versions(self.home):
            try:
                vs = read_manifest(folder, self.name).vector_store or {}
            except IndexCorrupt:
                return
            if vs.get("type") == "milvus" and vs.get("uri") == self.store.spec.get("uri"):
                referenced.add(vs.get("collection"))
        with contextlib.suppress(DocQAError):
            self.store.sweep(referenced | {self.store.spec.get("collection")})

    def _state(self, seg: Segment, db: sqlite3.Connection) -> SegmentState:
        files = frozenset(r[0] for r in db.execute("SELECT name FROM files"))
        live = sum(1 for f, sha, *_ in summaries_of(db) if self.files.get(f) == sha)
        return SegmentState(seg, files, live)

    def _where(self, seg: Segment) -> Path:
        return self.tmp if seg.name == self.seg.name or seg.name in self.rewritten else self.previous

    def _merge(self, group: list[SegmentState]) -> Segment:
        """One segment holding the live files, chunks and summaries of ``group`` (chunk ids kept)."""
        _fault("merge-begin")
        name = self._new_segment_name()
        seg = merge(group, self.tmp, name, live=self.files, where=self._where, store=self.store,
                    index_type=self.index_type, index=self.name)
        expected = sum(s.seg.live_rows for s in group)
        if seg.rows != expected:  # a merge must neither lose nor invent chunks; the live version is untouched
            raise IndexWriteError(f"Merging segments of index '{self.name}' kept {seg.rows} of {expected} chunks; "
                                  f"nothing was changed. Please report this; --rebuild works around it.")
        _fault("after-merge")
        return seg

    # ------------------------------------------------------------------------------------------------ endings
    def _close_base(self) -> None:
        for db in self.base_dbs.values():
            with contextlib.suppress(Exception):
                db.close()
        self.base_dbs = {}

    def abort(self) -> None:
        """Drop the unfinished version; the live one is untouched."""
        if self.seg is not None:
            self.seg.close()
        self._close_base()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
        with contextlib.suppress(OSError):
            if not (self.home / "CURRENT").exists() and not any(self.home.glob("v[0-9]*")):
                if self.store is not None and self.store.external:  # a first ingest's collection goes with it
                    with contextlib.suppress(Exception):
                        self.store.drop()
                shutil.rmtree(self.home, ignore_errors=True)  # a first ingest that failed leaves nothing behind
        self._release()

    @property
    def pending(self) -> bool:
        """True between opening and commit/abort."""
        return self.tmp is not None

    def _release(self) -> None:
        if self.store is not None:
            with contextlib.suppress(Exception):
                self.store.close()
        with contextlib.suppress(Exception):
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()


@contextlib.contextmanager
def writing(name: str, root: Path, *, dim: int, rebuild: bool = False, index_type: str = "auto",
            vector_store: dict[str, Any] | None = None) -> Iterator[IndexWriter]:
    """``with writing(...) as w:`` — the caller must call ``w.commit(manifest)``; any exception aborts."""
    writer = IndexWriter(name, root, dim=dim, rebuild=rebuild, index_type=index_type, vector_store=vector_store)
    try:
        yield writer
    except sqlite3.DatabaseError as e:  # the base passed its check, so the file changed under us
        writer.abort()
        raise corrupt(name, f"a segment is unreadable ({first_line(e)})") from e
    except BaseException:
        writer.abort()
        raise
    if writer.pending:  # the body returned without committing
        writer.abort()
