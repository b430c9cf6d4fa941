"""``docqa ask``: a question, or questions typed or piped one per line; one strategy or several side by side."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.panel import Panel
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
def ask_cmd(
    question: Annotated[Optional[str], typer.Argument(
        help="The question. Without it, questions are read one per line: typed at a prompt (an empty line ends), or "
             "piped in; the models load once for all of them.", show_default=False)] = None,
    index: Annotated[str, typer.Option("--index", "-i", help="Index to ask.")] = "examples",
    strategy: Annotated[str, typer.Option(
        "--strategy", "-s", help="rag, long-context (lc), … or all; a variant such as rag:top_k=16 sets its own "
                                 "options.")] = "rag",
    top_k: Annotated[int, typer.Option(help="rag: chunks to retrieve.")] = 4,
    retriever: RetrieverOpt = None,
    fusion: FusionOpt = "rrf",
    fusion_weight: FusionWeightOpt = 0.7,
    rerank: RerankOpt = None,
    rerank_top_n: RerankTopNOpt = 20,
    chunk_order: ChunkOrderOpt = "relevance",
    rope: Annotated[str, typer.Option(help="long-context: yarn, dynamic, ntk, linear or none (on a hybrid-attention "
                                           "model only the full layers stretch; METHOD@all stretches every "
                                           "layer).")] = "yarn",
    rope_factor: Annotated[Optional[float], typer.Option(help="long-context: rope scale (default: length ÷ "
                                                               "trained window).")] = None,
    max_context: Annotated[Optional[int], typer.Option(help="long-context: token limit \\[default: 4× the trained "
                                                              "window].")] = None,
    truncate: Annotated[bool, typer.Option(help="long-context: keep the most relevant documents that fit.")] = False,
    cache_prefix: Annotated[bool, typer.Option(
        help="long-context: keep the document KV cache under the index and read it from there, so a later ask "
             "(long-context, or auto) skips the prefill; at most $DOCQA_PREFIX_DISK_BUDGET (2 GiB) an index version, "
             "least recently used out.")] = False,
    chain: Annotated[str, typer.Option(
        help="summarize: map-reduce, refine, tree, summaries, or llama-index's li-tree / li-refine.")] = "map-reduce",
    route_threshold: Annotated[Optional[float], typer.Option(
        help="auto: route to long-context when P(\"I don't know.\") reaches this (benchmarks/routing.py calibrates "
             "it for a model) \\[default: calibrated on examples/].")] = None,
    whole_tokens: Annotated[int, typer.Option(
        help="auto: answer a question about the documents as a whole (a summary, the main points) by reading the "
             "documents retrieval ranks first that fit this many tokens; 0: start with rag like any question.")] = 8192,
    drop_threshold: Annotated[Optional[float], typer.Option(
        help="summarize: drop a map note when P(\"NOTHING RELEVANT\") reaches this (benchmarks/drop.py calibrates it) "
             "\\[default: on the words only].")] = None,
    max_calls: Annotated[Optional[int], typer.Option(help="summarize: stop past this many model calls.")] = None,
    map_top_k: Annotated[Optional[int], typer.Option(
        help="summarize: read only the groups holding one of the question's N best-retrieved chunks (0: every group) "
             "\\[default: 0].")] = None,
    summary_window: Annotated[Optional[int], typer.Option(help="summarize: tokens per call \\[default: the model's "
                                                                 "trained window].")] = None,
    fallback: FallbackOpt = True,
    max_new_tokens: Annotated[int, typer.Option(help="Answer budget in tokens.")] = 96,
    style: Annotated[str, typer.Option(
        help="Answer style: short, sentence, paragraph or choice (the letter of a lettered option).")] = "sentence",
    length_hint: Annotated[Optional[int], typer.Option(
        help="Ask for an answer of about N words (the question alone is what retrieval sees).")] = None,
    length_floor: LengthFloorOpt = 0.5,
    model: Annotated[Optional[str], typer.Option(help=MODEL_HELP)] = None,
    embedder: Annotated[Optional[str], typer.Option(help="Embedder (must match the index's).")] = None,
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
    root: Annotated[Optional[Path], typer.Option(help="Folder of indexes \\[default: ./indexes].")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Answer questions from an index with one strategy, or with several side by side."""
    from .. import api
    from ..errors import ConfigError, DocQAError
    from ..generators import GeneratorConfig
    from ..lists import split_list
    from ..strategies import STRATEGIES
    from ..strategies.variants import parse_variants

    # A variant (rag:top_k=16, as an eval's verdict names it) sets its own options over the command's.
    picked = STRATEGIES.names() if strategy.strip() == "all" else \
        split_list(strategy, "--strategy", example="rag,long-context or all")
    variants = parse_variants(picked)
    # One question with one strategy: the process ends after it, so loading a second backend for a faster prefill
    # must pay for itself on this question's prompts (generators/prefill_assist.py, Handover.pays).
    gen = GeneratorConfig(device=device, dtype=dtype, prefill=prefill, attn=attn, threads=threads,
                          no_repeat_ngram=no_repeat_ngram, base_url=base_url, context_window=context_window,
                          tokenizer=tokenizer, request_timeout=request_timeout, max_retries=max_retries,
                          one_shot=question is not None and len(variants) == 1)
    idx = api.open_index(index, root=root, embedder=embedder, model=model, generator=gen)
    names = [v.label for v in variants]
    options = dict(top_k=top_k, retriever=retriever, fusion=fusion, fusion_weight=fusion_weight, rerank=rerank,
                   rerank_top_n=rerank_top_n, chunk_order=chunk_order, rope=rope, rope_factor=rope_factor,
                   max_context=max_context, truncate=truncate,
                   cache_prefix=cache_prefix, max_new_tokens=max_new_tokens, style=style, length_hint=length_hint,
                   length_floor=length_floor,
                   chain=chain, route_threshold=route_threshold, whole_tokens=whole_tokens,
                   drop_threshold=drop_threshold, max_calls=max_calls, summary_window=summary_window,
                   map_top_k=map_top_k, fallback=fallback, kv_budget=kv_budget)
    api.make_config(**options).check()  # a bad option is said once, not once per question
    # Long-context without --truncate retrieves nothing: then the embedder is not loaded (~0.1 s for the embedded
    # one's queries, in numpy; 3.5-4 s for a model that runs on sentence-transformers).
    # Nor for auto where a saved prefix will likely answer (--cache-prefix): it loads when a question needs rag.
    retrieval = any(_retrieves(STRATEGIES.canonical(v.strategy), {**options, **v.options}, idx) for v in variants)
    with _progress(index, disabled=json_out, doing="loading the models") as loading:
        from ..generators.base import LOAD_PROGRESS

        token = LOAD_PROGRESS.set(loading.progress)  # a first GGUF conversion draws its steps on this bar
        try:
            idx.load(retrieval=retrieval)  # so that the first answer's timings are its own
        finally:
            LOAD_PROGRESS.reset(token)
    failed = asked = 0
    for q in _questions(question, prompt=not json_out):
        asked += 1
        answers = {}
        try:
            for name in names:
                if len(names) > 1:
                    idx.own_caches(name, len(names))
                with _progress(name, disabled=json_out) as working:
                    answers[name] = idx.ask(q, name, progress=working.progress, on_text=working.text, **options)
        except DocQAError as e:
            if question is not None:
                raise
            failed += 1  # one red line; the next question is still answered
            err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
            continue
        # Where each answer is found in what it read, and figures it states that the text does not hold (no model).
        found = {name: idx.evidence(a, q) for name, a in answers.items()}
        if json_out:
            data = [a.to_dict() | {"evidence": found[name].to_dict()} | ({"question": q} if question is None else {})
                    for name, a in answers.items()]
            payload = json.dumps(data[0] if len(data) == 1 else data)
            if question is None:  # JSON Lines: one line per question
                out.print(payload, markup=False, highlight=False, soft_wrap=True)
            else:
                out.print_json(payload)
        elif len(answers) == 1:
            if question is None:
                out.print(f"[bold]{escape(q)}[/]")
            render_one(next(iter(answers.values())), next(iter(found.values())))
        else:
            render_side_by_side(q, answers, found)
        if not json_out:
            _prefix_notes(answers.values(), cache_prefix or truncate)
            _whole_note(q, answers)
    if not asked:
        raise ConfigError("No question: give one as an argument, or type or pipe questions one per line.")
    if failed:
        raise typer.Exit(code=1)


