"""Indexes: ``ingest`` documents into one, list and check them, ``open_index`` one and ask it (:class:`Index`)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..corpus import Corpus, index_embedder
from ..embedder import LazyEmbedder, load_embedder
from ..errors import ConfigError, DimensionMismatch, DocQAError, ModelLoadError
from ..generators import GeneratorConfig, load_tokenizer
from ..index import store as _store
from ..index.ingest import IngestConfig, IngestProgress
from ..index.ingest import ingest as _ingest
from ..paths import index_root
from ..records import Answer, Evidence, IngestReport, Source
from ..strategies import STRATEGIES, AskConfig
from .checked import checked


@checked
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
    retriever: str | None = None,
    progress: IngestProgress | None = None,
) -> IngestReport:
    """Create or update the index ``index`` from the documents under ``paths`` (files or folders).

    Unchanged files are skipped, changed ones replaced, and with ``sync=True`` files no longer present removed.
    ``model`` names the generator whose tokenizer sizes the chunks (and, with ``summaries=True``, writes a summary
    of every document that has none); ``embedder`` the sentence embedder; ``index_type`` the FAISS index (auto:
    exact search, IVF from 50 000 chunks; see :mod:`docqa.index.vectors`). ``vector_store`` is where the vectors
    live: ``faiss`` (default, in the index folder) or ``milvus`` (``uri``: a Milvus server such as
    ``http://host:19530``, or a Milvus Lite file ``*.db``; default ``milvus.db`` in the index folder; ``collection``
    defaults to ``docqa_<index>_v<version>``). An existing index keeps its store unless ``rebuild``. ``retriever``
    (dense, bm25 or hybrid) is recorded as the index's own: questions use it unless they name another. Every
    segment also keeps BM25 postings; an index written before it had them gets them here, in place.
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
    from ..index.vector_stores import VECTOR_STORES
    from ..index.vectors import check_type

    store = None
    if vector_store is not None or uri is not None or collection is not None:
        kind = VECTOR_STORES.canonical(vector_store or "faiss")
        if kind == "faiss" and (uri or collection):
            raise ConfigError("--uri and --collection are for --vector-store milvus; FAISS keeps its vectors in the "
                              "index folder.")
        store = {"type": kind, **({"uri": str(uri)} if uri else {}), **({"collection": collection} if collection
                                                                          else {})}
    from ..retrieval import DEFAULT_RETRIEVER, RETRIEVERS

    cfg = IngestConfig(chunk_tokens=chunk_tokens, overlap=overlap, sync=sync, rebuild=rebuild, summaries=summaries,
                       max_file_mb=max_file_mb, index_type=check_type(index_type), vector_store=store,
                       retriever=RETRIEVERS.canonical(retriever) if retriever is not None else None,
                       default_retriever=DEFAULT_RETRIEVER)
    summarizer = None
    if summaries:
        from ..generators import load_generator
        from ..strategies.doc_summaries import summarize_text

        gen = load_generator(GeneratorConfig(model=tokenizer_spec))
        summarizer = lambda name, text: summarize_text(gen, name, text, gen.trained_window)  # noqa: E731
    return _ingest(
        [Path(p) for p in paths],
        index=index,
        root=root,
        embedder=LazyEmbedder(embedder, lambda spec: load_embedder(spec)),  # loaded only if needed
        tokenize=_LazyTokenizer(tokenizer_spec),
        tokenizer_spec=tokenizer_spec,
        config=cfg,
        progress=progress,
        summarizer=summarizer,
    )


class _LazyTokenizer:
    """The generator's tokenizer (``text -> ids``), loaded at its first call: an ingest that finds nothing changed
    splits nothing, and loading it (transformers, hence torch) took 3.3 s of such a run here."""

    def __init__(self, spec: str):
        self.spec = spec
        self._tokenize: Callable[[str], list[int]] | None = None

    def __call__(self, text: str) -> list[int]:
        if self._tokenize is None:
            self._tokenize = load_tokenizer(self.spec)
        return self._tokenize(text)


@checked
def list_indexes(root: str | Path | None = None) -> list[str]:
    """Names of the indexes under ``root`` (default: $DOCQA_INDEX_ROOT or ./indexes)."""
    return _store.list_indexes(_store.valid_root(Path(root) if root is not None else index_root()))


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


def disk_bytes(index: str, *, root: str | Path | None = None) -> int:
    """Bytes an index takes on disk, all its versions together (shared segments counted once)."""
    return _store.disk_bytes((Path(root) if root is not None else index_root()) / _store.valid_name(index))


