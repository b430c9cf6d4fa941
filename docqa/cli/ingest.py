"""``docqa ingest``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from .common import err, friendly, out


@friendly
def ingest_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders of documents (txt, md, pdf, html, docx).")],
    index: Annotated[str, typer.Option("--index", "-i", help="Name of the index to create or update.")],
    chunk_tokens: Annotated[int, typer.Option(help="Generator tokens per chunk.")] = 160,
    overlap: Annotated[int, typer.Option(help="Tokens shared by consecutive chunks.")] = 24,
    sync: Annotated[bool, typer.Option("--sync", help="Remove indexed files no longer under PATHS.")] = False,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Rebuild from scratch (e.g. new embedder).")] = False,
    summaries: Annotated[bool, typer.Option("--summaries", help="Store a summary per document (uses the "
                                                                 "generator; for --chain summaries).")] = False,
    embedder: Annotated[Optional[str], typer.Option(help="Embedder: HF id or local folder.")] = None,
    model: Annotated[Optional[str], typer.Option(help="Generator whose tokenizer sizes chunks.")] = None,
    root: Annotated[Optional[Path], typer.Option(help="Folder of indexes \\[default: ./indexes].")] = None,
    max_file_mb: Annotated[float, typer.Option(help="Skip (and list) files larger than this.")] = 64.0,
    index_type: Annotated[str, typer.Option(
        help="FAISS index: auto (exact search, IVF from 50k chunks), flat, ivf or hnsw.")] = "auto",
    vector_store: Annotated[Optional[str], typer.Option(
        help="Where vectors live: faiss (default, in the index folder) or milvus.")] = None,
    uri: Annotated[Optional[str], typer.Option(
        help="Milvus: a server or cluster (http://host:19530; token from MILVUS_TOKEN) or a Milvus Lite file "
             "(*.db) \\[default: milvus.db in the index folder].")] = None,
    collection: Annotated[Optional[str], typer.Option(help="Milvus collection \\[default: docqa_INDEX_vN].")] = None,
    retriever: Annotated[Optional[str], typer.Option(
        help="The retriever questions to this index use unless they name one: dense, bm25 or hybrid \\[default: "
             "keep the index's own; hybrid for a new one].")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Read documents into chunks, embed them and store them: vectors (FAISS or Milvus) and a BM25 index (incremental
    and atomic)."""
    from .. import api
    from ..index.ingest import IngestProgress

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, transient=True, disable=json_out) as bar:

        class _Progress(IngestProgress):
            def files(self, total: int) -> None:
                self.reading = bar.add_task("reading", total=total)

            def file_done(self, name: str, outcome: str) -> None:
                bar.update(self.reading, advance=1, description=f"reading {escape(name[-40:])}")

            def embed_start(self, total: int) -> None:
                self.embedding = bar.add_task("embedding chunks", total=total)

            def embedded(self, n: int) -> None:
                bar.update(self.embedding, advance=n)

            def summaries_start(self, total: int) -> None:
                self.summarizing = bar.add_task("summarizing documents", total=total)

            def summarized(self, name: str) -> None:
                bar.update(self.summarizing, advance=1, description=f"summarizing {escape(name[-40:])}")

            def lexical_start(self, total: int) -> None:
                self.lexical = bar.add_task("adding the BM25 index", total=total)

            def lexical_done(self, n: int) -> None:
                bar.update(self.lexical, advance=n)

        report = api.ingest(paths, index, root=root, embedder=embedder, model=model, chunk_tokens=chunk_tokens,
                            overlap=overlap, sync=sync, rebuild=rebuild, summaries=summaries,
                            max_file_mb=max_file_mb, index_type=index_type, vector_store=vector_store, uri=uri,
                            collection=collection, retriever=retriever, progress=_Progress())
    if json_out:
        import json

        out.print_json(json.dumps(report.to_dict()))
        return
    problems = [f for f in report.files if f.status in ("failed", "skipped") and f.reason != "unchanged"]
    if problems:
        table = Table("file", "status", "reason", title="Not indexed", title_justify="left")
        for f in problems:
            table.add_row(escape(f.file), f"[red]{f.status}[/]" if f.status == "failed" else f.status,
                          escape(f.reason))
        out.print(table)
    counts = {s: report.count(s) for s in ("added", "updated", "removed", "failed")}
    unchanged = sum(1 for f in report.files if f.reason == "unchanged")
    other = sum(1 for f in report.files if f.status == "skipped" and f.reason != "unchanged")
    out.print(
        f"[bold]{report.index}[/] v{report.version}: {counts['added']} added, {counts['updated']} updated, "
        f"{unchanged} unchanged, {counts['removed']} removed, {counts['failed']} failed, {other} skipped · "
        f"{report.chunks_added} new chunks ({report.tokens_added:,} tokens), {report.chunks_total} in index · "
        f"{report.seconds:.1f} s" + (f" · {report.summaries} summaries" if report.summaries else "")
        + (f" · BM25 index added for {report.lexical_added:,} chunks" if report.lexical_added else "")
    )
    if report.truncated_chunks:
        out.print(f"[yellow]{report.truncated_chunks} chunks exceed the embedder's window; their tails are not "
                  f"searchable. Use a smaller --chunk-tokens.[/]")
