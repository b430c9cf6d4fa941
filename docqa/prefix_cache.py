"""Persisting a prefilled KV cache (the long-context document prefix) as safetensors under its index version.

A saved prefix lives in ``indexes/NAME/vNNNNNN/prefix/<key>.safetensors``: it belongs to one index version, so any
change to the index (a new version folder) invalidates it without bookkeeping. The key hashes everything that makes
two prefixes differ: the prefix tokens, the model, and the rope plan. Writes are atomic (temp file + ``os.replace``).
safetensors stores only tensors and a string→string header: loading it never executes code, unlike torch.save.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .rope import RopeModel, RopePlan


def prefix_key(model_spec: str, plan: RopePlan, ids: list[int], rope_model: RopeModel | None = None) -> str:
    """The name of a prefilled prefix. With ``rope_model``, the plan enters by what it computes (its frequencies and
    attention factor), not by its record: plans sized for different lengths rotate alike within the trained window,
    and a prefix filled under one serves them all. (An eval asks each L-Eval question for an answer of its own
    length, so its plans differ in ``seq_len`` only; keyed by the record, every such question prefilled again.)"""
    h = hashlib.sha256()
    rotation = rope_model.rotation(plan) if rope_model is not None else asdict(plan)
    h.update(json.dumps([model_spec, rotation], sort_keys=True).encode())
    h.update(",".join(map(str, ids)).encode())
    return h.hexdigest()[:24]


def save(path: Path, cache: Any, meta: dict[str, str]) -> None:
    """Write every layer's keys and values of a transformers DynamicCache to ``path`` atomically. A sliding-window
    layer's entry holds its window only; the positions it has seen go in the header (``sliding``)."""
    from safetensors.torch import save_file

    from .kv_cache import sliding_state

    tensors, sliding = {}, {}
    for i, layer in enumerate(cache.layers):
        tensors[f"k{i}"] = layer.keys.contiguous()
        tensors[f"v{i}"] = layer.values.contiguous()
        seen = sliding_state(layer)
        if seen is not None:
            sliding[str(i)] = seen
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    save_file(tensors, str(tmp), metadata={**meta, **({"sliding": json.dumps(sliding)} if sliding else {})})
    os.replace(tmp, path)


def load(path: Path, config: Any, device: str, reserve: int = 512) -> tuple[Any, dict[str, str]] | None:
    """A DynamicCache rebuilt from ``path``, with its metadata; None when there is no such file, or when the file is
    damaged or does not fit the model (it is a cache: it is removed and rebuilt, never trusted)."""
    if not path.is_file():
        return None
    from safetensors import safe_open

    from .kv_cache import SlidingLayer, new_cache, restore_sliding

    try:
        with safe_open(str(path), framework="pt", device=device) as f:
            meta = f.metadata() or {}
            n = sum(1 for k in f.keys() if k.startswith("k"))
            data = [(f.get_tensor(f"k{i}"), f.get_tensor(f"v{i}")) for i in range(n)]
        sliding = {int(k): int(v) for k, v in json.loads(meta.get("sliding", "{}")).items()}
        layers = getattr(config, "num_hidden_layers", n)
        full = [i for i in range(n) if i not in sliding]
        tokens = data[full[0]][0].shape[2] if full else max(sliding.values(), default=0)
        if n != layers or any(k.shape != v.shape or k.dim() != 4 for k, v in data) \
                or any(data[i][0].shape[2] != tokens for i in full):
            raise ValueError(f"{n} layers of mismatched shapes for a {layers}-layer model")
        cache = new_cache(config, expected=tokens + reserve, reserve=reserve, dtype=data[0][0].dtype)
        kinds = [i for i, layer in enumerate(cache.layers) if isinstance(layer, SlidingLayer)]
        if len(cache.layers) != n or kinds != sorted(sliding) or any(
                sliding[i] != tokens or data[i][0].shape[2] != min(tokens, cache.layers[i].sliding_window - 1)
                for i in kinds):
            raise ValueError("the file's layer kinds or windows are not this model's")
    except Exception:  # noqa: BLE001 - safetensors raises its own error types for damaged files
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    for i, (layer, (k, v)) in enumerate(zip(cache.layers, data, strict=True)):
        if isinstance(layer, SlidingLayer):
            restore_sliding(layer, k, v, sliding[i])
        else:  # in-place layers (or transformers' own): answering never regrows them
            layer.update(k, v)
    return cache, meta
