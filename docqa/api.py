"""The public façade: ``ingest``, ``open_index`` and :class:`Index`.

Everything the CLI does goes through these functions, so a pipeline that ``import docqa`` gets the same behaviour
as a terminal user. Nothing here imports torch or faiss at import time.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .corpus import Corpus
from .embedder import load_embedder
from .errors import ConfigError, DocQAError
from .generators import GeneratorConfig, load_tokenizer
from .index import store as _store
from .index.ingest import IngestConfig, IngestProgress
from .index.ingest import ingest as _ingest
from .paths import index_root
from .records import Answer, IngestReport
from .strategies import STRATEGIES, AskConfig

if TYPE_CHECKING:
    from .eval.verdict import Verdict


def ingest(
    paths: str | Path | list[str | Path],
    index: str,
    *,
    root: str | Path | None = None,
    embedder: str | None = None,
    model: str | None = None,
    chunk_tokens: int = IngestConfig.chunk_tokens,
    overlap: int = IngestConfig.overlap,
    sync: bool = False,
    rebuild: bool = False,
    summaries: bool = False,
    max_file_mb: float = IngestConfig.max_file_mb,
    index_type: str = IngestConfig.index_type,
    vector_store: str | None = None,
    uri: str | None = None,
    collection: str | None = None,
    progress: IngestProgress | None = None,
) -> IngestReport:
    """Create or update the index ``index`` from the documents under ``paths`` (files or folders).

    Unchanged files are skipped, changed ones replaced, and with ``sync=True`` files no longer present removed.
    ``model`` names the generator whose tokenizer sizes the chunks (and, with ``summaries=True``, writes a summary
    of every document that has none); ``embedder`` the sentence embedder; ``index_type`` the FAISS index (auto:
    exact search, IVF from 50 000 chunks; see :mod:`docqa.index.vectors`). ``vector_store`` is where the vectors
    live: ``faiss`` (default, in the index folder) or ``milvus`` (``uri``: a Milvus server such as
    ``http://host:19530``, or a Milvus Lite file ``*.db``; default ``milvus.db`` in the index folder; ``collection``
    defaults to ``docqa_<index>_v<version>``). An existing index keeps its store unless ``rebuild``.
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    root = _store.valid_root(Path(root) if root is not None else index_root())
    _store.valid_name(index)
    if embedder is None:  # an existing index keeps its embedder unless one is asked for
        try:
            embedder = _store.read_live_manifest(index, root).embedder
        except DocQAError:  # no index yet, or damaged (the writer then says how): the default embedder
            embedder = None
    tokenizer_spec = model or GeneratorConfig().model
    if not max_file_mb > 0:
        raise ConfigError(f"--max-file-mb must be positive, got {max_file_mb}.")
    from .index.vector_stores import VECTOR_STORES
    from .index.vectors import check_type

    store = None
    if vector_store is not None or uri is not None or collection is not None:
        kind = VECTOR_STORES.canonical(vector_store or "faiss")
        if kind == "faiss" and (uri or collection):
            raise ConfigError("--uri and --collection are for --vector-store milvus; FAISS keeps its vectors in the "
                              "index folder.")
        store = {"type": kind, **({"uri": str(uri)} if uri else {}), **({"collection": collection} if collection
                                                                          else {})}
    cfg = IngestConfig(chunk_tokens=chunk_tokens, overlap=overlap, sync=sync, rebuild=rebuild, summaries=summaries,
                       max_file_mb=max_file_mb, index_type=check_type(index_type), vector_store=store)
    summarizer = None
    if summaries:
        from .generators import load_generator
        from .strategies.summarize import summarize_text

        gen = load_generator(GeneratorConfig(model=tokenizer_spec))
        summarizer = lambda name, text: summarize_text(gen, name, text, gen.trained_window)  # noqa: E731
    return _ingest(
        [Path(p) for p in paths],
        index=index,
        root=root,
        embedder=load_embedder(embedder),
        tokenize=load_tokenizer(tokenizer_spec),
        tokenizer_spec=tokenizer_spec,
        config=cfg,
        progress=progress,
        summarizer=summarizer,
    )


