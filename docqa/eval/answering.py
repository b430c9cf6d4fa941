"""One question through one strategy, as a scored ``results.jsonl`` record: the answer, its metrics, its cost
(latency, tokens, calls, peak memory), what the strategy read (passages for the report, the chunks retrieval ranked)
and, for a question that got no answer, an error record scored as a wrong answer or not at all. Split from
:mod:`.runner`, which orders, batches, resumes and writes these records (and re-exports ``score``,
``length_hint``, ``error_record`` and ``SERVER_ERRORS`` for the scripts that import them from there).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import DocQAError
from ..prompts import is_refusal
from .metrics import KIND_METRICS, METRICS, recall_at_k
from .questions import Question


def peak_rss_reset() -> None:
    """Reset this process's peak-RSS counter (Linux), so the next reading covers one answer."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_cuda_reset() -> None:
    """Reset CUDA's peak-memory counters on every GPU, when torch is loaded and a GPU is in use."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        for d in range(torch.cuda.device_count()):
            torch.cuda.reset_peak_memory_stats(d)


def peak_cuda_mb() -> float:
    """Peak CUDA memory allocated since the last reset, summed over GPUs (a model spread with device_map); NaN
    without a GPU in use."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return float("nan")
    return sum(torch.cuda.max_memory_allocated(d) for d in range(torch.cuda.device_count())) / 2**20


def peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def score(q: Question, answer_text: str, used_sources: list[str]) -> dict[str, float | None]:
    """Every metric of one answer: answer metrics on answerable questions, refusal on the others. ``score`` is the
    question's own metric (token F1, or choice for multiple choice), the one its set is compared on; a metric of one
    kind of question (the option metrics, true_false) is computed only for questions of that kind."""
    answerable = bool(q.answers)
    metric = q.metric or "f1"
    out: dict[str, float | None] = {
        name: (METRICS.get(name)(answer_text, q.answers)
               if answerable and KIND_METRICS.get(name, metric) == metric else None)
        for name in METRICS.names()}
    out["score"] = out[metric]
    out["refusal"] = float(is_refusal(answer_text)) if not answerable else None
    out["false_refusal"] = float(is_refusal(answer_text)) if answerable else None
    r = recall_at_k(used_sources, q.sources) if q.sources else None
    out["recall_at_k"] = None if r is None or math.isnan(r) else r
    return out


# Errors of the model server, not of the strategy (a cut answer, a server gone, a refusal after every retry): such a
# question was not answered at all, so it is left out of every score (counted apart as server_errors), where a
# strategy's own failure (a corpus too long for long-context, a budget exceeded) scores as a wrong answer.
SERVER_ERRORS = frozenset({"ServerError", "ServerUnreachable", "AnswerCut"})


def error_record(q: Question, strategy: str, error: str, error_type: str) -> dict:
    """The record of a question that got no answer, kept out of latency statistics: scored as a wrong answer when the
    strategy failed, not scored at all when the server did (:data:`SERVER_ERRORS`)."""
    metrics = score(q, "", [])
    if error_type in SERVER_ERRORS:
        metrics = dict.fromkeys(metrics)
    return {"id": q.id, "strategy": strategy, "question": q.question, "answer": "", "references": q.answers,
            "gold_sources": q.sources, "sources": [], "metrics": metrics, "latency_s": 0.0, "ttft_s": 0.0,
            "prompt_tokens": 0, "completion_tokens": 0, "calls": 0, "peak_rss_mb": float("nan"),
            "peak_cuda_mb": float("nan"), "route": None, "decline_p": None, "rag_answer": None,
            "chain_answer": None, "long_context_s": None,
            "rope": None, "error": error, "error_type": error_type, "document": q.document, "metric": q.metric or "f1"}


def length_hint(q: Question) -> int | None:
    """The answer length L-Eval's protocol asks for: the reference's word count, for free-text questions scored by
    F1 or ROUGE (multiple choice and exact-match questions get none, as in L-Eval). Not for references of a few
    words, which are asked in the short style instead (docqa/eval/runner.py ``question_style``, in a set of longer
    answers too): asked "around 2 words", the embedded model answered with the sentence itself ("The suggested output
    length is 2 words."), and on examples/ a hint for every question cost −5.7 F1 [−11.5, −0.3]; with the 1.5 B
    reader, the short style beat the hint on rag (+9.7 [+2.9, +17.1]) and tied on long-context (benchmarks/RESULTS.md,
    "Short references")."""
    from ..prompts import SHORT_MAX_WORDS

    if not q.answers or q.metric not in ("f1", "rouge_l"):
        return None
    n = len(q.answers[0].split())
    return n if n > SHORT_MAX_WORDS else None


def _with_hints(options: dict[str, Any], hints: list[int | None]) -> dict[str, Any]:
    """Options for questions asked for ``hints`` words: room for the longest answer asked for (~1.3 tokens a word,
    doubled for headroom), never less than the run's own budget."""
    from ..strategies.base import AskConfig

    longest = max((n for n in hints if n), default=0)
    budget = max(options.get("max_new_tokens") or AskConfig.max_new_tokens, 2 * longest)
    return {**options, "max_new_tokens": budget}


