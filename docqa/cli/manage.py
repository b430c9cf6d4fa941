"""``docqa list``: the indexes on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from .common import friendly, out


@friendly
def list_cmd(
    root: Annotated[Optional[Path], typer.Option(help="Folder of indexes [default: ./indexes].")] = None,
) -> None:
    """List indexes with their files, chunks, tokens and embedder."""
    from .. import api

    names = api.list_indexes(root)
    if not names:
        out.print("No indexes yet. Create one with: docqa ingest PATH --index NAME")
        return
    table = Table("index", "version", "files", "chunks", "tokens", "embedder")
    for name in names:
        m = api.open_index(name, root=root).manifest
        table.add_row(name, str(m["version"]), str(len(m["files"])), str(m["chunks"]), f"{m['tokens']:,}",
                      m["embedder"])
    out.print(table)
