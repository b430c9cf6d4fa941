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

from .paths import replaced_atomically
from .rope import RopeModel, RopePlan

# Bytes of saved prefixes one index version keeps on disk ($DOCQA_PREFIX_DISK_BUDGET: 4GiB, 512MB, 0 to save none).
# A prefix of the 1.5 B reader is 28.7 kB a token as llama.cpp stores it: 155 MB for a 5 k-token corpus, 860 MB at
# 30 k; 2 GiB keeps a few such corpora's prefixes (answer styles and rope plans each have their own). The least
# recently used leave first.
DISK_BUDGET = 2 * 2**30
# Free disk a save must leave beyond the prefix itself: a cache never fills the user's disk.
DISK_HEADROOM = 1 * 2**30


def disk_budget() -> int:
    from .kv_budget import parse_bytes

    value = os.environ.get("DOCQA_PREFIX_DISK_BUDGET", "").strip()
    return parse_bytes(value, "DOCQA_PREFIX_DISK_BUDGET") if value else DISK_BUDGET


def room_for(folder: Path, nbytes: int) -> str | None:
    """Why a prefix of about ``nbytes`` is not saved under ``folder`` (None: it may be): no disk budget at all, or
    less free disk than it and :data:`DISK_HEADROOM`. (Over the budget is found by :func:`prune`, from the file.)"""
    import shutil

    if disk_budget() == 0:
        return "DOCQA_PREFIX_DISK_BUDGET is 0"
    probe = folder if folder.exists() else folder.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return None
    if free < nbytes + DISK_HEADROOM:
        return f"{free / 2**30:.1f} GiB free on disk"
    return None


def saved(folder: Path) -> list[Path]:
    """The saved prefixes in ``folder`` (none where it does not exist; temp files of a write in progress left out)."""
    try:
        return [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    except OSError:
        return []


def prune(folder: Path, keep: Path | None = None) -> list[Path]:
    """Remove the least recently used saved prefixes under ``folder`` (by modification time: a load touches its
    file) until they fit :func:`disk_budget`; ``keep`` (the one just saved) goes last, and only when it alone is
    over the budget. Returns what was removed."""
    budget = disk_budget()
    try:
        sized = sorted(((st.st_mtime, st.st_size, p) for p in saved(folder) for st in (p.stat(),)),
                       key=lambda t: (t[2] == keep, t[0]))
    except OSError:
        return []
    total = sum(size for _, size, _ in sized)
    removed = []
    for _, size, p in sized:
        if total <= budget:
            break
        with contextlib.suppress(OSError):
            p.unlink()
            removed.append(p)
            total -= size
    return removed


def touch(path: Path) -> None:
    """Mark a saved prefix as just used (it leaves the disk last)."""
    with contextlib.suppress(OSError):
        os.utime(path)


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
    with replaced_atomically(path) as tmp:
        save_file(tensors, str(tmp), metadata={**meta, **({"sliding": json.dumps(sliding)} if sliding else {})})


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