def answer_many(index, qs: list[Question], strategy: str, options: dict[str, Any], slots: int,
                hints: bool = False) -> list[dict]:
    """Several questions through a batching strategy in one batched generation, as records; if the batch fails
    (a question the strategy refuses, memory), each question is asked alone so that only its own record is an
    error. A record's latency is its share of the batch (see the strategy's ``ask_many``)."""
    peak_rss_reset()
    peak_cuda_reset()
    lengths = [length_hint(q) for q in qs] if hints else None
    try:
        if lengths is not None:
            answers = index.ask_many([q.question for q in qs], strategy, batch_size=slots, length_hints=lengths,
                                     **_with_hints(options, lengths))
        else:
            answers = index.ask_many([q.question for q in qs], strategy, batch_size=slots, **options)
    except DocQAError:
        return [answer_one(index, q, strategy, options, hints) for q in qs]
    peak = peak_rss_mb(), peak_cuda_mb()
    return [_record(q, strategy, a, 0.0, peak) for q, a in zip(qs, answers, strict=True)]


def answer_one(index, q: Question, strategy: str, options: dict[str, Any], hints: bool = False) -> dict:
    """One question through one strategy, as a results.jsonl record."""
    peak_rss_reset()
    peak_cuda_reset()
    n = length_hint(q) if hints else None
    if n:
        options = {**_with_hints(options, [n]), "length_hint": n}
    t0 = time.perf_counter()
    try:
        ans = index.ask(q.question, strategy, **options)
    except DocQAError as e:  # e.g. a corpus too long for long-context: recorded, scored as a wrong answer
        return error_record(q, strategy, str(e), type(e).__name__)
    return _record(q, strategy, ans, t0, (peak_rss_mb(), peak_cuda_mb()))


def _record(q: Question, strategy: str, ans, t0: float, peak: tuple[float, float]) -> dict:
    text, sources = ans.text, [s.file for s in ans.sources]
    read_chunks = [s.chunk_id for s in ans.sources if s.chunk_id is not None]
    timings, tokens, calls, details = ans.timings, ans.tokens, ans.calls, ans.details
    latency = timings.get("total", time.perf_counter() - t0)
    return {
        "id": q.id, "strategy": strategy, "question": q.question, "answer": text, "references": q.answers,
        "gold_sources": q.sources, "sources": sources, "metrics": score(q, text, sources), "metric": q.metric or "f1",
        "latency_s": latency, "ttft_s": timings.get("ttft", latency), "prompt_tokens": tokens.get("prompt", 0),
        "completion_tokens": tokens.get("completion", 0), "calls": calls, "peak_rss_mb": peak[0],
        "peak_cuda_mb": peak[1], "batch": details.get("batch", 1), "finish_reason": details.get("finish_reason"),
        "cached_tokens": tokens.get("cached", 0), "route": details.get("route"), "rope": details.get("rope"),
        # auto: what its first (rag) step answered and the decline probability it read (None unless a threshold
        # asked for it), so that a route threshold can be chosen from one run's records (benchmarks/route_sweep.py).
        "decline_p": details.get("decline_p"), "rag_answer": details.get("rag_answer"),
        # summarize: what its chain answered where a second look was considered (docqa/strategies/second_look.py).
        "chain_answer": details.get("chain_answer"),
        # Seconds of the long-context call inside this answer (auto routed, summarize's second look), so that what
        # the second call cost can be told from the first step's.
        "long_context_s": timings.get("lc_total"),
        "error": None, "error_type": None, "document": q.document, "model": getattr(ans, "model", ""),
        "passages": passages(ans.sources, [text, *q.answers]),
        # The chunks a retrieval step ranked, best first (rag; auto when routed to rag; summarize's --map-top-k
        # selection): eval/retrieval.py scores them.
        "retrieved": read_chunks or list(details.get("retrieved") or []),
        "retriever": details.get("retriever"),  # dense, bm25 or hybrid, as the index or the options chose
        # What the model was given: those chunks (rag), or the files its sources name (long-context, summarize).
        "read": "chunks" if read_chunks else "files",
    }


PASSAGES_KEPT = 8  # per record: what the report shows of what the strategy read
PASSAGE_CHARS = 1200


def passages(sources, needles: list[str]) -> list[dict]:
    """What a strategy read, for the report (:mod:`docqa.eval.html_report`): up to :data:`PASSAGES_KEPT` passages,
    each cut to :data:`PASSAGE_CHARS` characters around where the answer's or a reference's words are densest (a
    long-context source is a whole document; the part that supports the answer is what a reader wants to see)."""
    from .metrics import tokens as normalize_tokens

    words = {w for n in needles for w in normalize_tokens(n) if len(w) > 2}
    out = []
    for s in list(sources)[:PASSAGES_KEPT]:
        text = s.text or ""
        start = 0
        if len(text) > PASSAGE_CHARS and words:
            step = PASSAGE_CHARS // 4
            best = -1
            for at in range(0, len(text) - PASSAGE_CHARS + step, step):
                hits = sum(1 for w in normalize_tokens(text[at: at + PASSAGE_CHARS]) if w in words)
                if hits > best:
                    best, start = hits, at
        out.append({"file": s.file, "location": s.location(), "score": s.score, "chunk_id": s.chunk_id, "start": start,
                    "text": text[start: start + PASSAGE_CHARS], "cut": len(text) > PASSAGE_CHARS})
    return out
