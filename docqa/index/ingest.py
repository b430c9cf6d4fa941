"""Ingest: files → extracted text → token-sized chunks → vectors → a new index version.

Reading uses llama-index's readers (``SimpleDirectoryReader`` with its pdf and docx readers, ``HTMLTagReader`` for
html); splitting uses llama-index's ``SentenceSplitter`` counting tokens with the generator's own tokenizer, so a
chunk's size is what it costs in a prompt. Embedding does *not* go through llama-index's ingestion pipeline: the
same chunks embedded by sentence-transformers in length-sorted batches of 64 ran at 23 chunks/s here against 8
chunks/s for llama-index's default pipeline (see benchmarks/ingest.py).

Ingest is incremental: a file whose bytes and chunk settings are unchanged is skipped by its SHA-256; a changed file
is replaced; with ``sync`` files no longer under the given paths are removed. It never leaves a half-written index
(:mod:`.store`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from ..errors import ConfigError, IngestError
from ..records import Chunk, FileOutcome, IngestReport
from .store import DocumentPart, writing

SUPPORTED = (".txt", ".md", ".pdf", ".html", ".htm", ".docx")


@dataclass
class IngestConfig:
    # Generator tokens per chunk. all-MiniLM-L6-v2 embeds at most 256 word pieces and SmolLM2's BPE yields about
    # as many tokens as BERT's word pieces on English prose, so 200 keeps whole chunks inside the embedder's window.
    chunk_tokens: int = 160
    overlap: int = 24  # tokens shared by consecutive chunks, so a fact cut at a boundary is whole in one of them
    sync: bool = False  # remove indexed files that are no longer under the given paths
    rebuild: bool = False  # ignore the existing index and build a new version from scratch
    summaries: bool = False  # store a summary per document (needs a summarizer; the summarize strategy's fast path)
    extra_ignore: tuple[str, ...] = field(default=())  # glob patterns of files to skip


class IngestProgress:
    """Callbacks the CLI uses to draw progress; the defaults do nothing."""

    def files(self, total: int) -> None: ...
    def file_done(self, name: str, outcome: str) -> None: ...
    def embed_start(self, total: int) -> None: ...
    def embedded(self, n: int) -> None: ...
    def summaries_start(self, total: int) -> None: ...
    def summarized(self, name: str) -> None: ...


def _collect(paths: list[Path], ignore: tuple[str, ...]) -> tuple[dict[str, Path], list[FileOutcome]]:
    """Map index-relative names to files; unsupported files are reported, not fatal."""
    found: dict[str, Path] = {}
    skipped: list[FileOutcome] = []
    for root in paths:
        if not root.exists():
            raise IngestError(f"Path '{root}' does not exist. Pass a file or a folder of documents.")
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            rel = f.name if root.is_file() else str(f.relative_to(root))
            if any(part.startswith(".") for part in Path(rel).parts) or any(f.match(g) for g in ignore):
                continue
            if f.suffix.lower() not in SUPPORTED:
                skipped.append(FileOutcome(rel, "skipped", f"unsupported type '{f.suffix or '(none)'}'"))
                continue
            found[rel] = f
    return found, skipped


def _extractors() -> dict:
    from llama_index.readers.file import HTMLTagReader

    # SimpleDirectoryReader reads .html as raw text, markup included; read the body's text instead.
    return {".html": HTMLTagReader(tag="body"), ".htm": HTMLTagReader(tag="body")}


def read_file(path: Path, name: str) -> list[DocumentPart]:
    """Extract text with llama-index's readers: one part per page for pdf, one part otherwise."""
    from llama_index.core import SimpleDirectoryReader

    docs = SimpleDirectoryReader(input_files=[str(path)], file_extractor=_extractors(), raise_on_error=True).load_data()
    parts = []
    for i, d in enumerate(docs):
        text = d.text.replace("\x00", "").strip()
        if text:
            parts.append(DocumentPart(name, i, d.metadata.get("page_label") if len(docs) > 1 else None, text))
    return parts


def split_parts(
    parts: list[DocumentPart], tokenize: Callable[[str], list[int]], chunk_tokens: int, overlap: int
) -> list[Chunk]:
    """Token-sized chunks with char spans in their part's text, via llama-index's SentenceSplitter."""
    from llama_index.core import Document
    from llama_index.core.node_parser import SentenceSplitter

    splitter = SentenceSplitter(chunk_size=chunk_tokens, chunk_overlap=overlap, tokenizer=tokenize)
    chunks: list[Chunk] = []
    for part in parts:
        nodes = splitter.get_nodes_from_documents([Document(text=part.text)])
        for node in nodes:
            text = node.get_content()
            start = node.start_char_idx if node.start_char_idx is not None else part.text.find(text)
            end = node.end_char_idx if node.end_char_idx is not None else start + len(text)
            chunks.append(Chunk(0, part.file, len(chunks), text, start, end, part.page, len(tokenize(text))))
    return chunks


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("docqa", "transformers", "sentence-transformers", "faiss-cpu", "llama-index-core", "torch"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


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
    with writing(index, root, dim=embedder.dim, rebuild=config.rebuild) as w:
        old = w.old_manifest
        if old and old.get("embedder") != embedder.spec:
            from ..errors import EmbedderMismatch

            raise EmbedderMismatch(index, old.get("embedder", "?"), embedder.spec)
        same_settings = bool(old) and all(old.get(k) == v for k, v in settings.items())
        known = w.file_hashes()
        progress.files(len(found))
        pending: list[tuple[str, str, int, list[DocumentPart], list[Chunk]]] = []
        for name, path in found.items():
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if same_settings and known.get(name) == digest:
                outcomes.append(FileOutcome(name, "skipped", "unchanged"))
                progress.file_done(name, "skipped")
                continue
            try:
                parts = read_file(path, name)
            except Exception as e:  # noqa: BLE001 - a bad file is reported and skipped, never fatal
                outcomes.append(FileOutcome(name, "failed", f"unreadable: {type(e).__name__}: {e}"[:200]))
                progress.file_done(name, "failed")
                continue
            if not parts:
                outcomes.append(FileOutcome(name, "failed", "no extractable text (scanned pdf or empty file?)"))
                progress.file_done(name, "failed")
                continue
            chunks = split_parts(parts, tokenize, config.chunk_tokens, config.overlap)
            pending.append((name, digest, len(data), parts, chunks))
            progress.file_done(name, "read")
        if not pending and not old:
            failed = "; ".join(f"{o.file}: {o.reason}" for o in outcomes if o.status == "failed")
            raise IngestError(f"No document could be read ({failed or 'nothing to read'}). Nothing was indexed.")
        all_chunks = [c for *_, chunks in pending for c in chunks]
        progress.embed_start(len(all_chunks))
        vectors = embedder.embed([c.text for c in all_chunks], progress=progress.embedded) if all_chunks else None
        if embedder.max_tokens and all_chunks:
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
                     and not summarized)
        if unchanged:
            w.abort()  # nothing changed: keep the live version, do not create an identical one
            report.version = int(old.get("version", 0))
            report.chunks_total = int(old.get("chunks", 0))
        else:
            path = w.commit({**settings, "libraries": _versions(), "dim": embedder.dim,
                             "faiss": "IndexIDMap2(IndexFlatIP)"})
            report.version = w.version
            import json

            report.chunks_total = int(json.loads((path / "manifest.json").read_text())["chunks"])
    report.files = outcomes
    report.seconds = time.perf_counter() - t0
    return report
