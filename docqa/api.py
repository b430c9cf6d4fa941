"""The public façade: ``ingest``, ``open_index`` and :class:`Index`.

Everything the CLI does goes through these functions, so a pipeline that ``import docqa`` gets the same behaviour
as a terminal user. Nothing here imports torch or faiss at import time.
"""

from __future__ import annotations

import time
from dataclasses import fields
from pathlib import Path
from typing import Any

from .corpus import Corpus
from .embedder import load_embedder
from .errors import ConfigError
from .generator import GeneratorConfig, load_tokenizer
from .index import store as _store
from .index.ingest import IngestConfig, IngestProgress
from .index.ingest import ingest as _ingest
from .paths import index_root
from .records import Answer, IngestReport
from .strategies import STRATEGIES, AskConfig


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
    progress: IngestProgress | None = None,
) -> IngestReport:
    """Create or update the index ``index`` from the documents under ``paths`` (files or folders).

    Unchanged files are skipped, changed ones replaced, and with ``sync=True`` files no longer present removed.
    ``model`` names the generator whose tokenizer sizes the chunks; ``embedder`` the sentence embedder.
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    root = Path(root) if root is not None else index_root()
    _store.valid_name(index)
    if embedder is None:  # an existing index keeps its embedder unless one is asked for
        try:
            embedder = _store.IndexStore(index, root).manifest.get("embedder")
        except Exception:  # noqa: BLE001 - no index yet, or unreadable: the default embedder
            embedder = None
    tokenizer_spec = GeneratorConfig(model=model).model if model else GeneratorConfig().model
    cfg = IngestConfig(chunk_tokens=chunk_tokens, overlap=overlap, sync=sync, rebuild=rebuild)
    return _ingest(
        [Path(p) for p in paths],
        index=index,
        root=root,
        embedder=load_embedder(embedder),
        tokenize=load_tokenizer(tokenizer_spec),
        tokenizer_spec=tokenizer_spec,
        config=cfg,
        progress=progress,
    )


def list_indexes(root: str | Path | None = None) -> list[str]:
    """Names of the indexes under ``root`` (default: $DOCQA_INDEX_ROOT or ./indexes)."""
    return _store.list_indexes(Path(root) if root is not None else index_root())


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
        """Answer ``question`` with ``strategy``; ``options`` are :class:`AskConfig` fields (top_k, rope, …)."""
        fn = STRATEGIES.get(strategy)
        t0 = time.perf_counter()
        answer = fn(self.corpus, question, make_config(**options))
        answer.timings.setdefault("total", time.perf_counter() - t0)
        return answer

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
    gen = generator or GeneratorConfig()
    if model:
        gen.model = model
    if device:
        gen.device = device
    return Index(Corpus.open(name, Path(root) if root is not None else index_root(), embedder=embedder,
                             generator=gen))
