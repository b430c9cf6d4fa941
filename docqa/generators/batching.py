"""Continuous batching for the in-process backend: many prompts, ``slots`` of them decoding at once.

Each prompt is prefilled alone, exactly as :meth:`TransformersGenerator.generate` prefills it (same chunks, same
dtype), and its KV cache is written into a free row (a *slot*) of one batch cache, right-aligned at the current
column; every step then decodes one token for every live slot in one forward. When a slot's answer ends (end of
sequence, a stop string, the token budget), the next waiting prompt takes it at once, so the batch stays full until
the queue is empty instead of waiting for its longest answer.

Why the answers equal one-at-a-time answers: a slot attends only to its own columns (the attention mask), its
positions restart at its first token, and its first token comes from its own prefill. Why prefill is not batched: it
does the same arithmetic batched or not (measured no faster on CPU, where padding adds to it), and bf16 kernels given
other shapes round differently (3 of 39 greedy answers changed); decoding is where a batch pays, because a step reads
every weight once whatever the number of rows.

The batch cache is as wide as the longest prompt plus one column per step; columns a slot does not own are masked
(their values are kept finite: a slot is zeroed when a new prompt takes it, and a free slot attends to itself).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from . import decoding
from .base import Floor, Generation, banned_next, cut_at_stop, hits_stop

if TYPE_CHECKING:
    from ..rope import RopePlan
    from .base import TorchBackend


def generate_continuous(gen: TorchBackend, rows: list[list[int]], max_new_tokens: int, plan: RopePlan,
                        stop: tuple[str, ...], slots: int, score: str | None = None,
                        floors: list[Floor | None] | None = None) -> list[Generation]:
    """Greedy answers to ``rows`` (token ids), ``slots`` decoding at a time; in the order of ``rows``; row i's
    answer does not end before ``floors[i]`` lets it."""
    import torch

    from ..kv_cache import new_cache

    n_slots = max(1, min(slots, len(rows)))
    width = max(len(r) for r in rows)  # every prompt fits right-aligned at any later column
    dev = gen.device
    results: list[Generation | None] = [None] * len(rows)
    with gen._lock, torch.inference_mode(), gen._oom_guard(n_slots * (width + max_new_tokens)):
        gen._apply_rope(plan)
        t_start = time.perf_counter()
        cache = new_cache(gen.model.config, expected=width + 4 * max_new_tokens, reserve=4 * max_new_tokens,
                          dtype=gen.model.dtype)
        mask = torch.zeros((n_slots, width), dtype=torch.long, device=dev)
        pos = torch.zeros((n_slots, 1), dtype=torch.long, device=dev)
        nxt = torch.zeros(n_slots, dtype=torch.long, device=dev)
        owner: list[int | None] = [None] * n_slots
        outs: dict[int, list[int]] = {}
        info: dict[int, dict] = {}
        queue = list(range(len(rows)))
        initialized = False

        def admit(slot: int, i: int) -> None:
            """Prefill row i alone and seat it in ``slot``, right-aligned at the current last column."""
            nonlocal initialized
            t0 = time.perf_counter()
            row_cache = new_cache(gen.model.config, expected=len(rows[i]), dtype=gen.model.dtype)
            logits = gen._prefill(rows[i], row_cache, None)
            score_lp = decoding.score_after(gen, row_cache, logits, score) if score else None
            cols = mask.shape[1]
            if not initialized:  # the batch cache takes its head counts and dims from the first prefilled row
                for layer, src in zip(cache.layers, row_cache.layers, strict=True):
                    k = src.keys.new_zeros((n_slots, src.keys.shape[1], cols, src.keys.shape[-1]))
                    layer.update(k, torch.zeros_like(k))
                initialized = True
            n = len(rows[i])
            for layer, src in zip(cache.layers, row_cache.layers, strict=True):
                layer.keys[slot].zero_()
                layer.values[slot].zero_()
                layer.keys[slot, :, cols - n:] = src.keys[0]
                layer.values[slot, :, cols - n:] = src.values[0]
                src.reset()
            mask[slot] = 0
            mask[slot, cols - n:] = 1
            pos[slot, 0] = n
            floor = floors[i] if floors else None
            if floor is not None and floor.binds(""):  # the answer is empty: only a floor bans anything yet
                logits = logits.clone()
                logits[gen.ending_ids()] = float("-inf")
            nxt[slot] = int(torch.argmax(logits))
            owner[slot] = i
            outs[i] = []
            prefill_s = time.perf_counter() - t0
            info[i] = {"prefill_s": prefill_s, "start": t0, "ttft": t0 - t_start + prefill_s, "score": score_lp}

        def finish(slot: int, reason: str) -> None:
            i = owner[slot]
            text = cut_at_stop(gen.decode(outs[i]), stop)
            done_at = time.perf_counter()
            results[i] = Generation(text=text, prompt_tokens=len(rows[i]), completion_tokens=len(outs[i]),
                                    prefill_s=info[i]["prefill_s"],
                                    decode_s=done_at - info[i]["start"] - info[i]["prefill_s"],
                                    ttft_s=info[i]["ttft"], finish_reason=reason, rope=plan,
                                    score_logprob=info[i]["score"])
            owner[slot] = None

        def take(slot: int) -> None:
            """Consume the slot's pending token (from its prefill or the last step): the answer ends or grows."""
            i = owner[slot]
            tok = int(nxt[slot])
            if tok in gen.eos_ids:
                finish(slot, "eos")
                return
            outs[i].append(tok)
            if stop and hits_stop(gen.decode(outs[i]), stop):
                finish(slot, "stop")
            elif len(outs[i]) >= max_new_tokens:
                finish(slot, "length")

        while True:
            # Take every live slot's token; seat waiting prompts in free slots (a first token can end an answer at
            # once, so seating repeats until the slot stays taken or the queue is empty).
            for slot in range(n_slots):
                if owner[slot] is not None:
                    take(slot)
                while owner[slot] is None and queue:
                    admit(slot, queue.pop(0))
                    take(slot)
            if all(o is None for o in owner):
                break
            live = torch.tensor([o is not None for o in owner], device=dev)
            # One new column: live slots attend to it; a free slot attends only to it (finite, ignored).
            col = torch.ones((n_slots, 1), dtype=torch.long, device=dev)
            mask = torch.cat([torch.where(live[:, None], mask, torch.zeros_like(mask)), col], dim=1)
            logits = gen.model(input_ids=nxt[:, None], attention_mask=mask, position_ids=pos, use_cache=True,
                               **{gen._cache_kw: cache}).logits[:, -1]
            pos = pos + 1
            for slot, i in enumerate(owner):  # repetition control and floors, per answer, as generate() applies them
                ban = banned_next(outs[i], gen.config.no_repeat_ngram) if i is not None else []
                floor = floors[i] if floors and i is not None else None
                if floor is not None and floor.binds(gen.decode(outs[i])):
                    ban = [*ban, *gen.ending_ids()]
                if ban:
                    logits[slot, ban] = float("-inf")
            nxt = torch.argmax(logits, dim=-1)
    return [g for g in results if g is not None]
