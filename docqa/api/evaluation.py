"""``evaluate``: every question of a set through every strategy, scored, summarized and given a verdict."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, first_line
from ..generators import GeneratorConfig
from ..index import store as _store
from ..paths import index_root, output_folder
from ..strategies import STRATEGIES
from .checked import checked
from .indexes import Index, ingest, make_config, open_index

if TYPE_CHECKING:
    from ..eval.verdict import Verdict


@checked
def evaluate(
    questions: str | Path | None = None,
    *,
    index: str | None = None,
    strategies: list[str] | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    leval: str | Path | None = None,
    limit: int | None = None,
    limit_docs: int | None = None,
    chunk_tokens: int | None = None,
    root: str | Path | None = None,
    model: str | None = None,
    generator: GeneratorConfig | None = None,
    concurrency: int = 1,
    batch_size: int = 1,
    progress=None,
    notice: Callable[[str], None] | None = None,
    length_hint: bool | None = None,
    price_in: float | str | None = None,
    price_out: float | str | None = None,
    grounding: str = "overlap",
    judge_model: str | None = None,
    **options: Any,
):
    """Answer every question with every strategy and score the answers; see :mod:`docqa.eval`.

    ``style`` (an option) defaults to ``auto``: the answer style whose length matches the question set's references
    (:func:`docqa.prompts.style_for_references`). ``questions`` is docqa's JSONL, asked of ``index``; or ``leval`` is
    an L-Eval file, from whose documents one index per document is built (``leval-STEM-docNN``, STEM from the file's
    name), each question asked of its own document. ``generator`` sets every generator option (a served model's
    address, …); ``concurrency`` keeps that many questions in flight; ``batch_size`` answers that many questions of a
    batching strategy (rag) in one batched generation, each a record whose latency is its share of the batch. Returns
    ``(records, summary_rows)``; with ``out``, also writes results.jsonl, summary.json/csv and the plot. When the
    model server stops answering mid-run, the files are written and :class:`~docqa.errors.ServerUnreachable` says how
    many questions ``resume=True`` will complete. ``notice`` receives sentences a person running the eval should read
    (questions left out and why).

    ``length_hint`` (default: on for ``leval``, off otherwise) follows L-Eval's protocol: each free-text question
    asks for an answer of about its reference's length in words, as every model of L-Eval's published scores was
    asked (in docqa's wording, "Answer in about N words." on its own line: :func:`docqa.prompts.with_length`);
    retrieval sees the question alone. It uses the reference, so it measures the strategies with answer length held
    level, not what a user's question would get.

    ``chunk_tokens`` (``leval`` only): the chunk size of the indexes built from its documents (default: ingest's);
    an index already under ``root`` with another size is re-chunked, as ``docqa ingest --chunk-tokens`` would.

    Each question is scored by its own metric (``score``): token F1, or for multiple choice (options as lettered
    lines, references the letters; docqa JSONL's ``options`` or L-Eval's exams) whether the answer chose exactly the
    right letters. The paired column and the verdict compare rows on it.
    """
    from ..eval import questions as qio
    from ..eval import report, runner
    from ..strategies.variants import parse_variants

    prices = (report.parse_price(price_in, "--price-in"), report.parse_price(price_out, "--price-out"))
    prices = None if prices == (None, None) else (prices[0] or 0.0, prices[1] or 0.0)

    variants = parse_variants(strategies or STRATEGIES.names())  # rag, or a variant such as rag:top_k=16
    make_config(**{k: v for k, v in options.items() if not (k == "style" and v == "auto")})  # reject bad options early
    if concurrency < 1:
        raise ConfigError(f"--concurrency must be at least 1, got {concurrency}.")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}.")
    if generator is not None and model:
        generator.model = model
    model = model or (generator.model if generator else None)
    root = Path(root) if root is not None else index_root()
    if out is not None:
        out = output_folder(out)  # a file or an unwritable place: one line now, not an OSError after the questions
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}.")
    if limit_docs is not None and (limit_docs < 1 or leval is None):
        raise ConfigError(f"--limit-docs takes a positive number of documents of an --leval file, got {limit_docs}"
                          f"{'' if leval is not None else ' without --leval'}.")
    if chunk_tokens is not None and leval is None:
        raise ConfigError(f"--chunk-tokens {chunk_tokens} sets the chunks of the indexes --leval builds; an existing "
                          f"index keeps the chunks it was ingested with (docqa ingest --chunk-tokens N changes them).")
    if leval is not None:
        docs = qio.load_leval(Path(leval))
        # Documents L-Eval scores by an LLM judge or by people have no automatic metric: left out, so scores compare
        # with L-Eval's published ones (financial QA: 52 of 68 questions).
        judged = sum(len(doc_qs) for _, _, doc_qs in docs if all(q.metric is None for q in doc_qs))
        docs = [d for d in docs if any(q.metric is not None for q in d[2])]
        if not docs:
            raise ConfigError(f"L-Eval file '{leval}': every document is judged by an LLM or people (its 'evaluation' "
                              f"field), so no answer can be scored automatically. Use a file whose evaluation is f1, "
                              f"rouge or exam.")
        # A document with no text (GSM-100: each question carries its own few-shot material) gives docqa nothing
        # to read or retrieve; its questions are left out and said, like the judged ones.
        empty = sum(len(doc_qs) for _, text, doc_qs in docs if not text.strip())
        docs = [d for d in docs if d[1].strip()][:limit_docs]
        if not docs:
            raise ConfigError(f"L-Eval file '{leval}': its documents are empty ('input' is blank): each question "
                              f"carries its own material, as GSM-100's few-shot prompts do. docqa answers questions "
                              f"from documents, so there is nothing to index or compare; use a task with documents.")
        if empty and notice is not None:
            notice(f"{empty} questions of {Path(leval).name} are left out: their documents are empty (each question "
                   f"carries its own material).")
        qs = [q for _, _, doc_qs in docs for q in doc_qs if q.metric is not None][:limit]
        needed = {q.document for q in qs}  # --limit: only the documents its questions are about are ingested
        src = _store.valid_root(root) / ".leval-sources"
        indexes: dict[str, Index] = {}
        for name, text, _ in docs:
            if name not in needed:
                continue
            folder = src / name
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{name}.txt"
            if not path.exists() or path.read_text() != text:
                path.write_text(text)
            ingest(folder, f"leval-{name}", root=root, model=model,
                   **({"chunk_tokens": chunk_tokens} if chunk_tokens is not None else {}))
            indexes[name] = open_index(f"leval-{name}", root=root, model=model, generator=generator)
        index_for = lambda q: indexes[q.document]  # noqa: E731
        title = f"L-Eval {Path(leval).name}" + (f" ({judged} questions judged by an LLM or people left out)"
                                                 if judged else "")
        if judged and notice is not None:
            notice(f"{judged} questions of {Path(leval).name} are left out: L-Eval judges their documents by an LLM or "
                   f"by people (their 'evaluation' field), not by an automatic metric.")
        source = str(Path(leval).resolve())
    else:
        if questions is None or index is None:
            raise ConfigError("Give a questions file and --index NAME, or --leval FILE.")
        qs = qio.load_jsonl(Path(questions))[:limit]  # JSONL, a JSON array or CSV
        idx = open_index(index, root=root, model=model, generator=generator)
        indexes = {"": idx}
        index_for = lambda q: idx  # noqa: E731
        title = f"{Path(questions).name} on index '{index}'"
        source = str(Path(questions).resolve())
    from ..prompts import check_style, style_for_questions

    if options.get("instruction") is None:  # what every question starts with goes to the reader, not to retrieval
        options["instruction"] = qio.shared_instruction([q.question for q in qs])
        if options["instruction"] and notice is not None:
            notice(f"Every question starts with \"{options['instruction'][:80]}\"; retrieval searches with what "
                   f"follows it, the model reads the whole question.")
    run_auto = options.get("style", "auto") == "auto"
    if run_auto:  # answers shaped like the set's references (prompts.py STYLES)
        options["style"] = style_for_questions([q.answers for q in qs], [q.metric or "f1" for q in qs])
    options["style"] = check_style(options["style"])
    # A variant's style=auto is the run's style; each variant's options, over the run's, are checked before any
    # question is asked. Where eval chose the style, a multiple-choice question of a mixed set is asked for its letter.
    auto = [v.options.get("style", "auto" if run_auto else None) == "auto" for v in variants]
    variants = [dataclasses.replace(v, options={**v.options, "style": options["style"]})
                if v.options.get("style") == "auto" else v for v in variants]
    choice_auto = {v.label for v, a in zip(variants, auto, strict=True) if a}
    for variant in variants:
        try:
            make_config(**{**options, **variant.options}).check()
        except ConfigError as e:
            if not variant.options:
                raise
            raise ConfigError(f"Strategy variant '{variant.label}': {first_line(e)}") from e
    strategies = [v.label for v in variants]
    if length_hint is None:
        length_hint = leval is not None
    if choice_auto and notice is not None:
        label = next(iter(choice_auto))
        kinds = Counter(runner.question_style(q, label, options["style"], choice_auto, length_hint) for q in qs)
        if len(kinds) > 1:
            notice(_styles_notice(kinds, options["style"]))
    if length_hint and leval is not None and notice is not None and any(runner.length_hint(q) for q in qs):
        notice("Following L-Eval's protocol, each free-text question asks for an answer of about its reference's "
               "length in words (--no-length-hint to ask without).")
    identity = {"model": model or GeneratorConfig().model, "options": options, "questions": source,
                "index": index, "limit": limit, "limit_docs": limit_docs, "length_hint": length_hint}
    grounder, grounding_meta = _judge(grounding, judge_model, indexes, generator)
    served, concurrency, progress, retries = _served(indexes, model, generator, concurrency, progress, notice)
    if resume and out is not None and notice is not None:
        for line in _changed_since(Path(out), served.server_info() if served is not None else None):
            notice(line)
    cfg = runner.EvalConfig(strategies=strategies, out=Path(out) if out else None, resume=resume, options=options,
                            identity=identity, concurrency=concurrency,
                            batch_size=batch_size, length_hints=length_hint,
                            choice_auto=choice_auto)
    records = runner.run(index_for, qs, cfg, progress)
    from ..eval.grounding import add_groundedness
    from ..eval.retrieval import add_passage_metrics

    chunks_for = _chunks_for(indexes)
    located = add_passage_metrics(records, lambda r: [(i, t) for i, _, t in chunks_for(r)])
    add_groundedness(records, chunks_for, grounder)
    if out:  # the records with what was measured after the answers (passage metrics, groundedness), in place
        from ..index.versions import write_atomic

        write_atomic(Path(out) / "results.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    rows = report.summarize(records, prices)
    decided = verdict(records, rows)
    if decided is not None:  # each row's part in the verdict; the recommended row carries its sentence
        for row in rows:
            name = row["strategy"]
            row["verdict"] = ("use" if name == decided.use else "tied" if name in decided.tied
                              else "trade-off" if name == decided.tradeoff else "less accurate")
        next(r for r in rows if r["strategy"] == decided.use)["verdict_text"] = decided.text
    if out:
        from .. import __version__
        from ..environment import describe
        from ..generators import loaded_generator, with_model_defaults

        gen = next((g for i in indexes.values() if (g := loaded_generator(i.corpus.generator_config))), None)
        meta = {"title": title, "questions": len(qs), "strategies": strategies, "options": options,
                "length_hint": length_hint,
                "model": model or GeneratorConfig().model,
                "docqa_version": __version__,
                "answers_located": located,
                "questions_sha256": _sha256_file(source),
                # Every setting in effect, defaults included: what a rerun must match to be comparable.
                "settings": {"ask": dataclasses.asdict(make_config(**options)),
                             "generator": dataclasses.asdict(with_model_defaults(
                                 generator or GeneratorConfig(model=model))),
                             "concurrency": concurrency, "batch_size": batch_size},
                "corpus": _corpus_identity(indexes),
                "grounding": grounding_meta,
                "prices_usd_per_million": None if prices is None else {"prompt": prices[0], "completion": prices[1]},
                "server": {**served.server_info(), "retries": retries()} if served is not None else None,
                "environment": describe(gen),
                "verdict": None if decided is None else {"use": decided.use, "best": decided.best,
                                                         "tied": decided.tied, "text": decided.text,
                                                         # questions an index from which ``best`` is the cheaper
                                                         "break_even_questions": decided.break_even[0]
                                                         if decided.break_even else None}}
        report.write(Path(out), records, rows, meta)
        from ..eval.html_report import write_report

        write_report(Path(out))  # report.html, from the files just written (as `docqa report` rebuilds it)
    if cfg.aborted:
        from ..errors import ServerUnreachable

        missing = sum(1 for r in records if r.get("error_type") == "ServerUnreachable")
        where = f" (recorded as errors in {Path(out) / 'results.jsonl'})" if out else ""
        raise ServerUnreachable(f"{cfg.aborted.rstrip('.')}. {missing} questions got no answer{where}; once the server "
                                f"is back, run the same command with --resume to complete them.")
    return records, rows


def _served(indexes: dict, model: str | None, generator: GeneratorConfig | None, concurrency: int, progress,
            notice):
    """For a served model: the loaded generator, the concurrency the server can take, a progress callback whose
    label counts this run's retries, and a function saying them ('3 retries (429 ×2, cut ×1)' or None).
    (None, concurrency, progress, …) for an in-process model."""
    from ..generators import parse_spec

    spec = model or (generator.model if generator else None) or GeneratorConfig().model
    if parse_spec(spec)[1] != "openai" or not indexes:
        return None, concurrency, progress, lambda: None
    gen = next(iter(indexes.values())).corpus.generator()
    gen.retrier.notice = notice
    if concurrency > 1 and gen.max_parallel and concurrency > gen.max_parallel:
        if notice is not None:
            notice(f"The server runs {gen.max_parallel} request{'s' if gen.max_parallel > 1 else ''} at once (its "
                   f"slots); --concurrency {concurrency} lowered to {gen.max_parallel}.")
        concurrency = gen.max_parallel
    before = dict(gen.retrier.counts)

    def retries() -> str | None:
        return gen.retrier.summary(since=before) or None

    def with_retries(done: int, total: int, label: str) -> None:
        said = retries()
        if progress is not None:
            progress(done, total, f"{label} · {said}" if said else label)

    return gen, concurrency, with_retries, retries


def _sha256_file(path: str) -> str | None:
    from ..index.integrity import sha256_file

    try:
        return sha256_file(Path(path))
    except OSError:
        return None


def _corpus_identity(indexes: dict) -> dict:
    """What the answers were drawn from: each index's content id (a hash of its files' hashes), embedder and
    chunking, and one sha256 over all of them, so two runs can tell whether they read the same corpus."""
    import hashlib

    parts = {}
    for idx in indexes.values():
        m = idx.manifest
        parts[idx.name] = {"content_id": m.get("content_id"), "embedder": m.get("embedder"),
                           "chunk_tokens": m.get("chunk_tokens"), "overlap": m.get("overlap")}
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    return {"sha256": digest, "indexes": parts}


def _chunks_for(indexes: dict):
    """``record → [(chunk id, file, text)]`` of the record's index, read once per index."""
    cache: dict[str, list[tuple[int, str, str]]] = {}

    def chunks_for(record: dict) -> list[tuple[int, str, str]]:
        idx = indexes.get(record.get("document") or "") or next(iter(indexes.values()))
        if idx.name not in cache:
            cache[idx.name] = [(c.id, c.file, c.text) for c in idx.corpus.store.chunks()]
        return cache[idx.name]

    return chunks_for


def _judge(grounding: str, judge_model: str | None, indexes: dict, generator: GeneratorConfig | None) -> tuple:
    """The grounding method for ``grounding`` (overlap, or judge with ``judge_model`` or the eval's own reader) and
    what the run records about it."""
    from ..eval import grounding as gr

    if grounding == "overlap":
        if judge_model:
            raise ConfigError("--judge-model is for --grounding judge; --grounding overlap uses no model.")
        return "overlap", {"method": "overlap", "min_support": gr.MIN_SUPPORT, "window_sentences": gr.WINDOW}
    if grounding != "judge":
        raise ConfigError(f"--grounding takes overlap or judge, got '{grounding}'.")
    from ..generators import load_generator

    base = next(iter(indexes.values())).corpus.generator_config
    config = dataclasses.replace(base, model=judge_model) if judge_model else base
    try:
        gen = load_generator(config)
    except Exception as e:  # noqa: BLE001 - a judge that cannot load is one line
        raise ConfigError(f"--judge-model '{judge_model}' could not be loaded ({first_line(e)}). Name a model "
                          f"docqa models lists, or openai:NAME with --base-url.") from e
    return gr.make_judge(gen), {"method": "judge", "model": getattr(gen, "spec", config.model),
                                "prompt": gr.JUDGE_PROMPT, "context": "the 3 best-matching 3-sentence windows"}


def _changed_since(out: Path, server: dict | None) -> list[str]:
    """What differs between the run being resumed (its summary.json) and now that could change answers: docqa's
    version, and for a served model its model id, build, window and sampling. Settings that must match are refused
    by ``runner.check_identity``; these are said, since a restarted server may differ only in its build."""
    import json

    from .. import __version__

    try:
        meta = json.loads((out / "summary.json").read_text()).get("meta") or {}
    except (OSError, ValueError, AttributeError):
        return []
    said = []
    if meta.get("docqa_version") and meta["docqa_version"] != __version__:
        said.append(f"--resume: the run began with docqa {meta['docqa_version']}, this is {__version__}.")
    before = meta.get("server") or {}
    if server is not None and before:
        keys = ("model_id", "build", "window", "sampling")
        differ = [k for k in keys if before.get(k) != server.get(k)]
        if differ:
            said.append("--resume: the server differs from the one the run began with (" + "; ".join(
                f"{k}: {before.get(k)} then, {server.get(k)} now" for k in differ) + "): answers from before and "
                "after may not be comparable.")
    return said


def verdict(records: list[dict], rows: list[dict]) -> Verdict | None:
    """Which row of an eval to use, and how sure that is (:func:`docqa.eval.verdict.decide`); None with fewer than two
    rows to compare."""
    from ..eval.verdict import decide

    return decide(records, rows)


def _styles_notice(kinds: Counter, style: str) -> str:
    """What a mixed set's questions are asked for, per kind (docqa/eval/runner.py ``question_style``)."""
    def many(n: int, what: str) -> str:
        return f"{n} {what} is" if n == 1 else f"{n} {what.replace('question', 'questions', 1)} are"

    parts = []
    if kinds.get("choice"):
        parts.append(f"{many(kinds['choice'], 'multiple-choice question')} asked for the option's letter")
    if style != "short" and kinds.get("short"):
        parts.append(f"{many(kinds['short'], 'question whose reference is a few words')} asked in the short style "
                     f"(its length hint)")
    parts.append(f"the other {kinds.get(style, 0)} in the {style} style.")
    return "; ".join(parts)
