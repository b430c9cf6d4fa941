"""RAG: retrieve the top-k chunks (dense, BM25 or hybrid: docqa/retrieval), answer from them in one model call."""

from __future__ import annotations

import dataclasses
import math
import time

from .. import prompts
from ..corpus import Corpus
from ..records import Answer, Source
from ..retrieval import retrieve_many
from .base import AskConfig, answer_floor, retrieval_query


def ask(corpus: Corpus, question: str, cfg: AskConfig) -> Answer:
    """Retrieval-augmented generation: the ``top_k`` chunks most similar to the question (hybrid BM25 + cosine by
    default), best first (``chunk_order="document"``: as they stand in their files), numbered with their file names,
    then the question. One model call; cheap at any corpus size, but blind to anything the retriever misses."""
    return ask_many(corpus, [question], cfg, 1)[0]


def ask_many(corpus: Corpus, questions: list[str], cfg: AskConfig, slots: int = 8,
             score: str | None = None, length_hints: list[int | None] | None = None) -> list[Answer]:
    """:func:`ask` for several questions: embedded together, answered by one continuously batched generation with
    ``slots`` answers decoding at once (each answer is the one the question gets alone). A question's ``total`` time
    is its own retrieval plus an equal share of the generation: the cost per question at this batch size. With
    ``score`` (auto passes the decline text), each answer's ``details["decline_p"]`` is the probability the model
    gives that text as its answer, where the generator can tell. ``length_hints`` (one per question) override
    ``cfg.length_hint`` question by question."""
    t0 = time.perf_counter()
    questions = [cfg.validate(q) for q in questions]
    if not questions:
        return []
    hints = list(length_hints) if length_hints is not None else [cfg.length_hint] * len(questions)
    # The question alone (a length hint is no query), without the set's shared instruction.
    hits = retrieve_many(corpus, [retrieval_query(q, cfg.instruction) for q in questions], cfg.top_k, cfg.retrieval())
    if cfg.chunk_order == "document":  # OP-RAG: the same chunks, read in the order their files give them
        hits = [dataclasses.replace(h, chunks=sorted(h.chunks, key=lambda cs: (cs[0].file, cs[0].start_char)))
                for h in hits]
    gen = corpus.generator()
    chats = [gen.chat(prompts.system(cfg.style), prompts.rag_user(q, [(c.file, c.text) for c, _ in h.chunks], n))
             for q, h, n in zip(questions, hits, hints, strict=True)]
    t1 = time.perf_counter()
    stop = prompts.stop(cfg.style)
    floors = [answer_floor(cfg, n) for n in hints]
    outs = gen.generate_batch(chats, cfg.max_new_tokens, stop=stop, slots=slots, score=score, floors=floors) \
        if len(chats) > 1 else [gen.generate(chats[0], cfg.max_new_tokens, stop=stop, score=score,
                                             on_text=cfg.on_text, floor=floors[0])]
    share = (time.perf_counter() - t1) / len(chats)
    answers = []
    for h, out in zip(hits, outs, strict=True):
        sources = [Source(c.file, c.start_char, c.end_char, c.page, round(s, 4), c.id, c.text) for c, s in h.chunks]
        answers.append(Answer(
            text=out.text,
            strategy="rag",
            sources=sources,
            timings={**h.timings, "prefill": out.prefill_s,
                     "generate": out.decode_s, "ttft": h.seconds + out.ttft_s,
                     "total": h.seconds + share if len(chats) > 1 else time.perf_counter() - t0},
            tokens={"prompt": out.prompt_tokens, "completion": out.completion_tokens},
            calls=1,
            details={"top_k": cfg.top_k, "retriever": h.retriever, "chunk_order": cfg.chunk_order,
                     "finish_reason": out.finish_reason, "batch": min(slots, len(chats)),
                     **({"notes": h.notes} if h.notes else {}),
                     **({"decline_p": math.exp(out.score_logprob)} if out.score_logprob is not None else {})},
        ))
    return answers
