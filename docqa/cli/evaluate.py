"""``docqa eval``: every strategy over a question set, accuracy and latency side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .common import (
    MODEL_HELP,
    AttnOpt,
    BaseUrlOpt,
    ChunkOrderOpt,
    ContextWindowOpt,
    DeviceOpt,
    DtypeOpt,
    FallbackOpt,
    FusionOpt,
    FusionWeightOpt,
    KVBudgetOpt,
    LengthFloorOpt,
    NoRepeatOpt,
    PrefillOpt,
    RerankOpt,
    RerankTopNOpt,
    RetriesOpt,
    RetrieverOpt,
    ThreadsOpt,
    TimeoutOpt,
    TokenizerOpt,
    err,
    friendly,
    out,
)


@friendly
def eval_cmd(
    questions: Annotated[Optional[Path], typer.Argument(
        help="Questions: JSONL (question, answers, optional sources, id, options), a JSON array of those objects, or "
             "CSV with those columns (lists separated by |).")] = None,
    index: Annotated[Optional[str], typer.Option("--index", "-i", help="Index to ask.")] = None,
    strategies: Annotated[str, typer.Option(help="Comma-separated strategies, or 'all'. A strategy with options set "
                                                 "is a variant, its own row: rag:top_k=16, long-context:rope=ntk.")
                          ] = "all",
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Folder for results.jsonl, summary.json/csv and "
                                                              "accuracy_vs_latency.png.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run from OUT/results.jsonl (a larger --limit "
                                              "asks only the questions it adds).")] = False,
    leval: Annotated[Optional[Path], typer.Option(help="An L-Eval file; one index per document is built.")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Only the first N questions.")] = None,
    limit_docs: Annotated[Optional[int], typer.Option(
        help="--leval: only the first N documents (all their questions; only they are ingested).")] = None,
    chunk_tokens: Annotated[Optional[int], typer.Option(
        help="--leval: generator tokens per chunk of the indexes it builds [default: ingest's, 160].",
        show_default=False)] = None,
    top_k: Annotated[int, typer.Option(help="rag: chunks to retrieve.")] = 4,
    retriever: RetrieverOpt = None,
    fusion: FusionOpt = "rrf",
    fusion_weight: FusionWeightOpt = 0.7,
    rerank: RerankOpt = None,
    rerank_top_n: RerankTopNOpt = 20,
    chunk_order: ChunkOrderOpt = "relevance",
    rope: Annotated[str, typer.Option(help="long-context: yarn, dynamic, ntk, linear or none.")] = "yarn",
    max_context: Annotated[Optional[int], typer.Option(help="long-context: token limit.")] = None,
    truncate: Annotated[bool, typer.Option(help="long-context: keep the most relevant documents that fit.")] = False,
    chain: Annotated[str, typer.Option(
        help="summarize: map-reduce, refine, tree, summaries, or llama-index's li-tree / li-refine.")] = "map-reduce",
    route_threshold: Annotated[Optional[float], typer.Option(
        help="auto: route to long-context when P(\"I don't know.\") reaches this (benchmarks/routing.py calibrates "
             "it for a model) \\[default: calibrated on examples/].")] = None,
    drop_threshold: Annotated[Optional[float], typer.Option(
        help="summarize: drop a map note when P(\"NOTHING RELEVANT\") reaches this (benchmarks/drop.py calibrates it) "
             "\\[default: on the words only].")] = None,
    max_calls: Annotated[Optional[int], typer.Option(help="summarize: call budget per question.")] = None,
    map_top_k: Annotated[Optional[int], typer.Option(
        help="summarize: read only the groups holding one of the question's N best-retrieved chunks (0: every group) "
             "\\[default: 0].")] = None,
    summary_window: Annotated[Optional[int], typer.Option(help="summarize: tokens per call.")] = None,
    fallback: FallbackOpt = True,
    max_new_tokens: Annotated[int, typer.Option(help="Answer budget in tokens.")] = 96,
    length_hint: Annotated[Optional[bool], typer.Option(
        "--length-hint/--no-length-hint",
        help="Ask each free-text question for an answer of about its reference's length in words, as L-Eval's "
             "protocol does \\[default: on with --leval, else off].")] = None,
    length_floor: LengthFloorOpt = 0.5,
    style: Annotated[str, typer.Option(
        help="Answer style: short, sentence, paragraph or choice (the option letter); auto: choice for "
             "multiple-choice questions, the others in the one matching their references' median length.")]
    = "auto",
    model: Annotated[Optional[str], typer.Option(help=MODEL_HELP)] = None,
    root: Annotated[Optional[Path], typer.Option(help="Folder of indexes \\[default: ./indexes].")] = None,
    concurrency: Annotated[int, typer.Option(help="Questions in flight at once (for a served model).")] = 1,
    batch_size: Annotated[int, typer.Option(
        help="rag: questions answered in one batched generation (same answers as 1; latency is each one's share). "
             "The transformers backend batches; llama.cpp answers them one after another (measured: a batch "
             "gained little on a CPU and changed answers).")]
    = 1,
    device: DeviceOpt = None,
    dtype: DtypeOpt = "auto",
    prefill: PrefillOpt = None,
    attn: AttnOpt = None,
    kv_budget: KVBudgetOpt = None,
    threads: ThreadsOpt = None,
    no_repeat_ngram: NoRepeatOpt = None,
    base_url: BaseUrlOpt = None,
    context_window: ContextWindowOpt = None,
    tokenizer: TokenizerOpt = None,
    request_timeout: TimeoutOpt = 600.0,
    max_retries: RetriesOpt = 3,
    price_in: Annotated[Optional[str], typer.Option(
        help="US dollars per million prompt tokens: adds a cost column per strategy.")] = None,
    price_out: Annotated[Optional[str], typer.Option(
        help="US dollars per million completion tokens (with --price-in).")] = None,
    grounding: Annotated[str, typer.Option(
        help="How each answer's groundedness is judged: overlap (the words and numbers of each sentence found in "
             "what the strategy read; no model) or judge (a model answers yes / no per sentence).")] = "overlap",
    judge_model: Annotated[Optional[str], typer.Option(
        help="--grounding judge: the judging model \\[default: the reader].")] = None,
) -> None:
    """Evaluate strategies on a question set: accuracy, latency and tokens per strategy."""
    from .. import api
    from ..generators import GeneratorConfig
    from ..lists import split_list
    from ..strategies import STRATEGIES

    names = STRATEGIES.names() if strategies.strip() == "all" else \
        split_list(strategies, "--strategies", example="rag,long-context or all")
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn()]
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("evaluating", total=None)

        def progress(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=f"evaluating: {label}")

        gen = GeneratorConfig(device=device, dtype=dtype, prefill=prefill, attn=attn, threads=threads,
                              no_repeat_ngram=no_repeat_ngram, base_url=base_url, context_window=context_window,
                              tokenizer=tokenizer, request_timeout=request_timeout, max_retries=max_retries)
        _, rows = api.evaluate(questions, index=index, strategies=names, out=out_dir, resume=resume, leval=leval,
                               limit=limit, limit_docs=limit_docs, chunk_tokens=chunk_tokens, root=root, model=model,
                               generator=gen,
                               concurrency=concurrency,
                               batch_size=batch_size, progress=progress, top_k=top_k, retriever=retriever,
                               fusion=fusion, fusion_weight=fusion_weight, rerank=rerank,
                               rerank_top_n=rerank_top_n, chunk_order=chunk_order, rope=rope,
                               max_context=max_context, truncate=truncate, max_new_tokens=max_new_tokens,
                               chain=chain, max_calls=max_calls, summary_window=summary_window, map_top_k=map_top_k,
                               fallback=fallback, kv_budget=kv_budget, style=style, route_threshold=route_threshold,
                               drop_threshold=drop_threshold, length_hint=length_hint, length_floor=length_floor,
                               price_in=price_in,
                               price_out=price_out, grounding=grounding, judge_model=judge_model,
                               notice=lambda text: err.print(f"[dim]{escape(text)}[/]"))
    render(rows)
    from ..generators import parse_spec

    out.print(f"[dim]answered by {escape(parse_spec(model or gen.model)[0])}[/]")
    verdict = next((r["verdict_text"] for r in rows if r.get("verdict_text")), None)
    if verdict:
        out.print(f"[bold]Verdict:[/] {escape(verdict)}")
    if out_dir:
        out.print(f"[dim]wrote {escape(str(out_dir))}/results.jsonl, summary.json, summary.csv, "
                  f"accuracy_vs_latency.png, report.html (open it in a browser)[/]")


@friendly
def compare_cmd(
    run_a: Annotated[Path, typer.Argument(help="A folder docqa eval wrote (the baseline).")],
    run_b: Annotated[Path, typer.Argument(help="Another one, compared against it.")],
    strategy: Annotated[Optional[str], typer.Option(
        help="Compare one strategy (rag), or A's against B's (rag:long-context) \\[default: every shared one].")]
    = None,
) -> None:
    """Compare two eval runs on the same questions: paired difference B − A per strategy, with its interval."""
    from ..eval.compare import compare_runs

    c = compare_runs(run_a, run_b, strategy)
    for line in c.differences:
        err.print(f"[yellow]note:[/] {escape(line)}.")
    if c.differences:
        err.print("[yellow]note:[/] so the difference below may not come from one change alone.")
    table = Table(title=f"B − A, paired over the same questions (A: {escape(str(run_a))}, B: {escape(str(run_b))})",
                  title_justify="left")
    for col in ("A", "B", "questions", "Δ score", "95 % interval", "B wins / A wins / ties"):
        table.add_column(col, justify="left" if col in ("A", "B") else "right")
    for left, right, p in c.rows:
        sure = "" if p.ci_low <= 0 <= p.ci_high else " [bold]*[/]"
        table.add_row(escape(left), escape(right), str(p.n), f"{p.diff:+.1f}{sure}",
                      escape(f"[{p.ci_low:+.1f}, {p.ci_high:+.1f}]"), f"{p.wins} / {p.losses} / {p.ties}")
    out.print(table)
    if c.unmatched:
        out.print(f"[dim]{c.unmatched} questions are in only one of the runs and were left out.[/]")
    out.print("[dim]Δ: mean per-question difference of the set's score in points (B − A); 95 % bootstrap interval "
              "(10 000 resamples); * where it excludes 0.[/]")


@friendly
def report_cmd(
    run: Annotated[Path, typer.Argument(help="A folder docqa eval wrote with --out.")],
) -> None:
    """Rebuild RUN/report.html (the page of an eval run) from the run's files."""
    from ..eval.html_report import write_report

    path = write_report(run)
    out.print(f"wrote {escape(str(path))}")


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def _sec(v) -> str:
    """Seconds, or – where there is nothing to time (no warm question in a set of one)."""
    return "–" if v is None or v != v else f"{v:.1f}"