def list_indexes(root: str | Path | None = None) -> list[str]:
    """Names of the indexes under ``root`` (default: $DOCQA_INDEX_ROOT or ./indexes)."""
    return _store.list_indexes(Path(root) if root is not None else index_root())


def manifests(names: list[str], *, root: str | Path | None = None) -> list[tuple[str, Any]]:
    """(name, manifest) per index, or (name, reason) where the manifest is unreadable: for listings."""
    root = Path(root) if root is not None else index_root()
    out: list[tuple[str, Any]] = []
    for name in names:
        try:
            out.append((name, _store.read_live_manifest(name, root)))
        except DocQAError as e:
            out.append((name, str(e).split(": ", 1)[-1].split(". Nothing")[0]))
    return out


def check(index: str, *, root: str | Path | None = None) -> _store.CheckReport:
    """Verify every file of an index's live version (checksums, SQLite integrity, counts, ids): ``docqa check``."""
    return _store.check_index(index, Path(root) if root is not None else index_root())


def strategies() -> list[str]:
    """Names of the registered answering strategies."""
    return STRATEGIES.names()


class Index:
    """An opened index: ask it questions with any registered strategy."""

    def __init__(self, corpus: Corpus):
        self.corpus = corpus

    @property
    def name(self) -> str:
        return self.corpus.name

    @property
    def manifest(self) -> dict[str, Any]:
        return self.corpus.store.manifest

    def files(self) -> list[str]:
        return self.corpus.store.file_names()

    def ask(self, question: str, strategy: str = "rag", **options: Any) -> Answer:
        """Answer ``question`` with ``strategy``; ``options`` are :class:`AskConfig` fields (top_k, rope, …).
        ``strategy`` may be a variant that sets options itself, as ``docqa eval`` names them (``rag:top_k=16``, what
        an eval's verdict may recommend); the variant's options win over ``options``."""
        from .strategies.variants import parse_variant

        variant = parse_variant(strategy)
        fn = STRATEGIES.get(variant.strategy)
        t0 = time.perf_counter()
        answer = fn(self.corpus, question, make_config(**{**options, **variant.options}))
        answer.timings.setdefault("total", time.perf_counter() - t0)
        return answer

    def ask_many(self, questions: list[str], strategy: str = "rag", *, batch_size: int = 8,
                 length_hints: list[int | None] | None = None, **options: Any) -> list[Answer]:
        """Answer ``questions`` with ``strategy``: where it batches (rag), ``batch_size`` answers decode at once and a
        finished answer's place goes to the next question (continuous batching); otherwise one by one. Greedy answers
        are the ones :meth:`ask` gives. ``length_hints``, one per question, is each one's ``length_hint``."""
        from .strategies import BATCHED
        from .strategies.variants import parse_variant

        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}.")
        variant = parse_variant(strategy)
        options = {**options, **variant.options}
        cfg = make_config(**options)
        name = variant.strategy
        if length_hints is not None and len(length_hints) != len(questions):
            raise ConfigError(f"length_hints has {len(length_hints)} entries for {len(questions)} questions.")
        if name not in BATCHED.names() or batch_size == 1:
            hints = length_hints or [options.get("length_hint")] * len(questions)
            return [self.ask(q, name, **{**options, "length_hint": n}) for q, n in zip(questions, hints, strict=True)]
        return BATCHED.get(name)(self.corpus, list(questions), cfg, batch_size, length_hints=length_hints)

    def ask_all(self, question: str, strategies: list[str] | None = None, **options: Any) -> dict[str, Answer]:
        """The same question through several strategies (default: all registered), for side-by-side comparison."""
        return {s: self.ask(question, s, **options) for s in (strategies or STRATEGIES.names())}


