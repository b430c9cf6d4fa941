"""Summarize: walk the whole corpus in window-sized groups and combine what each group says about the question.

No document is dropped and no window is stretched; the price is many model calls. Chains (``CHAINS``) share one
signature, ``chain(run, chunks) -> (answer, files used)``, and every model call goes through :meth:`ChainRun.call`,
which enforces the window and the ``max_calls`` budget and records calls, tokens and latency per stage.

docqa's chains put a group's material before the question (and before refine's running answer), and pack groups
without looking at the question (room is kept for the longest allowed one, ``max_question_tokens``), so every
question asked of the same index sends the same group prefixes: their KV caches are kept in the process (within
the KV budget in bytes, :mod:`docqa.kv_budget`) and a later question prefills only its own tokens per group. Cached
or not, a prompt is encoded in the same two parts, so the answer does not depend on the cache.

Written directly rather than on llama-index's synthesizers, which are registered beside these as ``li-tree`` and
``li-refine`` (docqa/strategies/li_chains.py) for comparison, because the direct chains measured faster at equal
accuracy (benchmarks/summarize_chains.py and leval.py, SmolLM2-135M, 2 CPU cores, RESULTS.md): on examples/ (8
questions, 4 k windows, 11 calls each) map-reduce took 111 s p50 cold against TreeSummarize's 146 s (whose prompt
draws longer answers: 520 completion tokens a question against 363), and 27 s warm, reusing group prefixes that
llama-index's whole-text prompts cannot share. Accuracy was at the floor for every chain there; on L-Eval financial
QA (16 questions, 2 k windows) F1 was map-reduce 17.6, TreeSummarize 20.3 (paired difference +2.7, 95 % CI
[-4.0, 10.0]), docqa's refine 22.2 and CompactAndRefine 10.4 (-7.2 against map-reduce, CI [-13.6, -1.2]). Beyond
speed they give exact packing against docqa's tokenizer, the "nothing relevant" drop step and a call budget.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import prompts
from ..corpus import Corpus
from ..errors import BudgetExceeded, ConfigError, ContextTooLong
from ..prefix_cache import prefix_key
from ..records import Answer, Chunk, Source
from ..registry import Registry
from ..retrieval import retrieve_many
from ..rope import plan_for
from .base import AskConfig, retrieval_query
from .second_look import joined, read_whole

NOTHING = "NOTHING RELEVANT"
# Default --drop-threshold for the map step's probability signal; None: drop on the words only. Calibrated per model
# with benchmarks/drop.py (see benchmarks/RESULTS.md for the embedded model).
DROP_P: float | None = None
_NOTHING = re.compile(r"nothing relevant", re.I)
_SAFETY = 8  # tokens of slack per prompt for tokenizer merges at the seams of packed blocks
_SPLIT = "\x00SPLIT\x00"  # marks where a prompt's cacheable material ends and the question begins


@dataclass
class ChainRun:
    """One question's run of a chain: the material, the model, and the accounting of every call."""

    corpus: Corpus
    question: str  # as the model reads it (with the length hint, if any)
    cfg: AskConfig
    gen: object
    window: int
    calls: int = 0
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    planned: int = 0  # calls of the first pass (one per group), for progress reports
    notes: list[str] = field(default_factory=list)  # what the first pass kept (map notes, leaf answers)
    last_score: float | None = None  # P(score text) of the last call made with ``score``
    dropped: int = 0  # first-pass notes dropped as irrelevant (in words or by probability)
    query: str = ""  # the question alone, for retrieval (no length hint)
    retrieved: list[int] = field(default_factory=list)  # map_top_k's ranked chunk ids (eval scores the selection)
    retriever: str | None = None  # the retriever that ranked them (docqa.retrieval), None without map_top_k

    def call(self, stage: str, user: str, system: str | None = None, stop: tuple[str, ...] | None = None,
             score: str | None = None) -> str:
        """One model call, counted against ``max_calls`` and checked against the window. A ``user`` text holding
        ``_SPLIT`` is encoded in two parts, and the part before it is served from (or added to) the prefix cache.
        With ``score``, ``self.last_score`` is the probability the model gives that text as its whole answer (None
        where the backend cannot tell)."""
        if self.cfg.max_calls is not None and self.calls >= self.cfg.max_calls:
            raise BudgetExceeded(
                f"The {self.cfg.chain} chain needs more than --max-calls {self.cfg.max_calls} model calls for this "
                f"corpus (stage '{stage}'). Raise --max-calls, or use --chain summaries or --strategy rag.")
        system = system if system is not None else prompts.system(self.cfg.style)
        stop = stop if stop is not None else prompts.stop(self.cfg.style)
        head, _, tail = self.gen.chat(system, user).partition(_SPLIT)
        head_ids, tail_ids = (self.gen.encode(head), self.gen.encode(tail)) if tail else ([], self.gen.encode(head))
        n = len(head_ids) + len(tail_ids)
        if n + self.cfg.max_new_tokens > self.window:
            raise ContextTooLong(f"Internal packing error: a {stage} prompt of {n} tokens exceeds the window.",
                                 n, self.window)
        t0 = time.perf_counter()
        prefix, hit = self._prefix(head_ids) if head_ids else (None, False)
        out = self.gen.generate(tail_ids, self.cfg.max_new_tokens, stop=stop, prefix=prefix, score=score)
        self.last_score = math.exp(out.score_logprob) if score and out.score_logprob is not None else None
        s = self.stages.setdefault(stage, {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "seconds": 0.0,
                                           "cached_tokens": 0})
        s["calls"] += 1
        s["prompt_tokens"] += out.prompt_tokens
        s["completion_tokens"] += out.completion_tokens
        s["cached_tokens"] += len(head_ids) if hit else 0
        s["seconds"] += time.perf_counter() - t0
        self.calls += 1
        if self.cfg.progress and self.planned:
            self.cfg.progress(min(self.calls, self.planned), self.planned)
        return out.text.strip()

    def _prefix(self, ids: list[int]):
        """(prefix state, served from cache?) for a group prefix; kept while the process budget allows."""
        pool = self.corpus.kv_pool(self.cfg.kv_budget)
        content = self.corpus.store.content_id
        pool.discard(lambda k: k[0] == "summarize" and k[1] != content)  # a new index version: old prefixes are stale
        plan = plan_for("none", self.gen.rope_model(), self.window)  # groups fit the trained window: plain RoPE
        key = ("summarize", content, prefix_key(self.gen.spec, plan, ids, self.gen.rope_model()))
        kept = pool.get(key)
        if kept is not None:
            return kept, True
        state = self.gen.prefill_prefix(ids, plan)
        # Kept while the budget has room, never by evicting: a question walks every group in order, so LRU eviction
        # would drop each group just before the next question needs it; the first groups stay cached instead.
        pool.put(key, state, self.gen.kv_bytes(len(ids) + 512), evict=False)
        return state, False

    def room(self, template_user: str, system: str | None = None) -> int:
        """Tokens left for material in a prompt built from ``template_user`` (which holds everything else)."""
        system = system if system is not None else prompts.system(self.cfg.style)
        fixed = len(self.gen.encode(self.gen.chat(system, template_user.replace(_SPLIT, ""))))
        return self.window - fixed - self.cfg.max_new_tokens - _SAFETY

    def first_pass_room(self, template: Callable[[str, str], str], system: str | None = None) -> int:
        """Room for material in a first-pass prompt ``template(question, material)``, the same for every question:
        the longest allowed question (``max_question_tokens``) is reserved instead of this one, so that groups, and
        their cached prefixes, do not change from one question to the next."""
        n = len(self.gen.encode(prompts.question_block(self.question)))
        if n > self.cfg.max_question_tokens:
            raise ContextTooLong(f"The question is {n} tokens; summarize allows {self.cfg.max_question_tokens} "
                                 f"(max_question_tokens). Shorten the question.", n, self.cfg.max_question_tokens)
        return self.room(template("", ""), system) - self.cfg.max_question_tokens

    def pack(self, blocks: list[str], room: int) -> list[list[int]]:
        """Indices of ``blocks`` in order, grouped so each group's blocks (joined by blank lines) fit ``room``."""
        sizes = self.gen.count_tokens(blocks)
        groups: list[list[int]] = []
        used = 0
        for i, n in enumerate(sizes):
            if n + 2 > room:
                raise ContextTooLong(f"One block of {n} tokens does not fit a {self.window}-token window with the "
                                     f"prompt; use smaller --chunk-tokens at ingest.", n, room)
            if not groups or used + n + 2 > room:
                groups.append([])
                used = 0
            groups[-1].append(i)
            used += n + 2
        self.planned = max(self.planned, len(groups))
        return groups

    def first_groups(self, chunks: list[Chunk], room: int) -> list[list[int]]:
        """The first pass's groups: every group, or with ``map_top_k`` N only the groups that hold one of the
        question's N best-retrieved chunks (the others are dropped without a model call, counted in ``dropped``).
        Packing does not depend on the question, so kept groups keep their cached prefixes."""
        groups = self.pack(_chunk_blocks(chunks), room)
        k = self.cfg.map_top_k
        if not k:
            return groups
        hit = retrieve_many(self.corpus, [self.query or self.question], k, self.cfg.retrieval())[0]
        self.retrieved = [c.id for c, _ in hit.chunks]
        self.retriever = hit.retriever
        best = set(self.retrieved)
        kept = [g for g in groups if any(chunks[i].id in best for i in g)]
        self.dropped += len(groups) - len(kept)
        self.planned = len(kept)
        return kept


