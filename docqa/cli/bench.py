"""``docqa bench rope`` and ``docqa bench needle``: context-extension methods measured on your model."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..lists import split_list
from .common import MODEL_HELP, BaseUrlOpt, ContextWindowOpt, DeviceOpt, TokenizerOpt, err, friendly, out

bench_app = typer.Typer(help="Which context-extension (RoPE) method works for a model: perplexity curves and "
                             "needle heatmaps.", no_args_is_help=True)

_METHODS = "none,linear,ntk,dynamic,yarn"


@contextmanager
def _progress():
    """A rich bar over the whole grid (weighted by each cell's estimated cost, so its ETA holds for long cells)
    with the current cell and its tokens."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from ..bench.common import BenchProgress

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[cell]}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=True) as bar:
        task = bar.add_task("bench", total=None, cell="")

        class P(BenchProgress):
            base = 0.0
            weight = 0.0

            def start(self, cells: int, work: float, estimate_s: float | None) -> None:
                if cells == 0:
                    err.print("[dim]every cell is already in the output folder: nothing to compute[/]")
                    return
                eta = f", about {estimate_s / 60:.0f} min (estimated from two timed probes)" if estimate_s else ""
                err.print(f"[bold]{cells} cells to compute{eta}.[/] Finished cells are kept: an interrupted run "
                          f"resumes.")
                bar.update(task, total=work, completed=0)

            def cell(self, label: str, work: float) -> None:
                self.weight = work
                bar.update(task, description=f"bench {label}", cell="")

            def tokens(self, done: int, total: int) -> None:
                bar.update(task, completed=self.base + self.weight * done / max(total, 1),
                           cell=f"{done:,}/{total:,} tokens")

            def done(self, label: str, result: str) -> None:
                self.base += self.weight
                bar.update(task, completed=self.base)
                err.print(f"  {escape(label)}: {escape(result)}")

        yield P()


@bench_app.command("rope")
@friendly
def rope_cmd(
    lengths: Annotated[str, typer.Option(help="Context lengths (k = 1 024 tokens).")] = "2k,4k,8k,16k",
    methods: Annotated[str, typer.Option(help="Rope methods to compare; METHOD@all also stretches a hybrid "
                                                  "model's sliding layers (Gemma 3), for comparison.")] = _METHODS,
    text: Annotated[Optional[Path], typer.Option(help="A text file or folder of .txt/.md \\[default: docqa's "
                                                      "smoke text, ~25 k tokens].")] = None,
    tail: Annotated[int, typer.Option(help="Tokens of the fixed final slice that every length scores.")] = 1024,
    samples: Annotated[int, typer.Option(help="Windows at different offsets of the text, averaged.")] = 1,
    model: Annotated[Optional[str], typer.Option(help=MODEL_HELP)] = None,
    device: Annotated[Optional[str], typer.Option(help="cpu or cuda \\[default: cuda when present].")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the table, PNG, JSON, CSV and finished "
                                                        "cells.")] = Path("bench/rope"),
    fresh: Annotated[bool, typer.Option(help="Ignore finished cells in --out and start over.")] = False,
) -> None:
    """Perplexity of one fixed slice given 2k…32k tokens before it, per rope method: a working method's curve falls
    or stays flat past the trained window, a broken one rises. ~10 min on 2 CPU cores with the defaults."""
    from .. import api
    from ..bench.common import parse_lengths

    picked = split_list(methods, "--methods", example="none,yarn")
    with _progress() as progress:
        res = api.bench_rope(lengths=parse_lengths(lengths), methods=picked, text=text, tail=tail,
                             samples=samples, model=model, device=device, out=out_dir, fresh=fresh,
                             progress=progress)
    names = list(dict.fromkeys(r["method"] for r in res.rows))
    table = Table(title=f"perplexity of the final {tail:,} tokens (trained window {res.trained_window:,})",
                  title_justify="left")
    table.add_column("length", justify="right")
    for n in names:
        table.add_column(n, justify="right")
    for length in sorted({r["length"] for r in res.rows}):
        cells = {r["method"]: r for r in res.rows if r["length"] == length}
        mark = " *" if length > res.trained_window else ""
        table.add_row(f"{length:,}{mark}", *[_ppl(cells.get(n)) for n in names])
    out.print(table)
    out.print(f"[dim]* past the trained window. {res.computed} cells computed, {res.reused} reused. Wrote "
              f"{', '.join(escape(str(f)) for f in res.files)}[/]")


