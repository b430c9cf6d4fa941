"""The in-process backend's forwards after a prefill: the greedy loop of one answer, the probability of a given
answer, and the log-probabilities of a text's tail (perplexity).

They live apart from :class:`~docqa.generators.hf.TransformersGenerator` (loading, dtypes, attention, rope, caches)
as the continuous batching loop does (:mod:`docqa.generators.batching`): each takes the generator, whose lock, rope
plan and memory guard the caller holds (``tail_logprobs`` takes them itself: it is a whole request).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..errors import ConfigError
from .base import Floor, ProgressFn, banned_next, ends_answer
from .streaming import AnswerStream

if TYPE_CHECKING:
    import torch

    from ..rope import RopePlan
    from .base import TorchBackend


def greedy(gen: TorchBackend, logits: torch.Tensor, cache, max_new_tokens: int, stop: tuple[str, ...],
           prefill_s: float, shown: AnswerStream | None = None,
           floor: Floor | None = None) -> tuple[list[int], str, float, float]:
    """Greedy decoding from ``logits`` (the distribution of the first answer token) with ``cache`` holding the
    prompt, until an end-of-sequence token, a ``stop`` string or ``max_new_tokens``, not before ``floor`` lets it end;
    n-grams the generator's ``no_repeat_ngram`` forbids are never produced; ``shown`` sees the answer grow
    (:mod:`.streaming`). Returns
    (answer ids, finish reason, time to first token counting ``prefill_s``, decode seconds). On CUDA the steps after
    the first token replay a captured graph (:mod:`.cuda_graphs`), captured once the first token is out, so it does
    not delay it."""
    import torch

    from .cuda_graphs import static_step

    out: list[int] = []
    finish, ttft = "length", 0.0
    graph, captured = None, False
    shown = shown or AnswerStream(None, stop)
    t1 = time.perf_counter()
    try:
        for step in range(max_new_tokens):
            ban = banned_next(out, gen.config.no_repeat_ngram)
            if floor is not None and floor.binds(gen.decode(out)):
                ban = [*ban, *gen.ending_ids()]
            if ban:
                logits = logits.clone()
                logits[ban] = float("-inf")
            nxt = int(torch.argmax(logits))
            if step == 0:
                ttft = prefill_s + (time.perf_counter() - t1)
            if nxt in gen.eos_ids:
                finish = "eos"
                break
            out.append(nxt)
            if shown.ends(lambda: gen.decode(out)):
                finish = "stop"
                break
            if step + 1 == max_new_tokens:
                break
            if not captured:  # None where it does not apply (CPU, other cache layouts): eager steps
                graph, captured = static_step(gen, cache, max_new_tokens - step - 1), True
            if graph is not None:
                logits = graph(nxt)
                continue
            step_in = torch.tensor([[nxt]], device=gen.device)
            logits = gen.model(input_ids=step_in, use_cache=True, **{gen._cache_kw: cache}).logits[0, -1]
    finally:
        if graph is not None:
            graph.close()
    return out, finish, ttft, time.perf_counter() - t1


def ending_ids(tokenizer, eos_ids: set[int]) -> list[int]:
    """What a :class:`~.base.Floor` bans for a transformers tokenizer: its end-of-sequence and special tokens and every
    token whose text holds a line break (one batch decode of the vocabulary, ~1 s for 152 k tokens)."""
    pieces = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    special = set(tokenizer.all_special_ids)
    return sorted({*eos_ids, *special, *(i for i, p in enumerate(pieces) if ends_answer(p))})


def score_after(gen: TorchBackend, cache, first_logits: torch.Tensor, text: str) -> float:
    """log P(``text`` | what ``cache`` holds), whose first token's distribution is ``first_logits``; the cache is
    cropped back afterwards. One forward of len(text) − 1 tokens, logits for those positions only."""
    import torch

    from ..kv_cache import checkpoint

    ids = gen.encode(text)
    lp = float(torch.log_softmax(first_logits.float(), -1)[ids[0]])
    if len(ids) > 1:
        restore = checkpoint(cache)
        t = torch.tensor([ids[:-1]], device=gen.device)
        logits = gen.model(input_ids=t, use_cache=True, **{gen._cache_kw: cache}).logits[0].float()
        lp += float(torch.log_softmax(logits, -1).gather(1, torch.tensor(ids[1:], device=logits.device)[:, None])
                    .sum())
        restore()
    return lp


def tail_logprobs(gen: TorchBackend, ids: list[int], plan: RopePlan, tail: int,
                  progress: ProgressFn | None = None) -> torch.Tensor:
    """Log-probabilities of the last ``tail`` tokens of ``ids``, each given everything before it (perplexity).

    The head is prefilled in chunks through the decoder body only; LM-head logits are computed for the tail
    alone, so the (length × vocabulary) matrix never exists.
    """
    import torch

    from ..kv_cache import new_cache

    if not 0 < tail < len(ids):
        raise ConfigError(f"tail must be in 1..{len(ids) - 1}, got {tail}")
    with gen._lock, torch.inference_mode(), gen._oom_guard(len(ids)):
        gen._apply_rope(plan)
        cache = new_cache(gen.model.config, expected=len(ids), dtype=gen.model.dtype)
        t = torch.tensor([ids], device=gen.device)
        head = len(ids) - tail - 1  # positions whose next token is not scored
        step = gen.prefill_step(len(ids))
        for start in range(0, head, step):
            end = min(start + step, head)
            gen._runner(end - start)[1](input_ids=t[:, start:end], use_cache=True, **{gen._cache_kw: cache})
            if progress:
                progress(end, len(ids))
        out = []
        for start in range(head, len(ids) - 1, step):
            end = min(start + step, len(ids) - 1)
            model = gen._runner(end - start)[0]
            logits = model(input_ids=t[:, start:end], use_cache=True, **{gen._cache_kw: cache}).logits
            logp = torch.log_softmax(logits[0].float(), -1)
            out.append(logp.gather(1, t[0, start + 1 : end + 1, None])[:, 0])
            if progress:
                progress(end + 1, len(ids))
        return torch.cat(out)