def check(index: str, *, root: str | Path | None = None, embedder: bool = True) -> _store.CheckReport:
    """Verify every file of an index's live version (checksums, SQLite integrity, counts, ids, vector sizes) and,
    with ``embedder``, that the embedder the manifest names loads here and makes vectors of the index's size, through
    the check ``ask`` runs before its first search (:func:`docqa.corpus.index_embedder`): ``docqa check``."""
    root = Path(root) if root is not None else index_root()
    report = _store.check_index(index, root)
    if not embedder or not report.ok:
        return report
    what = f"embedder '{report.embedder}' loads and makes {report.dim}-d vectors"
    try:
        index_embedder(index, report.embedder, report.dim)
    except (ModelLoadError, DimensionMismatch) as e:
        report.add(what, False, str(e))
    else:
        report.add(what, True)
    return report


def remove(index: str, *, root: str | Path | None = None, force: bool = False) -> _store.Removed:
    """Delete the index ``index`` and every version of it (``docqa remove``): never during an ingest, and not while
    it is open somewhere unless ``force``; Milvus collections it keeps outside its folder are dropped too."""
    return _store.remove_index(index, Path(root) if root is not None else index_root(), force=force)


def strategies() -> list[str]:
    """Names of the registered answering strategies."""
    return STRATEGIES.names()