def _map_user(question: str, passages: str) -> str:
    return (f"Context:\n{passages}\n\n{_SPLIT}{prompts.question_block(question)}\n\nWrite the facts from the "
            f"context that help answer the question, in a few short sentences. If nothing in the context is relevant, "
            f"reply exactly: {NOTHING}")


def _leaf_user(question: str, passages: str) -> str:
    return prompts.context_user(question, passages, split=_SPLIT)


def _nothing_likely(run: ChainRun) -> bool:
    """The map step's drop signal besides the words: the model's probability of answering exactly "NOTHING RELEVANT"
    reaches ``--drop-threshold`` (off by default: see DROP_P)."""
    threshold = DROP_P if run.cfg.drop_threshold is None else run.cfg.drop_threshold
    return None not in (threshold, run.last_score) and run.last_score >= threshold


def _relevant(note: str) -> bool:
    return bool(note) and not _NOTHING.search(note) and not prompts.is_refusal(note)


def _chunk_blocks(chunks: list[Chunk]) -> list[str]:
    return [f"[{c.file}] {c.text.strip()}" for c in chunks]


def _reduce(run: ChainRun, notes: list[str]) -> str:
    """Merge notes into one answer, in further rounds while they do not fit one window.

    Terminates: a merged note is at most ``max_new_tokens`` long, and the window is required to hold two of them,
    so from the second round on every round at least halves the notes; a round that does not shrink them is
    stopped with the fix instead of looping."""
    answer_user = lambda body: f"Notes:\n{body}\n\n{prompts.question_block(run.question)}"  # noqa: E731
    merge_user = lambda body: _merge_user(run.question, body)  # noqa: E731
    room, answer_room = run.room(merge_user("")), run.room(answer_user(""))
    size = (len(notes), sum(run.gen.count_tokens(notes)))  # (notes, tokens), carried from round to round
    stalled = 0
    while True:
        groups = run.pack(notes, answer_room)
        if len(groups) == 1:
            return run.call("reduce", answer_user("\n\n".join(notes)))
        notes = [run.call("reduce", merge_user("\n\n".join(notes[i] for i in g)), stop=prompts.NOTES_STOP)
                 for g in run.pack(notes, room)]
        notes = [n for n in notes if _relevant(n)] or [prompts.NO_ANSWER]
        before, size = size, (len(notes), sum(run.gen.count_tokens(notes)))
        after = size
        stalled = stalled + 1 if after[0] >= before[0] and after[1] >= before[1] else 0
        if stalled >= 2:  # two rounds without fewer or shorter notes: more rounds would not converge
            raise ContextTooLong(f"The reduce step stopped making progress ({after[0]} notes of {after[1]} tokens). "
                                 f"Raise --summary-window or lower --max-new-tokens.", after[1], room)


