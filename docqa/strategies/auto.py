"""Auto: Self-Route (Li et al. 2024, "Retrieval Augmented Generation or Long-Context LLMs?").

Self-Route asks the model whether the retrieved passages answer the question and routes to long-context when it
says no. A 135 M model almost never says no in words (0 declines in 41 questions, issue #11), so docqa reads the
answer to that question from the model's log-probabilities instead: after the RAG prompt, the probability the model
gives "I don't know." as its whole answer, in one short forward over the prompt's cache (for a served model, from
the server's prompt log-probabilities). A question is routed when that probability reaches ``--route-threshold``, or
when the answer declines in words (the refusal table of docqa/prompts.py).

The default threshold is per model, by measurement (benchmarks/routing.py): for the embedded SmolLM2-135M the signal
barely tells a wrong RAG answer from a right one on examples/ (AUC 0.545; its best threshold would send 21 of 35
questions to long-context, which answers worse than RAG on this model), so by default only worded declines route.
A model whose signal separates (AUC well above 0.5) gets its threshold from that script.

The default reader (Qwen2.5-Coder-1.5B) was measured the same way on two L-Eval sets, every threshold scored from one
run's records (benchmarks/route_sweep.py): its probability separates the questions long-context answers better only
weakly on financial QA (AUC 0.567) and the wrong way round on scientific QA (0.294 on its first 60 questions, 0.33 on
100, 0.35 on all 160); the threshold that lifts the first (+4.7 F1 over rag at 0.002) moves the second by −0.6 at
1.8x long-context's cost (first 60 questions; +0.4 at 1.8x on all 160). No threshold helps on both, so it too routes
on words only.

One route needs no signal: where the corpus's long-context prefix is already kept (a question routed before in this
process, long-context asked before, or a prefix saved with ``--cache-prefix``), auto answers with long-context at
once. With the prefix kept, a long-context question costs its question and answer only, less than rag's own prefill
of retrieved passages (the 1.5 B reader, one machine: 3.2 s against 4.4 s a question on financial QA, a median of
1.1 s against 3.1 s on scientific QA), and long-context answered both sets better than rag (+3.3 and +5.5 F1, paired;
benchmarks/RESULTS.md, "Every row on one machine").

Nor does a question about the documents as a whole ("Summarize the report.", "What are the main points of the
call?"; the cue: docqa/strategies/whole.py): retrieval finds the passages most like a question, and a request for a
summary is like none in particular, so rag summarized whichever four chunks came first. Such a question is read by
long-context at once, over the documents retrieval ranks first that fit ``whole_tokens`` (8 192 by default,
unstretched), in a paragraph where the sentence style was asked; rag answers it only where not even the first document
fits. Measured with the 1.5 B reader on both L-Eval sets' documents (benchmarks/whole_questions.py, RESULTS.md "A
summary asked for"): none of their 252 questions is routed this way, and asked for a summary or the main points, the
answers held more of each document's reference facts.
"""

from __future__ import annotations

import dataclasses
import time

from ..corpus import Corpus
from ..prompts import NO_ANSWER, is_refusal
from ..records import Answer
from . import long_context, rag
from .base import AskConfig, retrieval_query
from .second_look import joined, read_whole
from .whole import whole_cue

# Default --route-threshold: None routes on worded declines only (the embedded model's signal is uninformative, see
# the module docstring), and the probability is not computed.
DECLINE_P: float | None = None
# The route of a question answered from an already prefilled corpus (see ask).
KEPT_ROUTE = "long-context (prefix kept)"
# The route of a question about the documents as a whole (docqa/strategies/whole.py), with the cue that marked it.
WHOLE_ROUTE = "long-context (whole-document question: {cue})"
# A whole-document question asked in the one-sentence style is answered in a paragraph: one short sentence cannot
# summarize a document. Room for it: a paragraph of two to four sentences is ~60-150 tokens with the 1.5 B reader.
WHOLE_STYLE, WHOLE_MIN_TOKENS = "paragraph", 192


def ask(corpus: Corpus, question: str, cfg: AskConfig) -> Answer:
    """Auto (Self-Route): answer with RAG, whose prompt lets the model decline when the retrieved passages do not
    hold the answer; only when it declines, answer again with long-context. Most questions cost one cheap RAG call;
    the hard ones get the whole corpus. When the corpus does not fit the long-context limit, the RAG answer stands.
    Where the corpus's long-context prefix is already kept, long-context answers at once (route
    :data:`KEPT_ROUTE`)."""
    t0 = time.perf_counter()
    cue = whole_cue(retrieval_query(question, cfg.instruction)) if cfg.whole_tokens else None
    # A whole-document question is answered in a paragraph wherever long-context answers it (a kept prefix too).
    wide = cfg if cue is None or cfg.style != "sentence" else dataclasses.replace(
        cfg, style=WHOLE_STYLE, max_new_tokens=max(cfg.max_new_tokens, WHOLE_MIN_TOKENS))
    kept = long_context.kept_prefix(corpus, question, wide)
    if kept is not None:
        # The whole corpus is already prefilled (an earlier routed question, long-context asked before in this
        # process, or a prefix saved with --cache-prefix): reading it is then both cheaper and more accurate than
        # rag (module docstring), so rag is not asked.
        final = long_context.answer(corpus, kept, wide, t0)
        return dataclasses.replace(final, strategy="auto", details={**final.details, "route": KEPT_ROUTE,
                                                                    "rag_answer": None, "decline_p": None})
    skipped = None
    if cue is not None:
        # A summary, the main points, what it is about: like no passage in particular, so rag would summarize the
        # four chunks it happened to retrieve. Read the documents it is about instead, within whole_tokens.
        # Never stretched: within the trained window a model reads as it was trained (a 4 k model reads 4 k).
        limit = min(cfg.whole_tokens, corpus.generator().trained_window)
        whole, how = read_whole(corpus, question, wide, limit=limit, best_first=True)
        if whole is not None:
            return dataclasses.replace(whole, strategy="auto", details={
                **whole.details, "route": WHOLE_ROUTE.format(cue=cue), "rag_answer": None, "decline_p": None})
        skipped = f"whole-document question ({cue}), {how}"
    threshold = DECLINE_P if cfg.route_threshold is None else cfg.route_threshold
    # The probability is read only when a threshold uses it: a served model computes it with a second request that
    # evaluates the whole prompt with log-probabilities, which llama-cpp-python does token by token.
    first = rag.ask_many(corpus, [question], cfg, 1, score=NO_ANSWER if threshold is not None else None)[0]
    route, final = ("rag" if skipped is None else f"rag ({skipped})"), None
    decline_p = first.details.get("decline_p")
    if skipped is None and (is_refusal(first.text) or (None not in (decline_p, threshold) and decline_p >= threshold)):
        final, how = read_whole(corpus, question, cfg)
        route = how if final is not None else f"rag ({how})"
    timings, tokens, calls = joined(first, final, "rag", t0)
    final = final or first
    return Answer(
        text=final.text,
        strategy="auto",
        sources=final.sources,
        timings=timings,
        tokens=tokens,
        calls=calls,
        details={"route": route, "rag_answer": first.text, "decline_p": decline_p,
                 "retriever": first.details.get("retriever"),
                 **({"rope": final.details.get("rope")} if final is not first else {})},
    )
