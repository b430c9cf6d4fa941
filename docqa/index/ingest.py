"""Ingest: files → extracted text → token-sized chunks → vectors → a new index version.

Reading goes through the reader of each file's suffix (:mod:`.readers`: llama-index's for pdf, docx and html; the
standard library's for text, CSV, RTF, e-mail, pptx and xlsx); splitting uses llama-index's ``SentenceSplitter``
counting tokens with the generator's own tokenizer, so a chunk's size is what it costs in a prompt. Embedding does
*not* go through llama-index's ingestion pipeline: the same chunks embedded by sentence-transformers in length-sorted
batches of 64 ran at 23 chunks/s here against 8 chunks/s for llama-index's default pipeline (see
benchmarks/ingest.py).

Ingest is incremental: a file whose bytes and chunk settings are unchanged is skipped by its SHA-256; a changed file
is replaced; with ``sync`` files no longer under the given paths are removed. It never leaves a half-written index
(:mod:`.store`).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from ..errors import ConfigError, IngestError, first_line
from ..records import Chunk, FileOutcome, IngestReport
from .readers import SUPPORTED, Unreadable, read_file
from .segments import DocumentPart
from .writer import writing


@dataclass
class IngestConfig:
    # Generator tokens per chunk. all-MiniLM-L6-v2 embeds at most 256 word pieces and SmolLM2's BPE yields about
    # as many tokens as BERT's word pieces on English prose, so 200 keeps whole chunks inside the embedder's window.
    chunk_tokens: int = 160
    # Up to this many tokens of *whole* sentences carried from a chunk into the next (SentenceSplitter): a sentence
    # longer than that is not carried, so consecutive chunks may share nothing (README, "Use it").
    overlap: int = 24
    sync: bool = False  # remove indexed files that are no longer under the given paths
    rebuild: bool = False  # ignore the existing index and build a new version from scratch
    summaries: bool = False  # store a summary per document (needs a summarizer; the summarize strategy's fast path)
    extra_ignore: tuple[str, ...] = field(default=())  # glob patterns of files to skip
    # Larger files are listed as skipped: splitting costs ~6 s and ~150 MB per MB of text on 2 cores, and a shared
    # drive's 50 MB log file is rarely a document anyone asks about.
    max_file_mb: float = 64.0
    index_type: str = "auto"  # FAISS index: auto (exact, IVF from 50 000 chunks), flat, ivf or hnsw (index/vectors.py)
    # Where the vectors live (index/vector_stores/): None keeps the index's own (FAISS for a new index), or
    # {"type": "milvus", "uri": ..., "collection": ...}.
    vector_store: dict | None = None
    # The retriever the index is for (recorded in its manifest; ask uses it unless told otherwise). None: keep the
    # index's own (docqa.retrieval.DEFAULT_RETRIEVER for a new index).
    retriever: str | None = None
    default_retriever: str | None = None  # what a new index (or one that records none) records


class IngestProgress:
    """Callbacks the CLI uses to draw progress; the defaults do nothing."""

    def files(self, total: int) -> None: ...
    def file_done(self, name: str, outcome: str) -> None: ...
    def embed_start(self, total: int) -> None: ...
    def embedded(self, n: int) -> None: ...
    def summaries_start(self, total: int) -> None: ...
    def summarized(self, name: str) -> None: ...
    def lexical_start(self, total: int) -> None: ...
    def lexical_done(self, n: int) -> None: ...


def _walk(root: Path) -> Iterator[tuple[Path, str | None]]:
    """Every non-folder entry under ``root`` in a stable order, with the reason it cannot be read (None if it can).

    Symlinked folders are followed once (a loop back to a folder already visited is reported, not followed);
    broken links, link loops, FIFOs, sockets and devices are reported and never opened (opening a FIFO blocks)."""
    seen: set[tuple[int, int]] = set()
    problems: list[tuple[Path, str]] = []

    def unreadable(e: OSError) -> None:
        problems.append((Path(e.filename or root), f"unreadable folder ({e.strerror})"))

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=unreadable):
        here = Path(dirpath)
        try:
            st = os.stat(here)
        except OSError as e:
            yield here, f"unreadable folder ({e.strerror})"
            dirnames[:] = []
            continue
        if (st.st_dev, st.st_ino) in seen:
            yield here, "symlink loop: this folder was already read through another path"
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            if not f.startswith("."):
                path = here / f
                yield path, _entry_problem(path)
    yield from problems


def _entry_problem(path: Path) -> str | None:
    """Why ``path`` is not a regular file that can be read, or None."""
    try:
        st = os.stat(path)  # follows links
    except FileNotFoundError:
        return f"broken symlink (points to {os.readlink(path)!r})" if path.is_symlink() else "vanished while reading"
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symlink loop"
        return f"cannot stat ({e.strerror})"
    if stat.S_ISREG(st.st_mode):
        return None
    kind = ("FIFO" if stat.S_ISFIFO(st.st_mode) else "socket" if stat.S_ISSOCK(st.st_mode)
            else "device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "special file")
    return f"not a regular file ({kind}); never opened"


def display_name(rel: str) -> tuple[str, bool]:
    """A file's name in the index: its path relative to the ingested root, as valid UTF-8. A name the file system
    holds as undecodable bytes keeps its readable parts, with U+FFFD for the bad bytes. Returns (name, was_bad)."""
    try:
        rel.encode("utf-8")
        return rel, False
    except UnicodeEncodeError:
        return rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace"), True


def _collect(paths: list[Path], ignore: tuple[str, ...]) -> tuple[dict[str, Path], list[FileOutcome]]:
    """Map index-relative names to files; unsupported or unreadable entries are reported, never fatal."""
    found: dict[str, Path] = {}
    skipped: list[FileOutcome] = []
    for root in paths:
        if not os.path.lexists(root):
            raise IngestError(f"Path '{display_name(str(root))[0]}' does not exist. Pass a file or a folder of "
                              f"documents.")
        if root.is_dir():
            entries = list(_walk(root))
        else:
            entries = [(root, _entry_problem(root))]
        for f, problem in entries:
            rel, bad_name = display_name(f.name if not root.is_dir() else os.path.relpath(f, root))
            if any(f.match(g) for g in ignore):
                continue
            if problem:
                skipped.append(FileOutcome(rel, "skipped", problem))
                continue
            if f.suffix.lower() not in SUPPORTED:
                skipped.append(FileOutcome(rel, "skipped", f"unsupported type '{f.suffix or '(none)'}'"))
                continue
            if rel in found:  # two undecodable names that read the same
                skipped.append(FileOutcome(rel, "skipped", "name clashes with another file once made valid UTF-8"))
                continue
            found[rel] = f
    return found, skipped


# The splitter's memory grows ~150 bytes per character of one piece of text (measured: a 3 MB one-line file took
# 0.9 GB); feeding it windows of at most this many characters, cut at a paragraph, line or space, bounds it.
_SPLIT_WINDOW = 500_000


def _windows(text: str, size: int = _SPLIT_WINDOW) -> Iterator[tuple[int, str]]:
    start = 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            for sep in ("\n\n", "\n", " "):
                cut = text.rfind(sep, start + size // 2, end)
                if cut > start:
                    end = cut + len(sep)
                    break
        yield start, text[start:end]
        start = end


def split_parts(
    parts: list[DocumentPart], tokenize: Callable[[str], list[int]], chunk_tokens: int, overlap: int
) -> list[Chunk]:
    """Token-sized chunks with char spans in their part's text, via llama-index's SentenceSplitter."""
    from llama_index.core import Document
    from llama_index.core.node_parser import SentenceSplitter

    splitter = SentenceSplitter(chunk_size=chunk_tokens, chunk_overlap=overlap, tokenizer=tokenize)
    chunks: list[Chunk] = []
    for part in parts:
        for offset, window in _windows(part.text):
            for node in splitter.get_nodes_from_documents([Document(text=window)]):
                text = node.get_content()
                start = node.start_char_idx if node.start_char_idx is not None else window.find(text)
                end = node.end_char_idx if node.end_char_idx is not None else start + len(text)
                chunks.append(Chunk(0, part.file, len(chunks), text, offset + start, offset + end, part.page,
                                    len(tokenize(text))))
    return chunks


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("docqa", "transformers", "sentence-transformers", "faiss-cpu", "llama-index-core", "torch"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _live_dim(index: str, root: Path, spec: str) -> int | None:
    """The vector size the live version of ``index`` records, if it was built with the embedder ``spec``."""
    from ..errors import DocQAError
    from .versions import read_live_manifest

    try:
        manifest = read_live_manifest(index, root)
    except DocQAError:  # no index yet, or damaged: the writer says how
        return None
    return manifest.dim if manifest.embedder == spec else None


def ingest(
    paths: list[Path],
    *,
    index: str,
    root: Path,
    embedder,
    tokenize: Callable[[str], list[int]],
    tokenizer_spec: str,
    config: IngestConfig | None = None,
    progress: IngestProgress | None = None,
    summarizer: Callable[[str, str], tuple[str, int]] | None = None,
) -> IngestReport:
    """Bring ``index`` up to date with the documents under ``paths``; see the module docstring."""
    config = config or IngestConfig()
    progress = progress or IngestProgress()
    if config.chunk_tokens < 16 or not 0 <= config.overlap < config.chunk_tokens:
        raise ConfigError(
            f"Bad chunk settings (--chunk-tokens {config.chunk_tokens}, --overlap {config.overlap}): need "
            f"chunk-tokens ≥ 16 and 0 ≤ overlap < chunk-tokens."
        )
    t0 = time.perf_counter()
    found, outcomes = _collect([Path(p) for p in paths], config.extra_ignore)
    if not found:
        where = ", ".join(str(p) for p in paths)
        raise IngestError(f"No supported documents under {where}. docqa reads {', '.join(SUPPORTED)}.")
    report = IngestReport(index=index)
    settings = {"embedder": embedder.spec, "tokenizer": tokenizer_spec, "chunk_tokens": config.chunk_tokens,
                "overlap": config.overlap}
    # An index built with this embedder says its vector size: an unchanged corpus then loads no model at all.
    dim = (None if config.rebuild else _live_dim(index, root, embedder.spec)) or embedder.dim
    with writing(index, root, dim=dim, rebuild=config.rebuild, index_type=config.index_type,
                 vector_store=config.vector_store) as w:
        old = w.old_manifest
        if old and old.get("embedder") != embedder.spec:
            from ..errors import EmbedderMismatch

            raise EmbedderMismatch(index, old.get("embedder", "?"), embedder.spec)
        same_settings = bool(old) and all(old.get(k) == v for k, v in settings.items())
        known = w.file_hashes()
        progress.files(len(found))
        pending: list[tuple[str, str, int, list[DocumentPart], list[Chunk]]] = []
        max_bytes = int(config.max_file_mb * 2**20)
        for name, path in found.items():
            try:
                size = path.stat().st_size
                data = path.read_bytes() if size <= max_bytes else None  # an oversized file is refused unread
                digest = hashlib.sha256(data or b"").hexdigest()
                if data and same_settings and known.get(name) == digest:
                    outcomes.append(FileOutcome(name, "skipped", "unchanged"))
                    progress.file_done(name, "skipped")
                    continue
                parts = read_file(path, name, max_bytes, data)
                if not parts:
                    raise Unreadable("no extractable text (only whitespace, or markup and scripts; or a scanned pdf)")
                chunks = split_parts(parts, tokenize, config.chunk_tokens, config.overlap)
            except (Unreadable, OSError, MemoryError, RecursionError, UnicodeError, ValueError) as e:
                reason = str(e) if isinstance(e, Unreadable) else f"{type(e).__name__}: {first_line(e)}"
                outcomes.append(FileOutcome(name, "failed", reason[:200]))
                progress.file_done(name, "failed")
                continue
            pending.append((name, digest, size, parts, chunks))
            progress.file_done(name, "read")
        if not pending and not old:
            failed = "; ".join(f"{o.file}: {o.reason}" for o in outcomes if o.status == "failed")
            raise IngestError(f"No document could be read ({failed or 'nothing to read'}). Nothing was indexed.")
        all_chunks = [c for *_, chunks in pending for c in chunks]
        if all_chunks and embedder.dim != dim:  # the model behind the index's embedder name changed size
            raise ConfigError(f"Index '{index}' holds {dim}-d vectors; embedder '{embedder.spec}' now makes "
                              f"{embedder.dim}-d (its model changed under the same name). Use --rebuild.")
        progress.embed_start(len(all_chunks))
        vectors = embedder.embed([c.text for c in all_chunks], progress=progress.embedded) if all_chunks else None
        if all_chunks and embedder.max_tokens:
            counts = embedder.count_tokens([c.text for c in all_chunks])
            report.truncated_chunks = sum(1 for n in counts if n > embedder.max_tokens)
        offset = 0
        for name, digest, size, parts, chunks in pending:
            vecs = vectors[offset : offset + len(chunks)] if vectors is not None else None
            offset += len(chunks)
            status = "updated" if name in known else "added"
            w.add_file(name, digest, size, parts, chunks, vecs)
            outcomes.append(FileOutcome(name, status, "changed" if status == "updated" else "", len(chunks),
                                        sum(c.tokens for c in chunks)))
            report.chunks_added += len(chunks)
            report.tokens_added += sum(c.tokens for c in chunks)
        if config.sync:
            for name in sorted(set(known) - set(found)):
                w.remove_file(name)
                outcomes.append(FileOutcome(name, "removed", "no longer under the given paths"))
        lexical = 0
        if w.missing_lexical():  # an index written before docqa kept BM25 postings: added in place, once
            progress.lexical_start(w.missing_lexical())
            lexical = w.add_lexical(progress.lexical_done)
            report.lexical_added = lexical
        retriever = config.retriever or old.get("retriever") or config.default_retriever
        summarized = 0
        if config.summaries:
            if summarizer is None:
                raise ConfigError("Summaries were asked for, but no summarizer was given.")
            todo = w.files_without_summary()
            progress.summaries_start(len(todo))
            for name in todo:
                text = "\n\n".join(p.text for p in w.document_parts(name))
                summary, calls = summarizer(name, text)
                w.set_summary(name, summary, tokenizer_spec, calls)
                summarized += 1
                progress.summarized(name)
        report.summaries = summarized
        unchanged = (not pending and not any(o.status == "removed" for o in outcomes) and same_settings
                     and not summarized and not w.rewritten and retriever == old.get("retriever"))
        if unchanged:
            w.abort()  # nothing changed: keep the live version, do not create an identical one
            report.version = int(old.get("version", 0))
            report.chunks_total = int(old.get("chunks", 0))
        else:
            path = w.commit({**settings, "libraries": _versions(), "dim": dim,
                             "faiss": "IndexIDMap2(IndexFlatIP)", **({"retriever": retriever} if retriever else {})})
            report.version = w.version
            import json

            report.chunks_total = int(json.loads((path / "manifest.json").read_text())["chunks"])
    report.files = outcomes
    report.seconds = time.perf_counter() - t0
    return report