def _merge_user(question: str, body: str) -> str:
    return (f"Notes:\n{body}\n\n{prompts.question_block(question)}\n\nCombine these notes into fewer sentences, "
            f"keeping every fact that helps answer the question.")


def _need_two(run: ChainRun) -> None:
    """A merge prompt must hold two answers of ``max_new_tokens``, or merging never ends: checked before any call."""
    room = run.room(_merge_user(run.question, ""))
    if room < 2 * (run.cfg.max_new_tokens + 2):
        raise ConfigError(
            f"A merge call of the {run.cfg.chain} chain has room for {max(room, 0)} tokens of notes, less than two "
            f"answers of --max-new-tokens {run.cfg.max_new_tokens}, so notes could never be combined. Raise "
            f"--summary-window (now {run.window}) or lower --max-new-tokens.")


def map_reduce(run: ChainRun, chunks: list[Chunk]) -> tuple[str, set[str]]:
    """Map-reduce: each group of chunks → the facts that bear on the question (or "nothing relevant", dropped);
    then the kept notes are merged into one answer, in further rounds when they do not fit one window."""
    blocks = _chunk_blocks(chunks)
    notes, used = [], set()
    scored = (DROP_P if run.cfg.drop_threshold is None else run.cfg.drop_threshold) is not None
    for group in run.first_groups(chunks, run.first_pass_room(_map_user, _MAP_SYSTEM)):
        note = run.call("map", _map_user(run.question, "\n\n".join(blocks[i] for i in group)), system=_MAP_SYSTEM,
                        stop=prompts.NOTES_STOP, score=NOTHING if scored else None)
        if _relevant(note) and not _nothing_likely(run):
            notes.append(note)
            used.update(chunks[i].file for i in group)
        else:
            run.dropped += 1
    run.notes = list(notes)
    if not notes:
        return prompts.NO_ANSWER, used
    return _reduce(run, notes), used


