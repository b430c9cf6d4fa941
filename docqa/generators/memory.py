"""Memory of the in-process backend, in bytes computed from the model: the KV bytes a token holds, how many tokens a
prefill forward takes on each device, and out-of-memory errors turned into one :class:`~docqa.errors.OutOfMemory`.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from ..errors import OutOfMemory
from .hf_config import _head_dim

if TYPE_CHECKING:
    from .hf import TransformersGenerator

CPU_PREFILL_CHUNK = 2048  # measured: see GeneratorConfig.prefill_chunk


def available_memory() -> int:
    """Bytes the OS says are available (MemAvailable); a large number where it cannot say."""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62


def kv_bytes_per_token(model) -> int:
    """Bytes of keys and values one token holds in the cache: layers × 2 × KV heads × head dim × dtype size."""
    cfg = model.config
    heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    size = next(model.parameters()).element_size()
    return int(cfg.num_hidden_layers * 2 * heads * _head_dim(cfg) * size)


def prefill_step(gen: TransformersGenerator, tokens: int) -> int:
    """Tokens per prefill forward for a prompt of ``tokens``: the configured chunk; else 2048 on CPU (measured) and
    with eager attention (its chunk × context score matrix); on CUDA as many tokens as half the free memory holds
    activations for, so one pass where it fits (flash attention runs only without a cache to attend to: on an H200,
    one pass of 32 k tokens ran at 58 % of bf16 peak, 2048-token chunks at 39 %)."""
    if gen.config.prefill_chunk:
        return max(1, gen.config.prefill_chunk)
    if not str(gen.device).startswith("cuda") or gen.model.config._attn_implementation == "eager":
        return CPU_PREFILL_CHUNK
    import torch

    cfg = gen.model.config
    hidden = cfg.hidden_size
    inter = getattr(cfg, "intermediate_size", None) or 4 * hidden
    # Peak activations of one layer's forward, per token: the MLP's gate, up and their product, and a few
    # hidden-sized tensors (residual, norm, attention output, q/k/v).
    per_token = (3 * inter + 8 * hidden) * next(gen.model.parameters()).element_size()
    free, _ = torch.cuda.mem_get_info(torch.device(gen.device))
    return max(CPU_PREFILL_CHUNK, min(tokens, int(free // 2 // per_token)))


@contextlib.contextmanager
def oom_guard(gen: TransformersGenerator, tokens: int):
    """An out-of-memory error becomes a DocQAError that names the KV size and the fixes, so an eval records it for
    that question and goes on; the allocator's cache is released first."""
    import torch

    try:
        yield
    except (torch.OutOfMemoryError, RuntimeError) as e:
        if not isinstance(e, torch.OutOfMemoryError) and "out of memory" not in str(e).lower() \
                and "can't allocate memory" not in str(e):
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        per = kv_bytes_per_token(gen.model)
        raise OutOfMemory(
            f"Out of memory on {gen.device} for {tokens:,} tokens: their KV cache alone needs "
            f"{tokens * per / 2**30:.2f} GiB ({per:,} bytes a token, {gen.model.dtype}). Lower --max-context (or "
            f"use --truncate), use --dtype bfloat16 or float16, or --strategy rag.", tokens, per) from e
