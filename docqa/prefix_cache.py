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

from .rope import RopeModel, RopePlan, inv_freq_for


def _rotation(plan: RopePlan, rope_model: RopeModel) -> list:
    inv, attention = inv_freq_for(plan, rope_model)
    return [[float(x) for x in inv.tolist()], float(attention)]


def prefix_key(model_spec: str, plan: RopePlan, ids: list[int], rope_model: RopeModel | None = None) -> str:
    """The name of a prefilled prefix. With ``rope_model``, the plan enters by what it computes (its frequencies and
    attention factor), not by its record: plans sized for different lengths rotate alike within the trained window,
    and a prefix filled under one serves them all. (An eval asks each L-Eval question for an answer of its own
    length, so its plans differ in ``seq_len`` only; keyed by the record, every such question prefilled again.)"""
    h = hashlib.sha256()
    rotation = _rotation(plan, rope_model) if rope_model is not None else asdict(plan)
    h.update(json.dumps([model_spec, rotation], sort_keys=True).encode())
    h.update(",".join(map(str, ids)).encode())
    return h.hexdigest()[:24]


def save(path: Path, cache: Any, meta: dict[str, str]) -> None:
    """Write every layer's keys and values of a transformers DynamicCache to ``path`` atomically."""
    from safetensors.torch import save_file

    tensors = {}
    for i, layer in enumerate(cache.layers):
        tensors[f"k{i}"] = layer.keys.contiguous()
        tensors[f"v{i}"] = layer.values.contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)


def load(path: Path, config: Any, device: str, reserve: int = 512) -> tuple[Any, dict[str, str]] | None:
    """A DynamicCache rebuilt from ``path``, with its metadata; None when there is no such file, or when the file is
    damaged or does not fit the model (it is a cache: it is removed and rebuilt, never trusted)."""
    if not path.is_file():
        return None
    from safetensors import safe_open
    from transformers import DynamicCache

    try:
        with safe_open(str(path), framework="pt", device=device) as f:
            meta = f.metadata() or {}
            n = sum(1 for k in f.keys() if k.startswith("k"))
            data = [(f.get_tensor(f"k{i}"), f.get_tensor(f"v{i}")) for i in range(n)]
        layers = getattr(config, "num_hidden_layers", n)
        if n != layers or any(k.shape != v.shape or k.dim() != 4 or k.shape[2] != data[0][0].shape[2]
                              for k, v in data):
            raise ValueError(f"{n} layers of mismatched shapes for a {layers}-layer model")
    except Exception:  # noqa: BLE001 - safetensors raises its own error types for damaged files
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    from .kv_cache import InPlaceLayer, new_cache

    cache = new_cache(config, expected=data[0][0].shape[2] + reserve, reserve=reserve, dtype=data[0][0].dtype)
    if not isinstance(cache.layers[0], InPlaceLayer):
        return DynamicCache(ddp_cache_data=data, config=config), meta
    for layer, (k, v) in zip(cache.layers, data, strict=True):  # in-place layers: answering never regrows them
        layer.update(k, v)
    return cache, meta
