"""RAG: embed the question, take the top-k chunks from FAISS, answer from them in one model call."""

from __future__ import annotations

import time

from .. import prompts
from ..corpus import Corpus
from ..records import Answer, Source
from .base import AskConfig


def ask(corpus: Corpus, question: str, cfg: AskConfig) -> Answer:
    """Retrieval-augmented generation: the ``top_k`` chunks most similar to the question (cosine, all-MiniLM by
    default), best first, numbered with their file names, then the question. One model call; cheap at any corpus
    size, but blind to anything the retriever misses."""
    t0 = time.perf_counter()
    question = cfg.validate(question)
    hits = corpus.retrieve(question, cfg.top_k)
    gen = corpus.generator()
    prompt = gen.chat(prompts.SYSTEM, prompts.rag_user(question, [(c.file, c.text) for c, _ in hits.chunks]))
    out = gen.generate(prompt, cfg.max_new_tokens, stop=prompts.STOP)
    sources = [Source(c.file, c.start_char, c.end_char, c.page, round(s, 4), c.id, c.text) for c, s in hits.chunks]
    return Answer(
        text=out.text,
        strategy="rag",
        sources=sources,
        timings={"embed": hits.embed_s, "search": hits.search_s, "prefill": out.prefill_s,
                 "generate": out.decode_s, "ttft": hits.embed_s + hits.search_s + out.ttft_s,
                 "total": time.perf_counter() - t0},
        tokens={"prompt": out.prompt_tokens, "completion": out.completion_tokens},
        calls=1,
        details={"top_k": cfg.top_k, "finish_reason": out.finish_reason},
    )
