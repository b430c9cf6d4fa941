"""What every strategy shares: its options and its signature."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..generators.base import Floor
from ..rope import DEFAULT_ROPE

if TYPE_CHECKING:
    from ..corpus import Corpus
    from ..records import Answer


# rag's chunk orders (AskConfig.chunk_order): best first, or as the chunks stand in their files.
CHUNK_ORDERS = ("relevance", "document")


@dataclass
class AskConfig:
    """Options of one question. Strategies read the fields that concern them and ignore the rest."""

    max_new_tokens: int = 96  # answers are one sentence; 96 tokens leaves room for a list of figures
    # short, sentence, paragraph or choice (docqa/prompts.py STYLES); eval picks it from the question set
    style: str = "sentence"
    # Ask for an answer of about this many words ("Answer in about N words." on a line after the question, L-Eval's
    # protocol in docqa's wording: prompts.with_length); the question alone is what retrieval sees. None: none asked.
    length_hint: int | None = None
    # An answer asked for about N words (length_hint) does not end before length_floor x N words: the 1.5 B reader
    # stopped at a fraction of what it was asked for (financial QA: a median 0.6 of its references' words, 20 of 52
    # long-context answers under half), most often a list cut at its first item. Measured paired on two kinds of set,
    # benchmarks/RESULTS.md ("A floor under the asked length"); generators/base.py Floor says how it is held. 0: off.
    length_floor: float = 0.5
    # Text the question starts with that instructs the reader and says nothing about what to look for (L-Eval's
    # "You are asked to act as a member of the Financial Results Conference Call and answer the question:"): the
    # model reads the whole question, retrieval only what follows it (:func:`retrieval_query`). eval finds a question
    # set's shared instruction itself (docqa.eval.questions.shared_instruction). None: the whole question is the query.
    instruction: str | None = None
    # rag
    top_k: int = 4  # 4 chunks of ≤ 200 tokens: ~1 k prompt tokens, a few seconds on 2 CPU cores
    # rag: the order the reader sees the chunks in: "relevance" (best first) or "document" (where they stand in their
    # files: order-preserving RAG, Yu et al. 2024). Measured on two sets with the 1.5 B reader: benchmarks/RESULTS.md.
    chunk_order: str = "relevance"
    # retrieval (rag, auto's first step, summarize's map_top_k; docqa/retrieval): dense, bm25 or hybrid; None: the
    # index's own (ingest --retriever), else docqa.retrieval.DEFAULT_RETRIEVER
    retriever: str | None = None
    fusion: str = "rrf"  # hybrid: rrf (reciprocal rank fusion) or weighted (min-max normalised scores)
    fusion_weight: float = 0.7  # hybrid: the dense ranking's share, in [0, 1] (docqa.retrieval.DEFAULT_FUSION_WEIGHT)
    rerank: str | None = None  # "cross-encoder:MODEL" or "reader": reorder the fused candidates
    rerank_top_n: int = 20  # candidates the reranker reads
    # long-context
    rope: str = DEFAULT_ROPE  # yarn, sized per request; see docqa/rope.py
    rope_factor: float | None = None  # None: the request's length ÷ the trained window
    max_context: int | None = None  # None: 4 × the model's trained window
    truncate: bool = False  # drop the least relevant documents instead of failing when the corpus is too long
    cache_prefix: bool = False  # save the long-context prefix KV cache under the index
    max_question_tokens: int = 256  # a cached prefix's rope plan is sized for questions up to this long
    # Bytes of KV caches kept between questions (long-context and summarize prefixes), e.g. "4GiB"; None: a share of
    # the free memory where the cache lives (docqa/kv_budget.py).
    kv_budget: str | int | None = None
    # auto: route to long-context when P("I don't know." | RAG prompt) reaches this (None: the calibrated default,
    # docqa/strategies/auto.py; 1.0 or more: only on declines in words). benchmarks/routing.py calibrates it.
    route_threshold: float | None = None
    # auto: a question about the documents as a whole ("Summarize the report.", docqa/strategies/whole.py) is read by
    # long-context over the documents retrieval ranks first that fit this many tokens, unstretched; rag answers it
    # where not even the first fits. 0: such questions start with rag like any other. 8 192: the budget measured on
    # a corpus of eight ~5 k-token transcripts (benchmarks/RESULTS.md, "Long-context past the window").
    whole_tokens: int = 8192
    # summarize: map notes are dropped when P("NOTHING RELEVANT") reaches this (None: the per-model default of
    # docqa/strategies/summarize.py; benchmarks/drop.py calibrates it)
    drop_threshold: float | None = None
    # summarize
    chain: str = "map-reduce"
    max_calls: int | None = None  # None: no budget; otherwise stop with BudgetExceeded past this many model calls
    summary_window: int | None = None  # tokens per call (None: the model's trained window); smaller = faster calls
    # First pass of map-reduce / refine / tree: only the groups holding one of the question's N best-retrieved chunks
    # (0: every group). The drop signal the model itself could not give (benchmarks/RESULTS.md).
    map_top_k: int = 0
    # summarize: when the chain declines ("I don't know."), answer with long-context if the corpus fits the chain's
    # window (--summary-window, by default the trained window). Measured on both L-Eval sets with the 1.5 B reader:
    # docqa/strategies/second_look.py, benchmarks/RESULTS.md.
    fallback: bool = True
    # Called with (tokens done, tokens total) during long prefills, so a terminal can draw progress.
    progress: Callable[[int, int], None] | None = field(default=None, repr=False, compare=False)
    # Called with the answer so far while the answering call decodes (rag's and long-context's call, and theirs where
    # auto or summarize's second look hands over; a restart means a later step answers). Not summarize's chain calls:
    # which of them gives the answer depends on what the chain finds. Its last text is the answer the call returned.
    on_text: Callable[[str], None] | None = field(default=None, repr=False, compare=False)

    def validate(self, question: str) -> str:
        if isinstance(question, bytes):
            raise ConfigError("The question is bytes; decode it to text first, e.g. question.decode('utf-8').")
        if question is not None and not isinstance(question, str):
            raise ConfigError(f"The question must be text (str), got {type(question).__name__}: {question!r:.60}.")
        q = (question or "").strip()
        if not q:
            raise ConfigError("The question is empty. Ask something, e.g. docqa ask \"What is the refund policy?\"")
        # A question is bounded before any model sees it: ~4 characters a token, so this is about the
        # max_question_tokens every strategy reserves room for (a 120 KB "question" once ran unbounded).
        limit = 4 * self.max_question_tokens
        if len(q) > limit:
            raise ConfigError(f"The question is {len(q):,} characters long; docqa takes questions of up to {limit:,} "
                              f"characters (max_question_tokens {self.max_question_tokens}). Ask a shorter question; "
                              f"put long material into a document and ingest it.")
        try:
            q.encode("utf-8")
        except UnicodeEncodeError as e:  # bytes that were not UTF-8 (a terminal or pipe in another encoding)
            bad = q[e.start].encode("utf-8", "surrogateescape")
            raise ConfigError(f"The question is not UTF-8 text (byte {bad!r} at character {e.start + 1}). Send it as "
                              f"UTF-8, e.g. with a UTF-8 terminal or `iconv -t utf-8`.") from None
        self.check()
        return q

    def retrieval(self):
        """The retrieval options of this question (docqa.retrieval.RetrievalOptions)."""
        from ..retrieval import RetrievalOptions

        return RetrievalOptions(retriever=self.retriever, fusion=self.fusion, fusion_weight=self.fusion_weight,
                                rerank=self.rerank, rerank_top_n=self.rerank_top_n)

    def check(self) -> None:
        """Raise ConfigError on an option out of range, naming it (the options alone; :meth:`validate` checks a
        question with them)."""
        from ..prompts import check_style

        self.retrieval().check()
        for name, takes in (("progress", "(done, total)"), ("on_text", "the answer so far (str)")):
            fn = getattr(self, name)
            if fn is not None and not callable(fn):
                raise ConfigError(f"{name} must be a function taking {takes}, got {type(fn).__name__}: {fn!r:.40}.")

        self.style = check_style(self.style)
        if self.top_k < 1:
            raise ConfigError(f"--top-k must be at least 1, got {self.top_k}.")
        if self.chunk_order not in CHUNK_ORDERS:
            raise ConfigError(f"--chunk-order must be one of {', '.join(CHUNK_ORDERS)}, got {self.chunk_order!r}.")
        if self.length_hint is not None and self.length_hint < 1:
            raise ConfigError(f"--length-hint must be at least 1 word, got {self.length_hint}.")
        if not 0.0 <= self.length_floor <= 1.0:
            raise ConfigError(f"--length-floor must be a share of the asked length between 0 (off) and 1, got "
                              f"{self.length_floor}.")
        if self.max_new_tokens < 1:
            raise ConfigError(f"--max-new-tokens must be at least 1, got {self.max_new_tokens}.")
        if self.max_calls is not None and self.max_calls < 1:
            raise ConfigError(f"--max-calls must be at least 1, got {self.max_calls}.")
        if self.map_top_k < 0:
            raise ConfigError(f"--map-top-k must be 0 (map every group) or more, got {self.map_top_k}.")
        if self.summary_window is not None and self.summary_window < 256:
            raise ConfigError(f"--summary-window must be at least 256 tokens, got {self.summary_window}.")
        if self.max_context is not None and self.max_context < 256:
            raise ConfigError(f"--max-context must be at least 256 tokens, got {self.max_context}.")
        if self.whole_tokens and self.whole_tokens < 256:
            raise ConfigError(f"--whole-tokens must be 0 (off) or at least 256 tokens, got {self.whole_tokens}.")
        if self.route_threshold is not None and not 0.0 < self.route_threshold:
            raise ConfigError(f"--route-threshold must be a probability above 0 (1 or more: route only on declines in "
                              f"words), got {self.route_threshold}.")
        if self.drop_threshold is not None and not 0.0 < self.drop_threshold:
            raise ConfigError(f"--drop-threshold must be a probability above 0, got {self.drop_threshold}.")
        if self.kv_budget is not None:
            from ..kv_budget import parse_bytes

            parse_bytes(self.kv_budget)
        if self.cache_prefix:  # said before a prefill, not after it when the prefix is saved
            from ..prefix_cache import disk_budget

            disk_budget()
        if self.rope_factor is not None and not self.rope_factor >= 1:
            raise ConfigError(f"--rope-factor must be at least 1 (1 = no stretching), got {self.rope_factor}.")
        from ..rope import parse_method

        parse_method(self.rope)  # a typo is refused whatever the strategy (rag ignored it silently)


def answer_floor(cfg: AskConfig, length_hint: int | None = None) -> Floor | None:
    """The least an answer asked for about ``length_hint`` words (default ``cfg.length_hint``) says before it may end:
    ``cfg.length_floor`` of those words, rounded up; an answer that declines may end sooner. None where no length was
    asked or the floor is off."""
    from ..prompts import is_refusal

    hint = cfg.length_hint if length_hint is None else length_hint
    if not hint or cfg.length_floor <= 0:
        return None
    return Floor(math.ceil(cfg.length_floor * hint), exempt=is_refusal)


StrategyFn = Callable[["Corpus", str, AskConfig], "Answer"]
BatchFn = Callable[["Corpus", "list[str]", AskConfig, int], "list[Answer]"]


def retrieval_query(question: str, instruction: str | None) -> str:
    """What retrieval embeds for ``question``: the question without ``instruction`` where it starts with it (and
    something is left), else the whole question. Every strategy that retrieves (rag, auto's first step, summarize's
    ``map_top_k``, long-context's ``--truncate``) asks through this."""
    if instruction and question.startswith(instruction):
        rest = question[len(instruction):].strip()
        if rest:
            return rest
    return question
