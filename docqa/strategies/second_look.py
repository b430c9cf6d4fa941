"""A second look: when a strategy's answer declines, answer again with long-context, reading the whole corpus.

Self-Route (auto) does it after rag's answer, summarize after its chain's. Both keep the first answer in the
details, so one run's records show what the second look changed (``rag_answer``, ``chain_answer``).

Why summarize too (benchmarks/RESULTS.md, "summarize's second look"): with the 1.5 B reader, summarize's chain
found nothing on 25 of scientific QA's 160 questions and 5 of financial QA's 52, and answered "I don't know."; with
the second look each whole set scored +1.1 [+0.4, +1.9] and +1.0 [−0.0, +2.5] F1 (paired, one run each, one loss on
each), at 8–17 % more time a question, all of it on the declined questions.
"""

from __future__ import annotations

import dataclasses
import time

from ..corpus import Corpus
from ..errors import ContextTooLong
from ..records import Answer
from . import long_context
from .base import AskConfig


def read_whole(corpus: Corpus, question: str, cfg: AskConfig, *, limit: int | None = None,
               best_first: bool = False) -> tuple[Answer | None, str]:
    """Long-context's answer to ``question`` and the route taken: ("long-context"), or None and why it was skipped.

    ``limit`` None is long-context's own (the window stretched up to ``--max-context``); a number of tokens keeps the
    whole prompt within it, unstretched. Summarize passes its window: a corpus that fits one summary window cost its
    map call one prefill of the same size, so the second look costs about as much again; a larger corpus (or a
    smaller ``--summary-window``, as the demo sets to bound its time) would make the second look a cold prefill of
    everything, which is what the user avoided by choosing summarize. Documents are never dropped to make room: a
    second look reads everything or nothing. ``best_first`` (auto's whole-document questions) keeps instead the
    documents retrieval ranks first that fit ``limit`` (``--truncate``): there the question's own document is what
    it asks about, and reading every document of a large corpus is what it could not afford."""
    if limit is not None:
        cfg = dataclasses.replace(cfg, max_context=min(cfg.max_context or limit, limit), truncate=best_first)
    try:
        return long_context.ask(corpus, question, cfg), "long-context"
    except ContextTooLong as e:
        return None, f"long-context skipped: {e.tokens:,} tokens > {e.limit:,}"


def joined(first: Answer, final: Answer | None, step: str, t0: float) -> tuple[dict, dict, int]:
    """Timings, tokens and calls of a first answer and, when there was one, the second look's: timings of the first
    prefixed ``{step}_`` (as they are where ``step`` is empty) and of the second ``lc_``; the time to the first token
    of the final answer counts the whole first answer before it."""
    timings = {f"{step}_{k}" if step else k: v for k, v in first.timings.items()}
    tokens, calls = dict(first.tokens), first.calls
    if final is not None:
        timings.update({f"lc_{k}": v for k, v in final.timings.items()})
        tokens = {k: first.tokens.get(k, 0) + final.tokens.get(k, 0) for k in set(first.tokens) | set(final.tokens)}
        calls += final.calls
    timings["ttft"] = (first.timings.get("total", 0.0) + final.timings.get("ttft", 0.0) if final is not None
                       else first.timings.get("ttft", 0.0))
    timings["total"] = time.perf_counter() - t0
    return timings, tokens, calls