def refine(run: ChainRun, chunks: list[Chunk]) -> tuple[str, set[str]]:
    """Refine: walk the groups in document order with a running answer; each call sees the next group and the answer
    so far, and keeps or improves the answer. Sequential, so it cannot be parallelised, but it never needs a reduce
    step."""
    blocks = _chunk_blocks(chunks)
    answer: str | None = None
    used: set[str] = set()
    form = prompts.STYLES.get(run.cfg.style).form  # the length the system turn asks for, said again

    def user(question: str, body: str, current: str | None = None) -> str:
        if current is None:
            return _leaf_user(question, body)
        # The group comes first, so that its KV prefix is the same with or without an answer so far, and for every
        # question; the running answer follows it.
        return (f"Context:\n{body}\n\n{_SPLIT}Existing answer: {current}\n\n{prompts.question_block(question)}"
                f"\n\nIf the context gives a better or more complete answer, write it {form}; "
                f"otherwise repeat the existing answer.")

    # Groups are packed once for the larger prompt: one that carries an existing answer of up to max_new_tokens.
    room = run.first_pass_room(lambda q, body: user(q, body, "")) - run.cfg.max_new_tokens
    for group in run.first_groups(chunks, room):
        text = run.call("refine", user(run.question, "\n\n".join(blocks[i] for i in group), answer))
        if _relevant(text):
            if text != answer:
                used.update(chunks[i].file for i in group)
            answer = text
    return answer or prompts.NO_ANSWER, used


def tree(run: ChainRun, chunks: list[Chunk]) -> tuple[str, set[str]]:
    """Tree: each group answers the question on its own (refusals dropped); answers are then merged pairwise,
    level by level, until one remains. log₂(groups) merge levels; every merge sees only two answers."""
    blocks = _chunk_blocks(chunks)
    answers, used = [], set()
    for group in run.first_groups(chunks, run.first_pass_room(_leaf_user)):
        text = run.call("leaf", _leaf_user(run.question, "\n\n".join(blocks[i] for i in group)))
        if _relevant(text):
            answers.append(text)
            used.update(chunks[i].file for i in group)
    run.notes = list(answers)
    while len(answers) > 1:
        merged = []
        for a, b in zip(answers[0::2], answers[1::2]):
            text = run.call("merge", f"Answer A: {a}\nAnswer B: {b}\n\n{prompts.question_block(run.question)}\n\n"
                                     f"Combine the two answers into one short, correct answer.")
            merged.append(text if _relevant(text) else a)
        if len(answers) % 2:
            merged.append(answers[-1])
        answers = merged
    return (answers[0] if answers else prompts.NO_ANSWER), used


def from_summaries(run: ChainRun, chunks: list[Chunk]) -> tuple[str, set[str]]:
    """Summaries: answer from the per-document summaries stored by ``docqa ingest --summaries`` — one call when
    they fit one window, a reduce over them otherwise. The fast path for broad questions ("what is this corpus
    about?"); specific figures are often lost in a summary."""
    from ..errors import ConfigError

    summaries = run.corpus.store.summaries()
    if not summaries:
        raise ConfigError(f"Index '{run.corpus.name}' has no summaries. Add them with: docqa ingest PATH --index "
                          f"{run.corpus.name} --summaries")
    notes = [f"[{name}] {text}" for name, text in summaries.items()]
    return _reduce(run, notes), set(summaries)


