"""CUDA-graph decoding: a greedy answer's decode steps replayed as one captured graph each.

Why (benchmarks/RESULTS.md, "GPU"): on an H200, an 8 B model decoded 13.4 tokens/s in eager PyTorch, 4.5 % of the
HBM-bandwidth bound, at a 1 k- and at a 32 k-token context alike, and transformers' own ``generate`` 14.5/s: a step's
~1 300 small kernels are launched one by one from Python, and launching them took ~75 ms where the GPU's work is ~4 ms.
A captured graph launches them all with one call.

How: a graph replays fixed kernels on fixed addresses, so the step reads and writes static buffers only — the token
id, its position (a one-element device tensor that the step itself advances), a boolean mask over the cache's whole
capacity (4-D, which transformers passes to attention unchanged), and the cache's preallocated storage, which
:class:`~docqa.kv_cache.InPlaceLayer` in static mode writes at the device-held position. The room past the prompt is
zeroed first: a masked position's probability is 0, but 0 × NaN from uninitialised memory would still be NaN.

One capture per answer (two eager warm-up steps and the capture, ~3 eager steps of time): answers of fewer than
:data:`MIN_TOKENS` tokens stay eager. Anything the capture cannot take (another backend's cache layout, a model spread
over several GPUs, an operation that synchronises) falls back to eager steps with one warning per generator.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from .base import TorchBackend

log = logging.getLogger(__name__)
MIN_TOKENS = 8  # below this the capture (~3 eager steps) costs more than it saves


class StaticStep:
    """Decode steps of one sequence over ``cache`` from position ``start``, on static buffers; with ``capture``
    (CUDA) each step is one graph replay, else the same static-buffer step runs eagerly (how CPU tests check it)."""

    def __init__(self, gen: TorchBackend, cache, start: int, max_steps: int, capture: bool):
        import torch

        self.gen, self.cache, self.start = gen, cache, start
        layers = cache.layers
        for layer in layers:
            layer.reserve_room(start + max_steps + 1)
        self.capacity = layers[0]._k.shape[-2]
        dev = layers[0]._k.device
        for layer in layers:
            layer._k[..., start:, :].zero_()
            layer._v[..., start:, :].zero_()
        self.ids = torch.zeros((1, 1), dtype=torch.long, device=dev)
        self.pos = torch.full((1,), start, dtype=torch.long, device=dev)
        self.mask = torch.zeros((1, 1, 1, self.capacity), dtype=torch.bool, device=dev)
        self.mask[..., :start] = True
        self.steps = 0
        for layer in layers:
            layer.static_pos = self.pos
        self.graph = None
        self.logits: torch.Tensor | None = None
        if capture:
            self._capture()

    def _run(self):
        """One step on the static buffers: the new position becomes visible, the model writes its keys and values
        there, the position advances."""
        self.mask.index_fill_(-1, self.pos, True)
        out = self.gen.model(input_ids=self.ids, position_ids=self.pos.view(1, 1), attention_mask=self.mask,
                             use_cache=True, **{self.gen._cache_kw: self.cache})
        self.pos.add_(1)
        return out.logits[0, -1]

    def _capture(self) -> None:
        import torch

        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up off the main stream, as CUDA graph capture asks
            for _ in range(2):
                self._run()
        torch.cuda.current_stream().wait_stream(side)
        self._rewind()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.logits = self._run()
        self._rewind()  # capturing ran nothing, but keeps the buffers as they were: rewinding is harmless
        self.graph = graph

    def _rewind(self) -> None:
        """Back to ``start`` after warm-up steps: their keys and values sit in room the mask hides again."""
        self.pos.fill_(self.start)
        self.mask[..., self.start:] = False

    def __call__(self, token: int) -> torch.Tensor:
        """The logits after ``token``, which is written at the next position."""
        self.ids.fill_(token)
        self.steps += 1
        if self.graph is not None:
            self.graph.replay()
            return self.logits
        return self._run()

    def close(self) -> None:
        """Static mode off; the layers' fill marks cover the tokens the steps wrote."""
        for layer in self.cache.layers:
            layer.static_pos = None
            layer.set_length(self.start + self.steps)
        self.graph = None


def _on_cuda(gen: TorchBackend) -> bool:
    return str(gen.device).startswith("cuda")


def static_step(gen: TorchBackend, cache, max_new_tokens: int) -> StaticStep | None:
    """A captured decode step for this answer where it applies (CUDA, docqa's in-place cache, one device), else None
    (eager steps)."""
    import torch

    from ..kv_cache import InPlaceLayer

    if not gen.config.cuda_graphs or getattr(gen, "_graphs_failed", False) or max_new_tokens < MIN_TOKENS \
            or not _on_cuda(gen):
        return None
    layers = getattr(cache, "layers", None)
    if not layers or not all(isinstance(layer, InPlaceLayer) and layer._k is not None for layer in layers):
        return None  # sliding-window and other layouts keep transformers' own layers
    if len({p.device for p in gen.model.parameters()}) > 1 or layers[0]._k.dtype != gen.model.dtype:
        return None
    start = layers[0].length
    step = None
    try:
        step = StaticStep(gen, cache, start, max_new_tokens, capture=True)
        return step
    except Exception as e:  # noqa: BLE001 - any capture failure: eager steps, as before
        if step is not None:
            step.close()
        else:
            for layer in layers:
                layer.static_pos = None
                layer.set_length(start)
        log.warning("CUDA graph capture failed (%s); this model decodes step by step from now on.",
                    " ".join(str(e).split())[:200])
        gen._graphs_failed = True  # once: a capture that failed will fail again
        with contextlib.suppress(Exception):  # let pending work finish; a broken context will say so on the next call
            torch.cuda.synchronize()
        return None
