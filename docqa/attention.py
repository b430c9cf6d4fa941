"""Attention for few queries over a long cache (decoding, a question after a cached prefix), on CPU and CUDA.

With a 30 k-token cache, PyTorch's CPU flash-attention kernel spends ~5 ms a layer on one query (147 ms of a 200 ms
decode step here), and for a short multi-token suffix transformers first repeats the grouped keys and values for
every query head (``repeat_kv``), copying the whole cache. For a handful of queries a plain grouped product is
cheaper: the query heads that share a key/value head are stacked, so each key is read once and nothing is copied.
Longer query blocks (prefill chunks) and other devices go to transformers' SDPA unchanged.

Registered with transformers' ``AttentionInterface`` under ``docqa_sdpa`` (masks built as for ``sdpa``).
"""

from __future__ import annotations

import torch

NAME = "docqa_sdpa"
SMALL_Q = 64  # query blocks up to this long take the grouped path (a question suffix; one decode step)
# Devices whose few-query blocks take the grouped path, and up to how many queries, each measured
# (benchmarks/RESULTS.md): CPU (above); CUDA for decode steps, where SDPA given a mask (CUDA-graph decoding always
# passes one) repeats the grouped keys and values for every query head and ran an 8 B model's graph decode steps at
# 32 tokens/s on an H200, against 88 here. A 64-token question after a 32 k prefix took ~27 ms either way there, and
# the fp32 scores of longer blocks grow with query × context (1 GB at 64 × 128 k), so they stay with SDPA on CUDA.
DEVICES = {"cpu": SMALL_Q, "cuda": 1}


def grouped_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None,
                      **kwargs):
    """Same contract as transformers' ``sdpa_attention_forward``: returns ``(output [b, q, heads, d], None)``."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    b, heads, q, d = query.shape
    kv_heads, k_len = key.shape[1], key.shape[2]
    if q > DEVICES.get(query.device.type, 0) or heads % kv_heads or kwargs.get("position_bias") is not None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    group = heads // kv_heads
    scale = scaling if scaling is not None else d**-0.5
    # Query head h uses key/value head h // group (the order repeat_kv produces).
    qg = query.reshape(b, kv_heads, group * q, d)
    if query.device.type == "cpu" and query.dtype != torch.float32:
        # Scores out of a bf16 matmul keep ~3 significant digits: a logit of 40 is off by ±0.15, 16 % on its softmax
        # weight. SDPA's kernels keep scores in fp32; torch has no fp32-output bf16 matmul on CPU, so the operands
        # are upcast (a copy of this layer's keys; only reduced-precision forwards of ≤ SMALL_Q queries pay it).
        # Measured on the 1.5 B reader's first 48 handbook tokens against llama.cpp's cache: values 20 % apart with
        # bf16 scores, 5 % with fp32 ones: as far apart as the same rows of a 600-token SDPA forward (RESULTS.md).
        qg, key = qg.float(), key.float()
    scores = torch.matmul(qg, key.transpose(-1, -2)).float() * scale  # (b, kv_heads, group*q, k_len)
    scores = scores.view(b, kv_heads, group, q, k_len)
    if attention_mask is not None:
        mask = attention_mask[:, :, -q:, -k_len:]  # (b, 1, q, k_len), bool (True: attend) or additive float
        mask = mask.unsqueeze(2)  # broadcast over kv heads and groups
        # The most negative finite value, not -inf: a left-padding row masked everywhere then gets a uniform (finite,
        # ignored) softmax instead of NaN, whose values would reach real rows through 0 × NaN in the next layer.
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min) if mask.dtype == torch.bool else scores + mask
    elif q > 1:  # no mask was built: plain causal over the last q positions
        causal = torch.ones(q, k_len, dtype=torch.bool, device=query.device).tril(k_len - q)
        scores = scores.masked_fill(~causal, float("-inf"))
    probs = torch.softmax(scores, dim=-1).to(value.dtype).view(b, kv_heads, group * q, k_len)
    out = torch.matmul(probs, value)  # (b, kv_heads, group*q, d)
    out = out.view(b, heads, q, d).transpose(1, 2).contiguous()
    return out, None


def register() -> str:
    """Make ``docqa_sdpa`` known to transformers (idempotent) and return its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(NAME, grouped_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    return NAME