def _retrieves(strategy: str, options: dict, idx) -> bool:
    """Whether ``strategy`` is likely to retrieve, so the embedder is worth loading before the first question:
    long-context only with --truncate; auto unless a long-context prefix is saved under the index and may be read
    (--cache-prefix), where it answers from that prefix (measured, when queries were embedded by sentence-transformers:
    a whole auto ask 7.0 s with the embedder loaded, 4.3 s without; RESULTS.md, "a prefix kept across processes")."""
    if options.get("truncate"):
        return True
    if strategy == "long-context":
        return False
    return not (strategy == "auto" and options.get("cache_prefix") and idx.saved_prefixes())


def _questions(question: str | None, prompt: bool) -> Iterator[str]:
    """The question given, or else the lines of standard input: typed at a prompt (an empty line or Ctrl-D ends) or
    piped in (blank lines skipped)."""
    if question is not None:
        yield question
        return
    typed = sys.stdin.isatty()
    if typed and prompt:
        err.print("[dim]Ask a question per line; an empty line or Ctrl-D ends.[/]")
    while True:
        try:
            line = err.input("[bold]?[/] ") if typed and prompt else sys.stdin.readline()
        except EOFError:
            return
        if not line:
            return
        if not line.strip():
            if typed:
                return
            continue
        yield line.strip()