def _ppl(row) -> str:
    if row is None:
        return "–"
    spread = f" ±{(row['ppl_max'] - row['ppl_min']) / 2:.1f}" if row["samples"] > 1 else ""
    return f"{row['ppl']:.2f}{spread}"


@bench_app.command("needle")
@friendly
def needle_cmd(
    lengths: Annotated[str, typer.Option(help="Context lengths (k = 1 024 tokens).")] = "2k,4k,8k,16k",
    depths: Annotated[str, typer.Option(help="Needle depths in percent of the haystack.")] = "0,25,50,75,100",
    methods: Annotated[str, typer.Option(help="Rope methods to compare (METHOD@all: every layer type stretched).")]
    = "none,dynamic,yarn",
    forms: Annotated[str, typer.Option(help="question (plain QA), passkey (answer started), or both.")]
    = "question,passkey",
    text: Annotated[Optional[Path], typer.Option(help="Haystack: a text file or folder \\[default: docqa's smoke "
                                                      "text].")] = None,
    needle: Annotated[Optional[str], typer.Option(help="The sentence to hide.")] = None,
    question: Annotated[Optional[str], typer.Option(help="The question that asks for it.")] = None,
    answer: Annotated[Optional[str], typer.Option(help="What counts as found (must appear in the output).")] = None,
    answer_start: Annotated[Optional[str], typer.Option(help="passkey form: the answer's first words \\[default: "
                                                             "the needle up to the answer].")] = None,
    model: Annotated[Optional[str], typer.Option(help=MODEL_HELP)] = None,
    device: DeviceOpt = None,
    base_url: BaseUrlOpt = None,
    context_window: ContextWindowOpt = None,
    tokenizer: TokenizerOpt = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for heatmaps, JSON and finished cells.")]
    = Path("bench/needle"),
    fresh: Annotated[bool, typer.Option(help="Ignore finished cells in --out and start over.")] = False,
) -> None:
    """Needle in a haystack over lengths × depths × rope methods: a heatmap per method (found / missed), both the
    plain-question and the passkey form."""
    from .. import api
    from ..bench.common import parse_fractions, parse_lengths
    from ..generators import GeneratorConfig

    gen = GeneratorConfig(base_url=base_url, context_window=context_window, tokenizer=tokenizer)
    picked = split_list(methods, "--methods", example="none,yarn")
    kinds = split_list(forms, "--forms", example="question,passkey")
    with _progress() as progress:
        res = api.bench_needle(generator=gen, lengths=parse_lengths(lengths), depths=parse_fractions(depths),
                               methods=picked, forms=kinds, text=text, needle=needle,
                               question=question, answer=answer, answer_start=answer_start, model=model,
                               device=device, out=out_dir, fresh=fresh, progress=progress)
    length_cols = [k for k in res.rows[0] if k not in ("method", "form", "found", "cells")] if res.rows else []
    table = Table(title=f"needle found / tried, by length (trained window {res.trained_window:,})",
                  title_justify="left")
    for col in ["method", "form", *length_cols, "total"]:
        table.add_column(col, justify="left" if col in ("method", "form") else "right")
    for r in res.rows:
        table.add_row(r["method"], r["form"], *[r[c] for c in length_cols], f"{r['found']}/{r['cells']}")
    out.print(table)
    out.print(f"[dim]{res.computed} cells computed, {res.reused} reused. Wrote "
              f"{', '.join(escape(str(f)) for f in res.files)}[/]")