def _memory(row: dict) -> str:
    """CUDA peak where the model ran on a GPU, else the process's peak RSS."""
    cuda, rss = row.get("peak_cuda_mb_max", float("nan")), row.get("peak_rss_mb_max", float("nan"))
    if cuda == cuda:
        return f"{cuda:,.0f} GPU"
    return "–" if rss != rss else f"{rss:,.0f}"


# Columns of the eval table in display order, each with its importance (0 first): on a terminal too narrow for all
# of them the least important are left out (and named), instead of every cell being cut to "…" (at 80 columns all
# fifteen did not fit one digit each).
_COLUMNS: list[tuple[str, int, object]] = [
    ("strategy", 0, lambda r: escape(r["strategy"])),
    ("n", 3, lambda r: str(r["questions"])),
    # The question set's own metric (F1; accuracy for multiple choice), headed by its name (see render).
    ("score", 1, lambda r: _pct(r["score"])),
    ("contains", 4, lambda r: _pct(r["contains"])),
    ("F1", 4, lambda r: _pct(r["f1"])),
    ("ROUGE-L", 10, lambda r: _pct(r["rouge_l"])),
    ("EM", 14, lambda r: _pct(r["exact_match"])),
    ("letter", 5, lambda r: _pct(r.get("names_option"))),  # multiple choice only: answers naming an option
    ("refusal", 8, lambda r: _pct(r["refusal"])),
    ("recall@k", 9, lambda r: _pct(r["recall_at_k"])),
    ("MRR", 10, lambda r: "–" if r.get("mrr") is None else f"{r['mrr']:.2f}"),  # passage level, located answers
    ("grounded", 7, lambda r: _pct(r.get("groundedness"))),
    # Answers stating a figure that neither the text read nor the question holds: the first answers to check.
    ("figure not in text", 8, lambda r: _pct(r.get("unsupported_figures"))),
    ("p50 s", 2, lambda r: _sec(r["latency_p50_s"])),  # – where no question was answered (all errors)
    ("p95 s", 11, lambda r: _sec(r["latency_p95_s"])),
    ("cold / warm s", 5, lambda r: f"{_sec(r['cold_latency_s'])} / {_sec(r['warm_latency_p50_s'])}"),
    ("tokens in/out", 7, lambda r: "–" if r["prompt_tokens_mean"] != r["prompt_tokens_mean"]
     else f"{r['prompt_tokens_mean']:,.0f}/{r['completion_tokens_mean']:,.0f}"),
    ("calls", 12, lambda r: _sec(r["calls_mean"])),
    ("peak MB", 13, _memory),
    ("$ / question", 6, lambda r: f"{r['cost_usd_mean']:.5f}" if r.get("cost_usd_mean") == r.get("cost_usd_mean")
                                   and "cost_usd_mean" in r else "–"),
    ("errors", 6, lambda r: (f"[red]{r['errors']}[/]" + (f" ({r['server_errors']} server)" if r.get("server_errors")
                                                          else "")) if r["errors"] else "0"),
]