@dataclass
class _Working:
    """What a transient display on stderr is told while a strategy works: ``progress`` (done, total[, what]) of a long
    prefill or of model calls; ``text`` the answer so far, which replaces the progress line as it is written (None
    where nothing is drawn: piped or --json output, so nothing is passed on for nobody)."""

    progress: Callable[..., None]
    text: Callable[[str], None] | None = None


@contextmanager
def _progress(name: str, disabled: bool, doing: str = "thinking") -> Iterator[_Working]:
    """A transient display on stderr: a progress line, then the answer as it is written. The answer printed after it
    is the finished one (a strategy's own clean-up, or a later step of auto, may differ from what was drawn)."""
    from rich.live import Live
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[tokens]}"),
               TimeElapsedColumn(), TimeRemainingColumn()]
    live = not disabled and err.is_terminal
    bar = Progress(*columns, console=err, disable=not live)  # drawn by the Live below, not by itself
    task = bar.add_task(f"{name}: {doing}…", total=None, tokens="")
    written: list[str] = []

    def update(done: int, total: int, what: str | None = None) -> None:
        what = what or ("model calls" if name.startswith("summarize") else "prompt tokens")
        bar.update(task, completed=done, total=total, description=f"{name}: working",
                   tokens=f"{done:,}/{total:,} {what}")

    if not live:
        yield _Working(update)
        return

    def view():
        if not written:
            return bar
        return Panel(escape(written[-1]), title=f"[bold]{escape(name)}[/] [dim]writing…[/]", title_align="left")

    with Live(get_renderable=view, console=err, transient=True, refresh_per_second=12, redirect_stdout=False,
              redirect_stderr=False):

        def text(now: str) -> None:  # drawn at the next refresh (1/12 s): a token comes every ~30 ms on a CPU
            written[:] = [now]

        yield _Working(update, text)


# A long-context prefill this long is worth keeping on disk for the next process (the 1.5 B reader on 2 cores: a
# 5 k-token transcript prefilled in 43-47 s; a new process answered from the saved prefix in 2-3 s, RESULTS.md).
PREFIX_HINT_S = 10.0


def _prefix_notes(answers, quiet: bool) -> None:
    """What became of a long-context prefill: why it was not saved, or, when it took long and was not asked to be
    saved, that --cache-prefix would keep it for the next ``docqa ask``. ``quiet`` (--cache-prefix given, or
    --truncate, whose documents follow each question so that a kept prefix rarely serves another) leaves the hint
    out."""
    for a in answers:
        saved = a.details.get("prefix_file")
        if saved and saved != "saved":
            out.print(f"[dim]long-context: the document prefix was {escape(saved)}.[/]")
        elif (not quiet and a.details.get("prefix") == "prefilled"
              and a.timings.get("prefix_prefill", 0.0) >= PREFIX_HINT_S):
            out.print(f"[dim]long-context prefilled the documents in {a.timings['prefix_prefill']:.0f} s; with "
                      f"--cache-prefix they are kept under the index, and a later ask (long-context, or auto) answers "
                      f"from them without that prefill.[/]")
            return


def _whole_note(question: str, answers: dict) -> None:
    """When only rag answered a question about the documents as a whole (a summary, the main points), say that it
    read a few passages and which strategy reads the documents: asked "Summarize the earnings call.", rag's answer
    held a fifth of the reference facts long-context's did (RESULTS.md, "A summary asked for")."""
    from ..strategies.whole import whole_cue

    if {a.strategy for a in answers.values()} != {"rag"} or not whole_cue(question):
        return
    passages = [s for a in answers.values() for s in a.sources]
    out.print(f"[dim]This asks about the documents as a whole; rag read {len(passages)} passages of "
              f"{len({s.file for s in passages})} file(s). --strategy auto reads the documents themselves (within "
              f"--whole-tokens, a prefill of up to a minute or so on a CPU).[/]")


