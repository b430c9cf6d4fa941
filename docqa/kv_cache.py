"""A KV cache that appends in place: each layer keeps its keys and values in a buffer with spare room.

transformers' ``DynamicLayer`` appends with ``torch.cat``, which copies the whole cache at every decode step: for a
30 k-token prefix of SmolLM2 that is ~1.4 GB of copying per generated token, which dominates the latency of a second
question on a cached prefix. Here new states are written into preallocated room and the layer exposes views of the
filled part, so a step copies only its own keys and values. Cropping back to a prefix just moves the fill mark, and
the prefix's own entries are never touched, so one prefix serves question after question.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer, DynamicSlidingWindowLayer


class InPlaceLayer(DynamicLayer):
    """``DynamicLayer`` with amortised O(new tokens) appends (buffer grows by doubling when full)."""

    def __init__(self, capacity: int = 0, reserve: int = 0, dtype: torch.dtype | None = None):
        super().__init__()
        self.capacity = capacity  # first allocation, in tokens (the expected final length, when known)
        self.reserve = reserve  # room kept beyond what is needed whenever the buffer grows
        # Storage dtype (None: whatever the first states come in). A bf16 prefill writes into an fp32 cache that fp32
        # decoding then reads without converting it at every step.
        self.dtype = dtype
        self.length = 0
        self._k: torch.Tensor | None = None
        self._v: torch.Tensor | None = None
        # Static mode (CUDA-graph decoding, generators/cuda_graphs.py): a one-element device tensor holding the
        # position the next token is written at. The layer then returns its whole buffer (fixed shape and address, as
        # a captured graph needs) and the caller's mask hides the room not yet written.
        self.static_pos: torch.Tensor | None = None

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self.is_initialized = True
        self.length = 0
        self._k = self._v = None

    def _ensure(self, needed: int, like_k: torch.Tensor, like_v: torch.Tensor) -> None:
        capacity = 0 if self._k is None else self._k.shape[-2]
        if needed <= capacity:
            return
        new_cap = max(needed + self.reserve, 2 * capacity, self.capacity)
        k = like_k.new_empty((*like_k.shape[:-2], new_cap, like_k.shape[-1]), dtype=self.dtype or like_k.dtype)
        v = like_v.new_empty((*like_v.shape[:-2], new_cap, like_v.shape[-1]), dtype=self.dtype or like_v.dtype)
        if self._k is not None and self.length:
            k[..., : self.length, :].copy_(self._k[..., : self.length, :])
            v[..., : self.length, :].copy_(self._v[..., : self.length, :])
        self._k, self._v = k, v

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        if self.static_pos is not None:
            self._k.index_copy_(-2, self.static_pos, key_states.to(self._k.dtype))
            self._v.index_copy_(-2, self.static_pos, value_states.to(self._v.dtype))
            return self._k, self._v
        n = key_states.shape[-2]
        end = self.length + n
        self._ensure(end, key_states, value_states)
        self._k[..., self.length : end, :].copy_(key_states)
        self._v[..., self.length : end, :].copy_(value_states)
        self.length = end
        self.keys, self.values = self._k[..., :end, :], self._v[..., :end, :]
        if self.keys.dtype != key_states.dtype:  # a forward in another dtype (bf16 prefill) gets a converted copy
            return self.keys.to(key_states.dtype), self.values.to(value_states.dtype)
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length if self.is_initialized else 0

    def reserve_room(self, needed: int) -> None:
        """Make the buffer hold ``needed`` tokens without growing later (static mode writes in place)."""
        if self._k is not None:
            self._ensure(needed, self._k, self._v)

    def set_length(self, length: int) -> None:
        """The fill mark after tokens were written in static mode."""
        self.length = length
        self.keys, self.values = self._k[..., :length, :], self._v[..., :length, :]

    def crop(self, tokens_to_remove: int) -> None:
        """Negative: drop that many tokens from the end (transformers 5.x convention)."""
        if tokens_to_remove == 0 or not self.is_initialized:
            return
        self.length = max(0, self.length - abs(tokens_to_remove))
        self.keys, self.values = self._k[..., : self.length, :], self._v[..., : self.length, :]

    def reset(self) -> None:
        self.length = 0
        self._k = self._v = None
        super().reset()


class SlidingLayer(DynamicSlidingWindowLayer):
    """transformers' sliding-window layer (it keeps the last ``sliding_window - 1`` positions, so a Gemma 3 local layer
    holds 511 tokens whatever the document's length), storing in ``dtype`` like :class:`InPlaceLayer`: a bf16 prefill
    writes into the fp32 cache that decoding reads, and each forward gets the states in its own dtype."""

    def __init__(self, sliding_window: int, dtype: torch.dtype | None = None):
        super().__init__(sliding_window=sliding_window)
        self.dtype = dtype

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        want = key_states.dtype
        if self.dtype is not None:
            key_states, value_states = key_states.to(self.dtype), value_states.to(self.dtype)
        keys, values = super().update(key_states, value_states, *args, **kwargs)
        return keys.to(want), values.to(want)


def new_cache(config: Any, expected: int = 0, reserve: int = 0, dtype: torch.dtype | None = None) -> DynamicCache:
    """A DynamicCache whose layers append in place, sized for ``expected`` tokens up front (no regrowth when the
    caller knows the final length), keeping ``reserve`` tokens of room whenever it grows, stored in ``dtype``.
    Sliding-window layers keep only their window (:class:`SlidingLayer`); every other layer keeps every position."""
    cache = DynamicCache(config=config)
    layers = getattr(cache, "layers", None)
    if not layers or any(type(layer) not in (DynamicLayer, DynamicSlidingWindowLayer) for layer in layers):
        return cache  # unusual layouts (refused before loading; kept as transformers builds them)
    cache.layers = [SlidingLayer(layer.sliding_window, dtype) if isinstance(layer, DynamicSlidingWindowLayer)
                    else InPlaceLayer(expected, reserve, dtype) for layer in layers]
    return cache


def checkpoint(cache: DynamicCache) -> Callable[[], None]:
    """What ``cache`` holds now, and the function that brings it back after more tokens were appended (a question and
    its answer after a reused prefix). Full layers are cropped back to their length. A sliding layer has dropped the
    prefix's last positions by then, so its tensors are kept as they are now (transformers' sliding layer replaces
    them at every update and never writes into them: keeping the references copies nothing)."""
    saved: list[tuple] = []
    for layer in cache.layers:
        if isinstance(layer, DynamicSlidingWindowLayer):
            saved.append((layer, layer.is_initialized, getattr(layer, "keys", None), getattr(layer, "values", None),
                          layer.cumulative_length))
        else:
            saved.append((layer, layer.get_seq_length()))

    def restore() -> None:
        for entry in saved:
            layer = entry[0]
            if isinstance(layer, DynamicSlidingWindowLayer):
                _, initialized, layer.keys, layer.values, layer.cumulative_length = entry
                layer.is_initialized = initialized
            else:
                extra = layer.get_seq_length() - entry[1]
                if extra > 0:
                    layer.crop(-extra)  # negative: remove that many tokens (the form every transformers 5.x accepts)

    return restore


def sliding_state(layer: Any) -> int | None:
    """The positions a sliding layer has seen (its cumulative length), or None for a full layer."""
    return layer.cumulative_length if isinstance(layer, DynamicSlidingWindowLayer) else None


def restore_sliding(layer: Any, keys: torch.Tensor, values: torch.Tensor, seen: int) -> None:
    """Put saved states back into a sliding layer that has seen ``seen`` positions (a prefix loaded from disk)."""
    layer.lazy_initialization(keys, values)
    layer.keys, layer.values, layer.cumulative_length = keys, values, seen
