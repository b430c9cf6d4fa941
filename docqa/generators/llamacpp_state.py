"""llama.cpp's sequence state (``llama_state_seq_get_data``), read and written: so that keys and values computed
elsewhere (a bf16 prefill under transformers, :mod:`docqa.generators.prefill_assist`) can be loaded into a llama.cpp
context, which then decodes from them.

The layout, as the pinned llama.cpp writes one sequence of a unified KV cache (little-endian)::

    u64 tag | u32 streams (1) | u32 cells
    cells x (i32 pos, u32 n_seq (1), i32 seq)
    u32 v_trans | u32 layers
    layers x (i32 k_type, u64 k_row_bytes, cells x k_row)           keys, one row per position
    layers x (i32 v_type, u64 v_row_bytes, cells x v_row)           values (v_trans 0, flash attention on)
      or    (i32 v_type, u32 elem_bytes, u32 v_dim, v_dim x cells)  values transposed (v_trans 1)

Nothing here trusts that description: :func:`layout_of` parses a state llama.cpp itself wrote in the same context
(the template) and refuses anything it cannot account for byte by byte, and the caller builds states only from a
template that :func:`build_state` reproduces exactly (:func:`round_trips`). Another llama.cpp build with another
layout is therefore detected, and docqa goes back to llama.cpp's own prefill, instead of loading a garbled cache.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import ModelLoadError

F16 = 1  # ggml's type id for float16, the KV cache type docqa's llama.cpp contexts use


@dataclass(frozen=True)
class StateLayout:
    """What a sequence state of one context says besides its numbers: the tag, V's layout, the per-layer row sizes."""

    tag: int
    v_trans: bool
    layers: int
    k_dim: int  # values per key row (KV heads x head dim)
    v_dim: int


@dataclass
class SeqState:
    """One sequence's cache as arrays: ``keys[l]`` and ``values[l]`` are (positions, dim) float16."""

    layout: StateLayout
    positions: np.ndarray
    keys: list[np.ndarray]
    values: list[np.ndarray]


class _Reader:
    def __init__(self, blob: bytes):
        self.blob, self.at = blob, 0

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.at + size > len(self.blob):
            raise ModelLoadError("llama.cpp sequence state ends early: not the layout docqa reads.")
        out = struct.unpack_from(fmt, self.blob, self.at)
        self.at += size
        return out

    def array(self, count: int, dtype: str) -> np.ndarray:
        nbytes = count * np.dtype(dtype).itemsize
        if self.at + nbytes > len(self.blob):
            raise ModelLoadError("llama.cpp sequence state ends early: not the layout docqa reads.")
        out = np.frombuffer(self.blob, dtype=dtype, count=count, offset=self.at)
        self.at += nbytes
        return out