def _timing_line(a) -> str:
    order = ["embed", "search", "prefill", "generate", "total"]
    parts = [f"{k} {a.timings[k]:.2f}s" for k in order if k in a.timings]
    cached = f" (cached {a.tokens['cached']:,})" if a.tokens.get("cached") else ""
    toks = f"tokens in {a.tokens.get('prompt', 0):,}{cached} / out {a.tokens.get('completion', 0):,}"
    model = f" · model {a.model}" if a.model else ""
    return " · ".join(parts) + f" · {toks} · calls {a.calls}{model}"


def render_one(a, ev=None) -> None:
    """An answer, what it read and where in that the answer is found (``ev``: :meth:`docqa.Index.evidence`)."""
    out.print(Panel(escape(a.text) or "[dim](empty answer)[/]", title=f"[bold]{a.strategy}[/]", title_align="left"))
    shares = {(s.file, s.start_char, s.end_char): share for s, share in ev.passages} if ev else {}
    if any(s.text for s in a.sources):  # rag: the passages it read, and how much of the answer each holds
        table = Table("#", "source", "score", "answer's words here", box=None, show_header=True, header_style="dim")
        for i, s in enumerate(a.sources, 1):
            share = shares.get((s.file, s.start_char, s.end_char))
            table.add_row(str(i), escape(s.location()), f"{s.score:.3f}" if s.score is not None else "",
                          f"{share:.0%}" if share is not None else "")
        out.print(table)
    elif a.sources:  # whole files read (long-context, summarize): where in them the answer is
        files = sorted({s.file for s in a.sources})
        shown = ", ".join(files[:4]) + (f" and {len(files) - 4} more" if len(files) > 4 else "")
        out.print(f"[dim]read {len(files)} file{'s' if len(files) > 1 else ''}: {escape(shown)}[/]")
        if ev and ev.passages:
            table = Table("#", "where the answer is found", "answer's words here", box=None, show_header=True,
                          header_style="dim")
            for i, (s, share) in enumerate(ev.passages, 1):
                table.add_row(str(i), escape(s.location()), f"{share:.0%}")
            out.print(table)
    if ev and ev.missing_figures:
        out.print(f"[yellow]{escape(figures_line(ev.missing_figures))}[/]")
    extra = {k: v for k, v in a.details.items() if k in ("rope", "dropped", "route", "chain") and v}
    if extra:
        out.print(f"[dim]{escape(json.dumps(extra, default=str))}[/]")
    out.print(f"[dim]{_timing_line(a)}[/]")


def figures_line(figures: list[str]) -> str:
    """The figures an answer states that the text it read does not hold, as one line to act on."""
    said = ", ".join(figures[:-1]) + f" and {figures[-1]}" if len(figures) > 1 else figures[0]
    them = "them" if len(figures) > 1 else "it"
    return f"The answer states {said}, which the text it read does not contain: check {them}."


def render_side_by_side(question: str, answers: dict, found: dict | None = None) -> None:
    table = Table(title=escape(question), show_lines=True, title_justify="left")
    table.add_column("strategy", style="bold")
    table.add_column("answer", ratio=3)
    table.add_column("sources", ratio=2)
    table.add_column("latency", justify="right")
    table.add_column("tokens in/out", justify="right")
    for name, a in answers.items():
        sources = "\n".join(dict.fromkeys(s.location() for s in a.sources[:4]))
        ev = (found or {}).get(name)
        warn = f"\n[yellow]not in the text read: {escape(', '.join(ev.missing_figures))}[/]" \
            if ev and ev.missing_figures else ""
        table.add_row(escape(name), escape(a.text) + warn, escape(sources), f"{a.timings.get('total', 0):.1f} s",
                      f"{a.tokens.get('prompt', 0):,}/{a.tokens.get('completion', 0):,}")
    out.print(table)
    models = sorted({a.model for a in answers.values() if a.model})
    if models:
        out.print(f"[dim]answered by {escape(', '.join(models))}{_why(models)}[/]")


def _why(models: list[str]) -> str:
    """Why that model, in a few words, for an embedded one (docqa models says more)."""
    from ..models import MODELS

    whys = [MODELS[m.partition(":")[2] or m].why for m in models if (m.partition(":")[2] or m) in MODELS]
    return f" — {whys[0]}" if len(whys) == 1 and whys[0] else ""
