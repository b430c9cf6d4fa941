"""What every strategy shares: its options and its signature."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..rope import DEFAULT_ROPE

if TYPE_CHECKING:
    from ..corpus import Corpus
    from ..records import Answer


@dataclass
class AskConfig:
    """Options of one question. Strategies read the fields that concern them and ignore the rest."""

    max_new_tokens: int = 96  # answers are one sentence; 96 tokens leaves room for a list of figures
    # rag
    top_k: int = 4  # 4 chunks of ≤ 200 tokens: ~1 k prompt tokens, a few seconds on 2 CPU cores
    # long-context
    rope: str = DEFAULT_ROPE  # yarn, sized per request; see docqa/rope.py
    rope_factor: float | None = None  # None: the request's length ÷ the trained window
    max_context: int | None = None  # None: 4 × the model's trained window
    truncate: bool = False  # drop the least relevant documents instead of failing when the corpus is too long
    cache_prefix: bool = False  # save the long-context prefix KV cache under the index
    max_question_tokens: int = 256  # a cached prefix's rope plan is sized for questions up to this long
    # summarize
    chain: str = "map-reduce"
    max_calls: int | None = None  # None: no budget; otherwise stop with BudgetExceeded past this many model calls
    summary_window: int | None = None  # tokens per call (None: the model's trained window); smaller = faster calls
    # Called with (tokens done, tokens total) during long prefills, so a terminal can draw progress.
    progress: Callable[[int, int], None] | None = field(default=None, repr=False, compare=False)

    def validate(self, question: str) -> str:
        q = (question or "").strip()
        if not q:
            raise ConfigError("The question is empty. Ask something, e.g. docqa ask \"What is the refund policy?\"")
        if self.top_k < 1:
            raise ConfigError(f"--top-k must be at least 1, got {self.top_k}.")
        if self.max_new_tokens < 1:
            raise ConfigError(f"--max-new-tokens must be at least 1, got {self.max_new_tokens}.")
        return q


StrategyFn = Callable[["Corpus", str, AskConfig], "Answer"]