def _columns(label: str, rows: list[dict] | None = None) -> list[tuple[str, int, object]]:
    """The table's columns with the score column headed by the set's metric (``label``), whose own column would
    repeat it; the letter column only where some question has options."""
    options = any(r.get("names_option") is not None for r in rows or [])
    priced = any("cost_usd_mean" in r for r in rows or [])
    return [(label if name == "score" else name, rank, cell) for name, rank, cell in _COLUMNS
            if name != label and (name != "letter" or (label == "accuracy" and options))
            and (name != "$ / question" or priced)]


def _fit(rows: list[dict], width: int, columns: list[tuple[str, int, object]] | None = None) -> set[str]:
    """The columns (by name) that fit ``width`` without cutting a cell, taken in order of importance."""
    from rich.text import Text

    kept, used = set(), 1  # the table's left border
    for name, _, cell in sorted(columns or _COLUMNS, key=lambda c: c[1]):
        need = max([len(name)] + [Text.from_markup(str(cell(r))).cell_len for r in rows]) + 3  # padding, border
        if used + need <= width or not kept:
            kept.add(name)
            used += need
    return kept


def render(rows: list[dict]) -> None:
    from docqa.eval.metrics import label as score_label

    label = score_label(rows)
    columns = _columns(label, rows)
    names = _fit(rows, out.width, columns)
    shown = [c for c in columns if c[0] in names]
    table = Table(title="docqa eval", title_justify="left")
    for name, _, _ in shown:
        table.add_column(name, justify="left" if name == "strategy" else "right", no_wrap=True)
    for r in rows:
        table.add_row(*(cell(r) for _, _, cell in shown))
    out.print(table)
    left = [name for name, _, _ in columns if name not in names]
    if left:
        out.print(f"[dim]Left out for the terminal's width ({out.width} columns): {', '.join(left)} — all are in "
                  f"summary.csv with --out.[/]")
    routed = [r for r in rows if "routed_long_context" in r]
    for r in routed:
        why = [f"{r['routed_kept_prefix']} on a prefix already kept"] if r.get("routed_kept_prefix") else []
        why += [f"{r['routed_whole_document']} whole-document questions"] if r.get("routed_whole_document") else []
        kept = f" ({', '.join(why)})" if why else ""
        out.print(f"[dim]{escape(r['strategy'])} routed {r['routed_rag']} to rag, {r['routed_long_context']} to "
                  f"long-context{kept}.[/]")
    for r in rows:
        if r.get("second_look_long_context"):
            out.print(f"[dim]{escape(r['strategy'])}: long-context answered {r['second_look_long_context']} "
                      f"question(s) its chain declined.[/]")
    versus = [r for r in rows if "score_vs" in r]
    if versus:  # is a row's score different from the first row's, or noise? paired over the same questions
        paired = Table(title=f"{label} against {rows[0]['strategy']}, paired over the same questions",
                       title_justify="left")
        for col in ("strategy", "questions", f"Δ{label}", "95 % interval", "wins / losses / ties"):
            paired.add_column(col, justify="left" if col == "strategy" else "right")
        for r in versus:
            low, high = r["score_vs_ci_low"], r["score_vs_ci_high"]
            sure = "" if low <= 0 <= high else " [bold]*[/]"
            paired.add_row(escape(r["strategy"]), str(r["score_vs_n"]), f"{r['score_vs_diff']:+.1f}{sure}",
                           escape(f"[{low:+.1f}, {high:+.1f}]"),
                           f"{r['score_vs_wins']} / {r['score_vs_losses']} / {r['score_vs_ties']}")
        out.print(paired)
    out.print("[dim]contains, F1, ROUGE-L, EM: answerable questions (%); accuracy: multiple-choice questions "
              "answered with exactly the right option letters (%), or True/False questions whose first true or false "
              "agrees; letter: answers naming an option at all; refusal: share of unanswerable questions declined; "
              "MRR: reciprocal rank of the passage holding the reference (where located); grounded: answer sentences "
              "supported by what the strategy read (%); figure not in text: answers stating a figure that neither "
              "the text read nor the question holds (%); p50/p95: latency per answered question (a strategy's errors "
              "count as wrong answers, a server's are not scored; neither is in latency); cold: a "
              "strategy's first question of each index (every strategy starts cold, whatever their order), warm: p50 "
              "of the others; peak MB: CUDA peak memory on GPU, else peak RSS. Δ: mean per-question difference in "
              "points, 95 % bootstrap interval (10 000 resamples); * where it excludes 0.[/]")
