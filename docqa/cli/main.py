"""Entry point: composes the command modules into one typer app. Imports no model code."""

from __future__ import annotations

import typer

from . import ask, bench, evaluate, ingest, manage, models

app = typer.Typer(
    name="docqa",
    help="Question answering over your own documents: long-context, summarization chains or RAG, side by side.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("ingest")(ingest.ingest_cmd)
app.command("ask")(ask.ask_cmd)
app.command("eval")(evaluate.eval_cmd)
app.command("report")(evaluate.report_cmd)
app.command("compare")(evaluate.compare_cmd)
app.command("list")(manage.list_cmd)
app.command("check")(manage.check_cmd)
app.command("remove")(manage.remove_cmd)
app.command("models")(models.models_cmd)
app.add_typer(bench.bench_app, name="bench")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