def parse_state(blob: bytes) -> SeqState:
    """The arrays in a one-sequence state llama.cpp wrote; :class:`ModelLoadError` when it is not that layout."""
    r = _Reader(blob)
    tag, streams, cells = r.take("<QII")
    if streams != 1 or cells == 0:
        raise ModelLoadError(f"llama.cpp sequence state with {streams} streams and {cells} cells: docqa reads one "
                             f"stream of at least one position.")
    meta = r.array(cells * 3, "<i4").reshape(cells, 3)
    if (meta[:, 1] != 1).any():
        raise ModelLoadError("llama.cpp sequence state with positions shared by several sequences: not one sequence.")
    v_trans, layers = r.take("<II")
    if v_trans not in (0, 1) or not 0 < layers < 4096:
        raise ModelLoadError(f"llama.cpp sequence state says v_trans={v_trans}, layers={layers}: not a layout docqa "
                             f"reads.")
    keys, values, k_dims, v_dims = [], [], set(), set()
    for _ in range(layers):
        k_type, row = r.take("<iQ")
        if k_type != F16 or row % 2:
            raise ModelLoadError(f"llama.cpp KV cache of type {k_type} (row {row} bytes): docqa writes float16 only.")
        k_dims.add(row // 2)
        keys.append(r.array(cells * (row // 2), "<f2").reshape(cells, row // 2))
    for _ in range(layers):
        if v_trans:
            v_type, elem, dim = r.take("<iII")
            if v_type != F16 or elem != 2:
                raise ModelLoadError(f"llama.cpp V cache of type {v_type}: docqa writes float16 only.")
            values.append(r.array(cells * dim, "<f2").reshape(dim, cells).T)
        else:
            v_type, row = r.take("<iQ")
            if v_type != F16 or row % 2:
                raise ModelLoadError(f"llama.cpp V cache of type {v_type}: docqa writes float16 only.")
            dim = row // 2
            values.append(r.array(cells * dim, "<f2").reshape(cells, dim))
        v_dims.add(dim)
    if r.at != len(blob) or len(k_dims) != 1 or len(v_dims) != 1:
        raise ModelLoadError(f"llama.cpp sequence state has {len(blob) - r.at} bytes docqa cannot account for, or "
                             f"layers of different widths: not a layout docqa writes.")
    layout = StateLayout(tag, bool(v_trans), layers, k_dims.pop(), v_dims.pop())
    return SeqState(layout, meta[:, 0].copy(), keys, values)


def layout_of(blob: bytes, state: SeqState | None = None) -> StateLayout:
    """The layout of a state llama.cpp wrote (``state``: ``blob`` already parsed), checked by rebuilding it: only a
    layout docqa reproduces byte for byte is one it may write."""
    state = state if state is not None else parse_state(blob)
    if not round_trips(state, blob):
        raise ModelLoadError("llama.cpp's sequence state did not round-trip through docqa's writer: another layout.")
    return state.layout


def round_trips(state: SeqState, blob: bytes) -> bool:
    built = build_state(state.layout, state.keys, state.values, state.positions)
    return bool(np.array_equal(built, np.frombuffer(blob, dtype=np.uint8)))


def build_state(layout: StateLayout, keys: Iterable[np.ndarray], values: Iterable[np.ndarray],
                positions: np.ndarray | None = None, n: int | None = None) -> np.ndarray:
    """A one-sequence state (sequence 0) holding ``keys`` / ``values`` ((positions, dim) per layer) at positions
    0..n-1 (or ``positions``), laid out as ``layout`` says, as a uint8 array.

    ``keys`` and ``values`` may be iterators (then ``n``, the positions, is given): each layer is taken when it is
    written and may be freed by its producer right after, so a handover holds the prompt's keys and values about once
    (the source cache shrinking as the state fills) instead of three times (cache, converted copy, state). The
    buffer is zero-filled lazily by the OS (``np.zeros``), so unwritten pages cost nothing."""
    keys, values = iter(keys), iter(values)
    if n is None:
        first = next(keys, None)
        if first is None:
            raise ModelLoadError(f"No layers of keys for a cache of {layout.layers}.")
        n = first.shape[0]
        keys = itertools.chain([first], keys)
    meta = np.zeros((n, 3), dtype="<i4")
    meta[:, 0] = np.arange(n) if positions is None else positions
    meta[:, 1] = 1
    v_head = struct.calcsize("<iII") if layout.v_trans else struct.calcsize("<iQ")
    size = (16 + meta.nbytes + 8 + layout.layers * (12 + 2 * n * layout.k_dim)
            + layout.layers * (v_head + 2 * n * layout.v_dim))
    # Written in place into one buffer: a 30 k-token state of the 1.5 B is 860 MB, and joining parts held it twice.
    out = np.zeros(size, dtype=np.uint8)
    at = 0

    def put(data: bytes | np.ndarray) -> None:
        nonlocal at
        raw = np.frombuffer(memoryview(data).cast("B") if isinstance(data, np.ndarray) else data, dtype=np.uint8)
        out[at:at + len(raw)] = raw
        at += len(raw)

    def rows(arrays: Iterator[np.ndarray], dim: int, what: str) -> Iterator[np.ndarray]:
        count = 0
        for a in arrays:
            count += 1
            if count > layout.layers or a.shape != (n, dim):
                raise ModelLoadError(f"Layer {count} of {what} has shape {a.shape} for a cache of {layout.layers} "
                                     f"layers of ({n}, {dim}).")
            yield a
        if count != layout.layers:
            raise ModelLoadError(f"{count} layers of {what} for a cache of {layout.layers}.")

    put(struct.pack("<QII", layout.tag, 1, n))
    put(meta)
    put(struct.pack("<II", int(layout.v_trans), layout.layers))
    for k in rows(keys, layout.k_dim, "keys"):
        put(struct.pack("<iQ", F16, layout.k_dim * 2))
        put(np.ascontiguousarray(k, dtype="<f2"))
        del k
    for v in rows(values, layout.v_dim, "values"):
        if layout.v_trans:
            put(struct.pack("<iII", F16, 2, layout.v_dim))
            put(np.ascontiguousarray(v.T, dtype="<f2"))
        else:
            put(struct.pack("<iQ", F16, layout.v_dim * 2))
            put(np.ascontiguousarray(v, dtype="<f2"))
        del v
    assert at == size
    return out
