"""Memory for kept KV caches, in bytes computed from the model: layers × 2 × KV heads × head dim × dtype size a token.

The long-context document prefix and summarize's group prefixes are kept between questions so a later question pays
only its own tokens. How many fit is a question of bytes, not tokens: SmolLM2-135M holds 46 kB a token in fp32
(a 32 k-token prefix is 1.5 GB), Llama-3.1-8B 128 kB in bf16 (a 128 k-token prefix is 16 GB). One :class:`KVPool` per
corpus holds them all, least recently used first out, within a budget that ``--kv-budget`` sets (``4GiB``, ``512MB``,
bytes) or that defaults to a share of the memory free where the cache lives: a quarter of the host's available memory
on CPU, half the free memory of the model's GPU on CUDA, measured when the pool is created.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any

from .environment import available_memory
from .errors import ConfigError

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
          "t": 1000**4, "tb": 1000**4, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(value: str | int | float, option: str = "--kv-budget") -> int:
    """``4GiB``, ``512MB``, ``1.5g`` or a number of bytes → bytes (a bad value is an error naming ``option``)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        n = int(value)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(value))
        if not m or m.group(2).lower() not in _UNITS:
            raise ConfigError(f"{option} '{value}' is not a size. Use e.g. 4GiB, 512MB or a number of bytes.")
        n = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if n < 0:
        raise ConfigError(f"{option} must not be negative, got {value}.")
    return n


def default_budget(device: str) -> int:
    """A quarter of the host's available memory (CPU), or half the free memory of ``device`` (CUDA)."""
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return free // 2
    return available_memory(unknown=16 * 2**30) // 4  # 4 GiB where the OS cannot say


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class KVPool:
    """Kept KV caches of one corpus, keyed by their owners, evicted least recently used first past ``budget`` bytes.

    An entry larger than the whole budget is not kept (its question still gets its answer; the next one pays the
    prefill again)."""

    def __init__(self, budget: int):
        self.budget = budget
        self._items: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self.used = 0

    def get(self, key: Any) -> Any | None:
        if key not in self._items:
            return None
        self._items.move_to_end(key)
        return self._items[key][0]

    def __contains__(self, key: Any) -> bool:
        """Whether ``key`` is kept (without making it the most recently used)."""
        return key in self._items

    def fits(self, nbytes: int) -> bool:
        return nbytes <= self.budget

    def put(self, key: Any, value: Any, nbytes: int, evict: bool = True) -> bool:
        """Keep ``value``; with ``evict``, older entries leave to make room, else it is kept only if it fits as is.
        Returns whether it was kept."""
        if key in self._items:
            self.used -= self._items.pop(key)[1]
        if nbytes > self.budget or (not evict and self.used + nbytes > self.budget):
            return False
        while self.used + nbytes > self.budget and self._items:
            self.used -= self._items.popitem(last=False)[1][1]
        self._items[key] = (value, nbytes)
        self.used += nbytes
        return True

    def discard(self, predicate) -> None:
        """Drop every entry whose key satisfies ``predicate`` (a stale index version)."""
        for key in [k for k in self._items if predicate(k)]:
            self.used -= self._items.pop(key)[1]

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> list:
        return list(self._items)