def make_config(**options: Any) -> AskConfig:
    """An :class:`AskConfig` from keyword options, rejecting unknown ones by name."""
    known = {f.name for f in fields(AskConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"Unknown option(s) {', '.join(unknown)}. Known: {', '.join(sorted(known))}.")
    return AskConfig(**{k: v for k, v in options.items() if v is not None or k == "rope_factor"})


def open_index(
    name: str,
    *,
    root: str | Path | None = None,
    embedder: str | None = None,
    model: str | None = None,
    device: str | None = None,
    generator: GeneratorConfig | None = None,
) -> Index:
    """Open the index ``name``. ``embedder``, when given, must be the one the index was built with;
    ``model`` picks the generator (default: the embedded SmolLM2); ``generator`` sets every generator option."""
    gen = _generator_config(model, device, generator)
    return Index(Corpus.open(name, Path(root) if root is not None else index_root(), embedder=embedder,
                             generator=gen))


def evaluate(
    questions: str | Path | None,
    *,
    index: str | None = None,
    strategies: list[str] | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    leval: str | Path | None = None,
    limit: int | None = None,
    limit_docs: int | None = None,
    root: str | Path | None = None,
    model: str | None = None,
    generator: GeneratorConfig | None = None,
    concurrency: int = 1,
    batch_size: int = 1,
    progress=None,
    notice: Callable[[str], None] | None = None,
    length_hint: bool | None = None,
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
    asks for an answer of about its reference's length in words ("The suggested output length is around N words."),
    as every model of L-Eval's published scores was asked; retrieval sees the question alone. It uses the reference,
    so it measures the strategies with answer length held level, not what a user's question would get.

    Each question is scored by its own metric (``score``): token F1, or for multiple choice (options as lettered
    lines, references the letters; docqa JSONL's ``options`` or L-Eval's exams) whether the answer chose exactly the
    right letters. The paired column and the verdict compare rows on it.
    """
    from .eval import questions as qio
    from .eval import report, runner
    from .strategies.variants import parse_variants

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
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}.")
    if limit_docs is not None and (limit_docs < 1 or leval is None):
        raise ConfigError(f"--limit-docs takes a positive number of documents of an --leval file, got {limit_docs}"
                          f"{'' if leval is not None else ' without --leval'}.")
    if leval is not None:
        docs = qio.load_leval(Path(leval))
        # Documents L-Eval scores by an LLM judge or by people have no automatic metric: left out, so scores compare
        # with L-Eval's published ones (financial QA: 52 of 68 questions).
        judged = sum(len(doc_qs) for _, _, doc_qs in docs if all(q.metric is None for q in doc_qs))
        docs = [d for d in docs if any(q.metric is not None for q in d[2])][:limit_docs]
        if not docs:
            raise ConfigError(f"L-Eval file '{leval}': every document is judged by an LLM or people (its 'evaluation' "
                              f"field), so no answer can be scored automatically. Use a file whose evaluation is f1, "
                              f"rouge or exam.")
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
            ingest(folder, f"leval-{name}", root=root, model=model)
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
        index_for = lambda q: idx  # noqa: E731
        title = f"{Path(questions).name} on index '{index}'"
        source = str(Path(questions).resolve())
    from .prompts import check_style, style_for_questions

    if options.get("style", "auto") == "auto":  # answers shaped like the set's references (prompts.py STYLES)
        options["style"] = style_for_questions([q.answers for q in qs], [q.metric or "f1" for q in qs])
    options["style"] = check_style(options["style"])
    # A variant's style=auto is the run's style; each variant's options, over the run's, are checked before any
    # question is asked.
    variants = [dataclasses.replace(v, options={**v.options, "style": options["style"]})
                if v.options.get("style") == "auto" else v for v in variants]
    for variant in variants:
        try:
            make_config(**{**options, **variant.options}).check()
        except ConfigError as e:
            if not variant.options:
                raise
            raise ConfigError(f"Strategy variant '{variant.label}': {e}") from e
    strategies = [v.label for v in variants]
    if length_hint is None:
        length_hint = leval is not None
    if length_hint and leval is not None and notice is not None:
        notice("Following L-Eval's protocol, each free-text question asks for an answer of about its reference's "
               "length in words (--no-length-hint to ask without).")
    identity = {"model": model or GeneratorConfig().model, "options": options, "questions": source,
                "index": index, "limit": limit, "limit_docs": limit_docs, "length_hint": length_hint}
    cfg = runner.EvalConfig(strategies=strategies, out=Path(out) if out else None, resume=resume, options=options,
                            identity=identity, concurrency=concurrency,
                            batch_size=batch_size, length_hints=length_hint)
    records = runner.run(index_for, qs, cfg, progress)
    rows = report.summarize(records)
    decided = verdict(records, rows)
    if decided is not None:  # each row's part in the verdict; the recommended row carries its sentence
        for row in rows:
            name = row["strategy"]
            row["verdict"] = ("use" if name == decided.use else "tied" if name in decided.tied
                              else "trade-off" if name == decided.tradeoff else "less accurate")
        next(r for r in rows if r["strategy"] == decided.use)["verdict_text"] = decided.text
    if out:
        meta = {"title": title, "questions": len(qs), "strategies": strategies, "options": options,
                "length_hint": length_hint,
                "model": model or GeneratorConfig().model,
                "verdict": None if decided is None else {"use": decided.use, "best": decided.best,
                                                         "tied": decided.tied, "text": decided.text}}
        report.write(Path(out), records, rows, meta)
    if cfg.aborted:
        from .errors import ServerUnreachable

        missing = sum(1 for r in records if r.get("error_type") == "ServerUnreachable")
        where = f" (recorded as errors in {Path(out) / 'results.jsonl'})" if out else ""
        raise ServerUnreachable(f"{cfg.aborted.rstrip('.')}. {missing} questions got no answer{where}; once the server "
                                f"is back, run the same command with --resume to complete them.")
    return records, rows


def verdict(records: list[dict], rows: list[dict]) -> Verdict | None:
    """Which row of an eval to use, and how sure that is (:func:`docqa.eval.verdict.decide`); None with fewer than two
    rows to compare."""
    from .eval.verdict import decide

    return decide(records, rows)


def bench_rope(
    *,
    lengths: list[int],
    methods: list[str],
    out: str | Path,
    text: str | Path | None = None,
    tail: int = 1024,
    samples: int = 1,
    model: str | None = None,
    device: str | None = None,
    generator: GeneratorConfig | None = None,
    fresh: bool = False,
    reuse_identical: bool = True,
    progress=None,
):
    """Perplexity of a fixed final slice against context length, per rope method (``docqa bench rope``); finished
    cells in ``out`` are kept, so an interrupted run resumes. Returns a
    :class:`docqa.bench.rope_ppl.RopeBenchResult`."""
    from .bench.common import read_text
    from .bench.rope_ppl import RopeBenchConfig, run_rope
    from .generators import load_generator

    body, desc = read_text(Path(text) if text is not None else None)
    cfg = RopeBenchConfig(lengths=lengths, methods=methods, tail=tail, samples=samples, fresh=fresh,
                          reuse_identical=reuse_identical)
    gen = load_generator(_generator_config(model, device, generator))
    return run_rope(gen, body, cfg, Path(out), text_desc=desc, progress=progress)


def bench_needle(
    *,
    lengths: list[int],
    depths: list[float],
    methods: list[str],
    out: str | Path,
    text: str | Path | None = None,
    forms: list[str] | None = None,
    needle: str | None = None,
    question: str | None = None,
    answer: str | None = None,
    answer_start: str | None = None,
    model: str | None = None,
    device: str | None = None,
    generator: GeneratorConfig | None = None,
    fresh: bool = False,
    progress=None,
):
    """Needle in a haystack over lengths × depths × rope methods, in the question and passkey forms
    (``docqa bench needle``). Returns a :class:`docqa.bench.needle.NeedleBenchResult`."""
    from .bench import needle as nb
    from .bench.common import read_text
    from .generators import load_generator

    if needle is not None and answer is None:
        raise ConfigError("With --needle, say what counts as found with --answer (a string the needle holds).")
    body, desc = read_text(Path(text) if text is not None else None)
    cfg = nb.NeedleBenchConfig(lengths=lengths, depths=depths, methods=methods, forms=forms or list(nb.FORMS),
                               needle=needle or nb.DEFAULT_NEEDLE, question=question or nb.DEFAULT_QUESTION,
                               answer=answer or nb.DEFAULT_ANSWER, answer_start=answer_start, fresh=fresh)
    gen = load_generator(_generator_config(model, device, generator))
    return nb.run_needle(gen, body, cfg, Path(out), text_desc=desc, progress=progress)


def _generator_config(model: str | None, device: str | None, generator: GeneratorConfig | None) -> GeneratorConfig:
    gen = dataclasses.replace(generator) if generator is not None else GeneratorConfig()
    if model:
        gen.model = model
    if device:
        gen.device = device
    return gen