_MAP_SYSTEM = "You are a careful assistant who extracts facts from documents."

ChainFn = Callable[[ChainRun, list[Chunk]], tuple[str, set[str]]]
# name → chain; every chain walks all chunks of the index, in document order, once per pass.
CHAINS: Registry[ChainFn] = Registry("chain")
CHAINS.register("map-reduce", map_reduce, aliases=("map_reduce", "mapreduce"))
CHAINS.register("refine", refine)
CHAINS.register("tree", tree)
CHAINS.register("summaries", from_summaries)
# llama-index's synthesizers with docqa's generator, for comparison (imported only when asked for).
CHAINS.register("li-tree", "docqa.strategies.li_chains:li_tree", aliases=("tree-summarize", "llama-tree"))
CHAINS.register("li-refine", "docqa.strategies.li_chains:li_refine", aliases=("compact-refine", "llama-refine"))


def ask(corpus: Corpus, question: str, cfg: AskConfig) -> Answer:
    """Summarize: query-focused chains over the whole corpus in window-sized groups (map-reduce by default, or
    refine, or tree). Reads every chunk without stretching the window, at the cost of one call per group plus the
    combining calls; every call is counted and ``max_calls`` bounds them. When the chain finds nothing and the corpus
    fits its window, long-context answers instead (``fallback``; docqa/strategies/second_look.py)."""
    t0 = time.perf_counter()
    question = cfg.validate(question)
    chain = CHAINS.get(cfg.chain)
    gen = corpus.generator()
    window = min(cfg.summary_window or gen.trained_window, gen.trained_window)
    run = ChainRun(corpus, prompts.with_length(question, cfg.length_hint), cfg, gen, window,
                   query=retrieval_query(question, cfg.instruction))
    _need_two(run)
    text, used = chain(run, corpus.store.chunks())
    stage_tokens = {f"{k}_prompt": int(v["prompt_tokens"]) for k, v in run.stages.items()}
    elapsed = time.perf_counter() - t0
    first = Answer(
        text=text, strategy="summarize", sources=[Source(f, 0, 0) for f in sorted(used)],
        timings={**{k: v["seconds"] for k, v in run.stages.items()}, "ttft": elapsed, "total": elapsed},
        tokens={"prompt": sum(int(v["prompt_tokens"]) for v in run.stages.values()),
                "completion": sum(int(v["completion_tokens"]) for v in run.stages.values()),
                "cached": sum(int(v["cached_tokens"]) for v in run.stages.values()), **stage_tokens},
        calls=run.calls)
    final, route = _second_look(corpus, question, cfg, run, text)
    timings, tokens, calls = joined(first, final, "", t0)
    return Answer(
        text=(final or first).text,
        strategy="summarize",
        sources=(final or first).sources,
        timings=timings,
        tokens=tokens,
        calls=calls,
        details={"chain": CHAINS.canonical(cfg.chain), "stages": run.stages, "window": window,
                 "max_calls": cfg.max_calls, "notes": run.notes, "dropped": run.dropped,
                 "retrieved": run.retrieved, "retriever": run.retriever, "route": route,
                 **({"chain_answer": text} if route is not None else {}),
                 **({"rope": final.details.get("rope")} if final is not None else {})},
    )


def _second_look(corpus: Corpus, question: str, cfg: AskConfig, run: ChainRun,
                 text: str) -> tuple[Answer | None, str | None]:
    """When the chain declines ("I don't know.": no map note kept, or the reduce found no answer in them) and
    ``cfg.fallback`` is on, long-context's answer over the whole corpus where it fits the chain's window (the
    trained window by default; :func:`.second_look.read_whole` says why no larger); else None. The
    route: None where the chain's answer stands unasked, "long-context", or the chain's name with why the second
    look was skipped."""
    name = CHAINS.canonical(cfg.chain)
    if not cfg.fallback or not prompts.is_refusal(text):
        return None, None
    if cfg.max_calls is not None and run.calls >= cfg.max_calls:
        return None, f"{name} (long-context skipped: --max-calls {cfg.max_calls} reached)"
    final, how = read_whole(corpus, question, cfg, limit=run.window)
    return final, how if final is not None else f"{name} ({how})"
