"""Long-context: every document of the index in one prompt, with the rotary window stretched past its trained length.

The prompt is split at the question: a fixed document prefix (system text, every document titled, in file order) and
a suffix (the question). The prefix is prefilled once per (index version, model, rope plan) and its KV cache reused by
every later question in the process, and optionally saved under the index (``cache_prefix``). So that cached and
uncached answers are identical, the rope plan is always sized for prefix + the longest allowed question
(``max_question_tokens``) + the answer budget, whether or not a cache is used.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .. import prefix_cache, prompts
from ..corpus import Corpus
from ..errors import ContextTooLong, DocQAError
from ..generators import Generator, PrefixState
from ..prefix_cache import prefix_key
from ..records import Answer, Source
from ..rope import RopePlan, plan_for
from .base import AskConfig, answer_floor, retrieval_query

_SENTINEL = "\x00QUESTION\x00"
# Past the trained window, the answer room one plan keeps for every question, and the step its length is rounded up
# to: answers of up to 512 new tokens (eval's budgets are 96 to ~400) share one stretch and one cached prefix.
ANSWER_ROOM = 512
PLAN_QUANTUM = 1024


def _documents(corpus: Corpus) -> list[tuple[str, str]]:
    """(title, text) per file in a stable order; pages of a pdf are joined in page order."""
    merged: dict[str, list[str]] = {}
    for part in corpus.store.documents():
        merged.setdefault(part.file, []).append(part.text)
    return [(name, "\n\n".join(texts)) for name, texts in merged.items()]


def _split_prompt(gen, documents: list[tuple[str, str]], style: str = prompts.DEFAULT_STYLE) -> tuple[str, str]:
    """The chat-templated prompt as (prefix up to the question, text after the question)."""
    user = prompts.LONG_CONTEXT_HEAD + prompts.documents_block(documents) + prompts.LONG_CONTEXT_TAIL + _SENTINEL
    full = gen.chat(prompts.system(style), user)
    prefix, _, after = full.partition(_SENTINEL)
    return prefix, after


def _fit(corpus: Corpus, gen, question: str, documents, budget: int, style: str = prompts.DEFAULT_STYLE):
    """Drop the least relevant documents (by best chunk similarity to the question) until the prompt fits."""
    hits = corpus.retrieve(question, corpus.store.chunk_count())
    best: dict[str, float] = {}
    for chunk, score in hits.chunks:
        best[chunk.file] = max(best.get(chunk.file, -1.0), score)
    sizes = dict(zip([d[0] for d in documents], gen.count_tokens([prompts.documents_block([d]) for d in documents])))
    overhead = len(gen.encode(_split_prompt(gen, [], style)[0]))
    kept, used = [], overhead
    for name in sorted(sizes, key=lambda n: -best.get(n, -1.0)):
        if used + sizes[name] + 2 <= budget:
            kept.append(name)
            used += sizes[name] + 2
    dropped = [d[0] for d in documents if d[0] not in kept]
    return [d for d in documents if d[0] in kept], dropped


@dataclass
class _Request:
    """What one long-context request sends: the document prefix (cacheable), the question suffix, the rope plan."""

    gen: Generator
    fixed: bool  # a served model: its window is the limit, nothing is stretched here
    window: int
    max_context: int
    documents: list[tuple[str, str]]
    dropped: list[str]
    prefix_ids: list[int]
    suffix_ids: list[int]
    plan: RopePlan


def _prepare(corpus: Corpus, question: str, cfg: AskConfig) -> _Request:
    """The request for ``question`` (validated), with no model call: tokens, documents kept, the plan. Raises
    :class:`ContextTooLong` where the question or the index does not fit."""
    gen = corpus.generator()
    window = gen.trained_window
    # A served model's rope is fixed at the server's launch: its window is the limit, nothing is stretched here.
    fixed = bool(getattr(gen, "fixed_rope", False))
    max_context = min(cfg.max_context or window, window) if fixed else (cfg.max_context or 4 * window)
    suffix_ids = gen.encode(prompts.question_block(question, cfg.length_hint))
    if len(suffix_ids) > cfg.max_question_tokens:
        raise ContextTooLong(
            f"The question is {len(suffix_ids)} tokens; long-context allows {cfg.max_question_tokens} "
            f"(max_question_tokens), because the document prefix's rope plan is sized for it. Shorten the question.",
            len(suffix_ids), cfg.max_question_tokens)
    documents = _documents(corpus)
    prefix_text, after = _split_prompt(gen, documents, cfg.style)
    suffix_ids = gen.encode(prompts.question_block(question, cfg.length_hint) + after)
    # Room the plan keeps after the prefix: the longest allowed question, the chat template's closing tokens, and
    # the answer budget.
    reserve = cfg.max_question_tokens + len(gen.encode(after)) + cfg.max_new_tokens
    prefix_ids = gen.encode(prefix_text)
    dropped: list[str] = []
    if len(prefix_ids) + reserve > max_context:
        if not cfg.truncate:
            limit = f"the server's window of {max_context:,}" if fixed else f"--max-context {max_context:,}"
            fix = gen.relaunch_hint(len(prefix_ids) + reserve) if fixed else "Or raise --max-context."
            raise ContextTooLong(
                f"The index '{corpus.name}' is {len(prefix_ids):,} tokens, and with the question and answer budget "
                f"({reserve}) exceeds {limit}. Use --strategy rag or summarize, or pass --truncate to keep the most "
                f"relevant documents that fit. {fix}", len(prefix_ids) + reserve, max_context)
        documents, dropped = _fit(corpus, gen, retrieval_query(question, cfg.instruction), documents,
                                  max_context - reserve, cfg.style)
        if not documents:  # an empty prompt would be answered from nothing
            raise ContextTooLong(
                f"Not one document of the index '{corpus.name}' fits --max-context {max_context:,} with the question "
                f"and answer budget ({reserve}), even alone. Raise --max-context, or use --strategy rag or summarize.",
                len(prefix_ids) + reserve, max_context)
        prefix_text, after = _split_prompt(gen, documents, cfg.style)
        prefix_ids = gen.encode(prefix_text)
        suffix_ids = gen.encode(prompts.question_block(question, cfg.length_hint) + after)
    sized = len(prefix_ids) + reserve
    if not fixed and sized > gen.trained_window:
        # Past the window the plan's stretch follows the length it is sized for, and the cached prefix follows the
        # stretch. eval gives each question an answer budget of its own, so sized per request every question of a
        # run stretched differently and prefilled the whole corpus again (41 k tokens, ~30 min a question here).
        # Sized with an answer allowance of ANSWER_ROOM tokens and rounded up to PLAN_QUANTUM, one plan serves them.
        allowance = reserve - cfg.max_new_tokens + max(cfg.max_new_tokens, ANSWER_ROOM)  # the reserve, answer raised
        sized = min(max_context, -(-(len(prefix_ids) + allowance) // PLAN_QUANTUM) * PLAN_QUANTUM)
    plan = plan_for("none" if fixed else cfg.rope, gen.rope_model(), sized, None if fixed else cfg.rope_factor)
    return _Request(gen, fixed, window, max_context, documents, dropped, prefix_ids, suffix_ids, plan)


def ask(corpus: Corpus, question: str, cfg: AskConfig) -> Answer:
    """Long-context: all documents in one prompt; RoPE extended past the trained window by ``cfg.rope`` (YaRN sized
    per request by default, or dynamic NTK, ntk, linear/PI, none), one plan fixed for the whole request. Sees
    everything at once, at a cost that grows with the corpus; the document prefix is prefilled once and reused by
    later questions."""
    t0 = time.perf_counter()
    return answer(corpus, _prepare(corpus, cfg.validate(question), cfg), cfg, t0)


def answer(corpus: Corpus, req: _Request, cfg: AskConfig, t0: float) -> Answer:
    """Long-context's answer to a prepared request (:func:`_prepare`, or :func:`kept_prefix`'s), timed from ``t0``."""
    gen, fixed, window, max_context, plan = req.gen, req.fixed, req.window, req.max_context, req.plan
    documents, dropped, suffix_ids = req.documents, req.dropped, req.suffix_ids
    state, source, saved = _prefix(corpus, gen, req.prefix_ids, plan, cfg)
    out = gen.generate(suffix_ids, cfg.max_new_tokens, prefix=state, progress=cfg.progress,
                       stop=prompts.stop(cfg.style), on_text=cfg.on_text, floor=answer_floor(cfg))
    sources = [Source(name, 0, len(text), None, None, None, "") for name, text in documents]
    prefix_s = state.prefill_s if source == "prefilled" else 0.0
    return Answer(
        text=out.text,
        strategy="long-context",
        sources=sources,
        timings={"prefix_prefill": prefix_s, "prefill": out.prefill_s, "generate": out.decode_s,
                 "ttft": prefix_s + out.ttft_s, "total": time.perf_counter() - t0},
        tokens={"prompt": out.prompt_tokens, "completion": out.completion_tokens, "cached": out.cached_tokens},
        calls=1,
        details={"rope": ({"method": "server", "server_window": window, "window_from": gen.window_source,
                           "server_says": gen.rope_info, "backend": gen.spec.split(":")[0]} if fixed else
                          {"method": plan.method, "factor": round(plan.factor, 4), "base": round(plan.base, 1),
                           "attention_factor": round(plan.attention_factor, 4), "sized_for": plan.seq_len,
                           "trained_window": window,
                           # hybrid attention: what each layer type did (Gemma 3: only the global layers stretch)
                           **({"layers": plan.to_dict()["layers"]} if plan.layers else {})}),
                 "prompt_tokens": out.prompt_tokens, "prefix": source, **({"prefix_file": saved} if saved else {}),
                 "dropped": dropped,
                 "max_context": max_context, "finish_reason": out.finish_reason},
    )


def _keys(corpus: Corpus, gen, ids: list[int], plan) -> tuple[tuple, Path]:
    """A prefix's key in the corpus's KV pool and its file under the index version."""
    key = ("long-context", corpus.store.content_id, prefix_key(gen.spec, plan, ids, gen.rope_model()))
    # Each backend writes its own format (transformers: safetensors; llama.cpp: its sequence state).
    return key, prefix_folder(corpus) / f"{key[2]}{getattr(gen, 'prefix_suffix', '.safetensors')}"


def prefix_folder(corpus: Corpus) -> Path:
    """Where the index version keeps saved long-context prefixes (a new version starts without any)."""
    return corpus.store.path / "prefix"


def kept_prefix(corpus: Corpus, question: str, cfg: AskConfig) -> _Request | None:
    """``question``'s request when its document prefix is already kept, so long-context would answer it without
    prefilling (:func:`answer` takes it): in this process's KV pool, or saved under the index when
    ``cfg.cache_prefix`` lets long-context read it there. None (without tokenizing anything) for an index far past
    ``--max-context``, or with ``--truncate`` (its selection of documents follows each question), and wherever
    long-context could not answer at all."""
    if cfg.truncate:
        return None
    pool = corpus.kv_pool(cfg.kv_budget)
    if not any(k[:2] == ("long-context", corpus.store.content_id) for k in pool.keys()) and not (
            cfg.cache_prefix and prefix_cache.saved(prefix_folder(corpus))):
        return None  # nothing of this index is kept: the corpus need not be tokenized to know
    tokens = int(corpus.store.manifest.get("tokens") or 0)
    if tokens > 2 * (cfg.max_context or 4 * corpus.generator().trained_window):
        return None  # chunks overlap, so the manifest overcounts; twice the limit is surely past it
    try:
        req = _prepare(corpus, cfg.validate(question), cfg)
    except DocQAError:
        return None
    key, path = _keys(corpus, req.gen, req.prefix_ids, req.plan)
    return req if key in pool or (cfg.cache_prefix and path.is_file()) else None


def _prefix(corpus: Corpus, gen, ids: list[int], plan, cfg: AskConfig) -> tuple[PrefixState, str, str | None]:
    """The prefix state from this process's cache, from disk, or freshly prefilled (in that order); where it came
    from; and, when it was prefilled to be saved, what became of the file (:func:`_save`)."""
    pool = corpus.kv_pool(cfg.kv_budget)
    key, path = _keys(corpus, gen, ids, plan)
    kept = pool.get(key)
    if kept is not None:
        return kept, "memory", None
    state = gen.load_prefix(path, ids, plan) if cfg.cache_prefix else None
    source, saved = "disk", None
    if state is not None:
        prefix_cache.touch(path)  # the least recently used leave the disk first
    else:
        state = gen.prefill_prefix(ids, plan, progress=cfg.progress)
        source = "prefilled"
        if cfg.cache_prefix:
            saved = _save(gen, state, path, len(ids))
    # Its room for a question and answer is part of it (the prefill reserves it), so the bytes are of the capacity.
    pool.put(key, state, gen.kv_bytes(len(ids) + 512))
    return state, source, saved


def _save(gen, state: PrefixState, path: Path, tokens: int) -> str:
    """Save a prefilled prefix within the disk budget (:mod:`docqa.prefix_cache`); what happened, in words. A prefix
    that cannot be saved (no room, a full disk) costs the next process a prefill, never this answer."""
    why = prefix_cache.room_for(path.parent, gen.kv_bytes(tokens))
    if why is None:
        try:
            gen.save_prefix(state, path)
        except OSError as e:
            why = e.strerror or str(e)
        else:
            prefix_cache.prune(path.parent, keep=path)
            if path.exists():
                return "saved"
            why = (f"over the prefix disk budget of {prefix_cache.disk_budget() / 2**20:,.1f} MB "
                   f"(DOCQA_PREFIX_DISK_BUDGET)")
    return f"not saved: {why}"
