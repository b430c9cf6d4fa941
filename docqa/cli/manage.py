"""``docqa list``, ``docqa check`` and ``docqa remove``: the indexes on disk, whether one is intact, deleting one."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from .common import err, friendly, out


@friendly
def list_cmd(
    root: Annotated[Optional[Path], typer.Option(help="Folder of indexes \\[default: ./indexes].")] = None,
) -> None:
    """List indexes with their files, chunks, tokens and embedder (read from manifests; `docqa check` verifies)."""
    from .. import api

    names = api.list_indexes(root)
    if not names:
        out.print("No indexes yet. Create one with: docqa ingest PATH --index NAME")
        return
    table = Table("index", "version", "files", "chunks", "tokens", "embedder", "vectors", "on disk")
    for name, m in api.manifests(names, root=root):
        size = f"{api.disk_bytes(name, root=root) / 2**20:,.1f} MB"
        if isinstance(m, str):  # unreadable: say so in its row, keep listing the others
            table.add_row(name, "[red]damaged[/]", "", "", "", escape(m), "", size)
            continue
        table.add_row(name, str(m.version), str(len(m.files)), str(m.chunks), f"{m.tokens:,}", m.embedder,
                      escape(_vectors(m)), size)
    out.print(table)


def _vectors(m) -> str:
    """Where the vectors are and how they are searched, e.g. "faiss: ivf, 3 segments" or "milvus: URI"."""
    store = m.vector_store or {"type": "faiss"}
    if store.get("type") == "milvus":
        return f"milvus {store.get('collection', '')} at {store.get('uri', '')}"
    kinds = sorted({seg.vector_index.get("type", "flat") for seg in m.segments if seg.faiss})
    n = len(m.segments)
    return f"faiss {'+'.join(kinds) or 'flat'}, {n} segment{'s' if n != 1 else ''}"


@friendly
def check_cmd(
    index: Annotated[str, typer.Argument(help="Index to verify.")],
    root: Annotated[Optional[Path], typer.Option(help="Folder of indexes \\[default: ./indexes].")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    embedder: Annotated[bool, typer.Option(
        "--embedder/--no-embedder", help="Also load the index's embedder and check that it makes vectors of the "
                                         "index's size, as ask does before its first search.")] = True,
) -> None:
    """Verify an index fully: checksums, SQLite integrity, chunk and vector counts, ids and sizes, and the embedder
    ask will use. Exit 1 when anything ask relies on fails."""
    from .. import api

    report = api.check(index, root=root, embedder=embedder)
    if json_out:
        out.print_json(json.dumps(report.to_dict()))
    else:
        table = Table("check", "result", "detail", title=f"{index} {report.version}", title_justify="left")
        for name, ok, detail in report.checks:
            table.add_row(name, "[green]ok[/]" if ok else "[red]FAILED[/]", escape(detail))
        out.print(table)
        failed = [detail for _, ok, detail in report.checks if not ok]
        if report.ok:
            out.print(f"[green]Index '{index}' is intact.[/]")
        elif len(failed) == 1 and "--rebuild" in failed[0]:  # the finding names its own fix (an embedder mismatch)
            out.print(f"[bold red]error:[/] {escape(failed[0])}", soft_wrap=True)
        else:
            out.print(f"[bold red]Index '{index}' is damaged.[/] Rebuild it: docqa ingest PATH --index {index} "
                      f"--rebuild")
    if not report.ok:
        raise typer.Exit(code=1)


@friendly
def remove_cmd(
    index: Annotated[str, typer.Argument(help="Index to delete, with every version of it.")],
    root: Annotated[Optional[Path], typer.Option(help="Folder of indexes \\[default: ./indexes].")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask (needed when not at a terminal).")] = False,
    force: Annotated[bool, typer.Option(help="Remove even while another process has the index open.")] = False,
) -> None:
    """Delete an index: never during an ingest; Milvus collections it keeps elsewhere are dropped too."""
    from .. import api
    from ..errors import ConfigError

    if not yes:
        if not sys.stdin.isatty():
            raise ConfigError(f"Removing index '{index}' cannot be undone: pass --yes to remove it without asking.")
        m = dict(api.manifests([index], root=root)).get(index)
        what = f" ({len(m.files)} files, {m.chunks:,} chunks)" if m is not None and not isinstance(m, str) else ""
        if index in api.list_indexes(root) and not typer.confirm(f"Remove index '{index}'{what}?"):
            raise typer.Exit(code=1)
    removed = api.remove(index, root=root, force=force)
    extra = f"; dropped {', '.join(removed.collections)}" if removed.collections else ""
    out.print(f"Removed index '{escape(removed.index)}' ({removed.bytes / 2**20:.1f} MB){escape(extra)}.")
    if removed.left:
        left = escape(", ".join(removed.left))
        err.print(f"[yellow]Left on an unreachable Milvus server (drop them there):[/] {left}")
