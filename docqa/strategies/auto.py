"""Auto: Self-Route (Li et al. 2024, "Retrieval Augmented Generation or Long-Context LLMs?")."""

from __future__ import annotations

import time

from ..corpus import Corpus
from ..errors import ContextTooLong
from ..prompts import is_refusal
from ..records import Answer
from . import long_context, rag
from .base import AskConfig


def ask(corpus: Corpus, question: str, cfg: AskConfig) -> Answer:
    """Auto (Self-Route): answer with RAG, whose prompt lets the model decline when the retrieved passages do not
    hold the answer; only when it declines, answer again with long-context. Most questions cost one cheap RAG call;
    the hard ones get the whole corpus. When the corpus does not fit the long-context limit, the RAG answer stands."""
    t0 = time.perf_counter()
    first = rag.ask(corpus, question, cfg)
    route, final = "rag", first
    if is_refusal(first.text):
        try:
            final = long_context.ask(corpus, question, cfg)
            route = "long-context"
        except ContextTooLong as e:
            route = f"rag (long-context skipped: {e.tokens:,} tokens > {e.limit:,})"
    timings = {f"rag_{k}": v for k, v in first.timings.items()}
    if final is not first:
        timings.update({f"lc_{k}": v for k, v in final.timings.items()})
    # Routed: the first token of the final answer comes after the whole RAG answer.
    timings["ttft"] = (first.timings["total"] + final.timings.get("ttft", 0.0) if final is not first
                       else first.timings.get("ttft", 0.0))
    timings["total"] = time.perf_counter() - t0
    tokens = dict(first.tokens)
    if final is not first:
        tokens = {k: first.tokens.get(k, 0) + final.tokens.get(k, 0) for k in set(first.tokens) | set(final.tokens)}
    return Answer(
        text=final.text,
        strategy="auto",
        sources=final.sources,
        timings=timings,
        tokens=tokens,
        calls=first.calls + (final.calls if final is not first else 0),
        details={"route": route, "rag_answer": first.text, **({"rope": final.details.get("rope")}
                                                              if final is not first else {})},
    )
