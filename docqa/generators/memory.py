"""Memory of the in-process backend, in bytes computed from the model: the KV bytes a token holds, how many tokens a
prefill forward takes on each device, and out-of-memory errors turned into one :class:`~docqa.errors.OutOfMemory`.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from ..environment import available_memory
from ..errors import OutOfMemory
from .hf_config import SLIDING, _head_dim, layer_types

if TYPE_CHECKING:
    from .base import TorchBackend

CPU_PREFILL_CHUNK = 2048  # measured: see GeneratorConfig.prefill_chunk
# Models with sliding-window layers prefill in chunks this long. In one pass a sliding layer attends through a mask
# over every earlier position (computed, then masked out), so its cost grows with the square of the length like a full
# layer's; in chunks it sees only its window and the chunk. Gemma 3 270M, bf16 prefill, 2 cores
# (benchmarks/RESULTS.md, "Hybrid attention"): 8 k tokens in one pass 32.9 s, in 2 048-token chunks 15.1 s; 16 k:
# 114.7 s, 34.7 s, 1 024-token chunks 29.5 s; 32 k: ~450 s in one pass, 91.9 s and 79.4 s.
SLIDING_PREFILL_CHUNK = 1024


def _layer_token_bytes(model) -> int:
    """Bytes one token holds in one layer's cache: 2 × KV heads × head dim × dtype size."""
    cfg = model.config
    heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    return int(2 * heads * _head_dim(cfg) * next(model.parameters()).element_size())


def kv_bytes_per_token(model) -> int:
    """Bytes one more token adds to the cache: full-attention layers × 2 × KV heads × head dim × dtype size. A
    sliding-window layer adds nothing once its window is full (:func:`kv_bytes` counts its window)."""
    full = sum(1 for t in layer_types(model.config) if t != SLIDING)
    return full * _layer_token_bytes(model)


def kv_bytes(model, tokens: int) -> int:
    """Bytes of a cache holding ``tokens`` tokens, per layer type: every full layer keeps all of them, a sliding layer
    at most its window (Gemma 3 270M at 32 k tokens: 3 full layers × 32 768 + 15 sliding × 511, 18 % of a cache that
    kept every position in every layer)."""
    types = layer_types(model.config)
    window = int(getattr(model.config, "sliding_window", None) or 0)
    sliding = sum(1 for t in types if t == SLIDING)
    return _layer_token_bytes(model) * ((len(types) - sliding) * tokens + sliding * min(tokens, max(window - 1, 0)))


def prefill_step(gen: TorchBackend, tokens: int) -> int:
    """Tokens per prefill forward for a prompt of ``tokens``: the configured chunk, else one pass where its
    activations fit a share of the memory they live in (half the GPU's free memory; a quarter of the RAM available),
    else as many tokens as fit, never fewer than 2048. Eager attention keeps 2048-token chunks (its score matrix
    grows with chunk × context); models with sliding-window layers take :data:`SLIDING_PREFILL_CHUNK`-token chunks.

    Why one pass: only a forward with no cache to attend to runs the causal flash kernel; a chunk after the first
    attends through a mask. On an H200 (8 B model, 32 k tokens) one pass ran at 58 % of bf16 peak, 2048-token chunks
    at 39 %; on this project's 2-core CPU (SmolLM2, bf16 prefill) one pass was 13 % faster at 4 k tokens (5.3 against
    5.9 s) and 9 % at 16 k (65.0 against 70.7 s), and the masked chunks' attention materialised chunk × context
    scores (~2 GB a chunk at 30 k) where flash attention holds O(n)."""
    if gen.config.prefill_chunk:
        return max(1, gen.config.prefill_chunk)
    if SLIDING in layer_types(gen.model.config):
        return SLIDING_PREFILL_CHUNK
    if gen.model.config._attn_implementation == "eager":
        return CPU_PREFILL_CHUNK
    cfg = gen.model.config
    hidden = cfg.hidden_size
    inter = getattr(cfg, "intermediate_size", None) or 4 * hidden
    # Peak activations of one layer's forward, per token: the MLP's gate, up and their product, and a few
    # hidden-sized tensors (residual, norm, attention output, q/k/v), in the dtype prefill runs in.
    size = _itemsize(getattr(getattr(gen, "dtypes", None), "prefill", None) or gen.model.dtype)
    per_token = (3 * inter + 8 * hidden) * size
    if str(gen.device).startswith("cuda"):
        import torch

        budget = torch.cuda.mem_get_info(torch.device(gen.device))[0] // 2
    else:
        budget = available_memory() // 4
    return max(CPU_PREFILL_CHUNK, min(tokens, int(budget // per_token)))


def _itemsize(dtype) -> int:
    import torch

    return torch.empty(0, dtype=dtype).element_size()


@contextlib.contextmanager
def oom_guard(gen: TorchBackend, tokens: int):
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