class Index:
    """An opened index: ask it questions with any registered strategy."""

    def __init__(self, corpus: Corpus):
        self.corpus = corpus

    def __repr__(self) -> str:  # what a notebook shows for an opened index: what it holds, read from the manifest
        m = self.manifest
        files = m.get("files")
        n_files = len(files) if isinstance(files, dict | list) else "?"
        return (f"<docqa.Index '{self.name}' version {m.get('version')}: {n_files} files, {m.get('chunks')} chunks, "
                f"{m.get('tokens')} tokens; embedder {m.get('embedder')}>")

    @property
    def name(self) -> str:
        return self.corpus.name

    @property
    def manifest(self) -> dict[str, Any]:
        return self.corpus.store.manifest

    def files(self) -> list[str]:
        return self.corpus.store.file_names()

    def saved_prefixes(self) -> int:
        """How many long-context prefixes are saved under this index version (``cache_prefix``)."""
        from ..prefix_cache import saved
        from ..strategies.long_context import prefix_folder

        return len(saved(prefix_folder(self.corpus)))

    def load(self, retrieval: bool = True) -> float:
        """Load the generator, and the embedder unless ``retrieval`` is False (long-context without ``truncate``
        retrieves nothing), now; return the seconds it took. Otherwise the first question loads them and its timings
        include the load (~1 s for the embedded reader and embedder on 2 CPU cores; more for models on transformers)."""
        t0 = time.perf_counter()
        if retrieval:
            self.corpus.embedder()
        self.corpus.generator()
        return time.perf_counter() - t0

    @checked
    def ask(self, question: str, strategy: str | None = "rag", **options: Any) -> Answer:
        """Answer ``question`` with ``strategy``; ``options`` are :class:`AskConfig` fields (top_k, rope, …).
        ``strategy`` may be a variant that sets options itself, as ``docqa eval`` names them (``rag:top_k=16``, what
        an eval's verdict may recommend); the variant's options win over ``options``."""
        from ..strategies.variants import parse_variant

        variant = parse_variant(strategy or "rag")
        fn = STRATEGIES.get(variant.strategy)
        t0 = time.perf_counter()
        answer = fn(self.corpus, question, make_config(**{**options, **variant.options}))
        answer.timings.setdefault("total", time.perf_counter() - t0)
        answer.model = answer.model or self._model_name()
        return answer

    @checked
    def evidence(self, answer: Answer, question: str = "", limit: int = 3) -> Evidence:
        """Where ``answer`` is found in the text its strategy read, without a model (:func:`docqa.eval.grounding.
        evidence`): rag's retrieved passages; for long-context and summarize, whose sources are whole files, every
        chunk of those files. ``limit`` passages at most, best first, and the figures the answer states that neither
        the text read nor the ``question`` holds."""
        from ..eval.grounding import evidence

        if limit < 1:
            raise ConfigError(f"limit must be at least 1 passage, got {limit}.")
        read = [s for s in answer.sources if s.text]
        if not read and answer.sources:
            files = sorted({s.file for s in answer.sources})
            read = [Source(c.file, c.start_char, c.end_char, c.page, None, c.id, c.text)
                    for c in self.corpus.store.chunks(files=files)]
        found, missing = evidence(answer.text, [s.text for s in read], limit, question)
        return Evidence([(read[i], share) for i, share in found], missing)

    def _model_name(self) -> str:
        """The loaded generator's spec ("backend:model"); strategies that answer without a model leave it empty."""
        from ..generators import loaded_generator

        gen = loaded_generator(self.corpus.generator_config)
        return getattr(gen, "spec", "") if gen is not None else ""

    @checked
    def ask_many(self, questions: list[str], strategy: str | None = "rag", *, batch_size: int = 8,
                 length_hints: list[int | None] | None = None, **options: Any) -> list[Answer]:
        """Answer ``questions`` with ``strategy``: where it batches (rag), ``batch_size`` answers decode at once and a
        finished answer's place goes to the next question (continuous batching); otherwise one by one. Greedy answers
        are the ones :meth:`ask` gives. ``length_hints``, one per question, is each one's ``length_hint``."""
        from ..strategies import BATCHED
        from ..strategies.variants import parse_variant

        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}.")
        variant = parse_variant(strategy or "rag")
        options = {**options, **variant.options}
        cfg = make_config(**options)
        name = variant.strategy
        if length_hints is not None and len(length_hints) != len(questions):
            raise ConfigError(f"length_hints has {len(length_hints)} entries for {len(questions)} questions.")
        if name not in BATCHED.names() or batch_size == 1:
            hints = length_hints or [options.get("length_hint")] * len(questions)
            return [self.ask(q, name, **{**options, "length_hint": n}) for q, n in zip(questions, hints, strict=True)]
        answers = BATCHED.get(name)(self.corpus, list(questions), cfg, batch_size, length_hints=length_hints)
        for a in answers:
            a.model = a.model or self._model_name()
        return answers

    def ask_all(self, question: str, strategies: list[str] | None = None, **options: Any) -> dict[str, Answer]:
        """The same question through several strategies (default: all registered), for side-by-side comparison:
        each with KV caches of its own (:meth:`own_caches`)."""
        names = strategies or STRATEGIES.names()
        out = {}
        shared = self.corpus.caches.get("kv_pool")
        try:
            for s in names:
                self.own_caches(s, len(names))
                out[s] = self.ask(question, s, **options)
        finally:  # a later ask of one strategy uses the corpus's own caches again
            if shared is None:
                self.corpus.caches.pop("kv_pool", None)
            else:
                self.corpus.caches["kv_pool"] = shared
        return out

    def own_caches(self, strategy: str, shares: int) -> None:
        """Side by side, give ``strategy`` kept KV caches of its own (a ``shares``-th of the budget), so that none
        answers from a prefix another prefilled: auto would otherwise read long-context's kept prefix and look as
        cheap as a later question. Each then costs what it would alone, later questions reusing its own caches, as
        ``docqa eval`` measures them (every strategy starts cold)."""
        from ..kv_budget import KVPool

        pools = self.corpus.caches.setdefault("strategy_pools", {})
        if strategy not in pools:
            whole = pools.get(None) or self.corpus.kv_pool()
            pools[None] = whole
            pools[strategy] = KVPool(whole.budget // max(shares, 1))
        self.corpus.caches["kv_pool"] = pools[strategy]


def make_config(**options: Any) -> AskConfig:
    """An :class:`AskConfig` from keyword options, rejecting unknown ones by name."""
    known = {f.name for f in fields(AskConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"Unknown option(s) {', '.join(unknown)}. Known: {', '.join(sorted(known))}.")
    from ..strategies.variants import coerce_options

    options = coerce_options(options)
    return AskConfig(**{k: v for k, v in options.items() if v is not None or k == "rope_factor"})


@checked
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
    ``model`` picks the generator (default: the embedded Qwen2.5-Coder-1.5B, or $DOCQA_MODEL); ``generator`` sets every
    generator option."""
    gen = generator_config(model, device, generator)
    return Index(Corpus.open(name, Path(root) if root is not None else index_root(), embedder=embedder,
                             generator=gen))


def generator_config(model: str | None, device: str | None, generator: GeneratorConfig | None) -> GeneratorConfig:
    """The generator options of an open index or a benchmark: ``generator`` (or the defaults) with ``model`` and
    ``device`` over it."""
    gen = dataclasses.replace(generator) if generator is not None else GeneratorConfig()
    if model:
        gen.model = model
    if device:
        gen.device = device
    return gen
