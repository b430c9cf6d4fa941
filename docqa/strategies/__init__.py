"""Answering strategies: one registry, one signature.

Every strategy is a function ``ask(corpus: Corpus, question: str, cfg: AskConfig) -> Answer``. Entries are lazy
``"module:attr"`` strings, so listing strategies (``docqa --help``) imports no model code.
"""

from __future__ import annotations

from ..registry import Registry
from .base import AskConfig, BatchFn, StrategyFn

STRATEGIES: Registry[StrategyFn] = Registry("strategy")
STRATEGIES.register("rag", "docqa.strategies.rag:ask")
STRATEGIES.register("long-context", "docqa.strategies.long_context:ask", aliases=("lc", "long_context", "longcontext"))
STRATEGIES.register("summarize", "docqa.strategies.summarize:ask", aliases=("sum", "summarise"))
STRATEGIES.register("auto", "docqa.strategies.auto:ask", aliases=("self-route",))

# Strategies that answer several questions in one batched generation: name → ``ask_many(corpus, questions, cfg,
# slots) -> list[Answer]`` (``slots`` answers decoding at once), each answer equal to what ``ask`` gives the question
# alone. Others are asked one by one.
BATCHED: Registry[BatchFn] = Registry("batched strategy")
BATCHED.register("rag", "docqa.strategies.rag:ask_many")

__all__ = ["BATCHED", "STRATEGIES", "AskConfig", "BatchFn", "StrategyFn"]
