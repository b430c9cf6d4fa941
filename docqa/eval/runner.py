"""Run questions through strategies and score every answer.

One record per (question, strategy) is appended to ``results.jsonl`` as soon as it exists, so an interrupted run
loses at most one answer and ``resume`` continues where it stopped, asking again the questions that ended in an
error, provided the model and options are the same (``run.json``). Strategies run one after another over all
questions, sharing the loaded models and the long-context prefix cache of each index.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict

from ..errors import ConfigError, DocQAError, first_line
from ..index.versions import write_atomic
from ..prompts import is_refusal
from .metrics import KIND_METRICS, METRICS, recall_at_k
from .questions import Question

ProgressFn = Callable[[int, int, str], None]  # (done, total, label)


@dataclass
class EvalConfig:
    strategies: list[str]
    out: Path | None = None  # folder for results.jsonl, summary.json/csv and the plot
    resume: bool = False  # skip (question, strategy) pairs already in out/results.jsonl
    options: dict[str, Any] = field(default_factory=dict)  # AskConfig options shared by every strategy
    # What must match for --resume to continue a run (model, options, question source); written to OUT/run.json.
    identity: dict[str, Any] = field(default_factory=dict)
    concurrency: int = 1  # questions in flight at once
    batch_size: int = 1  # questions answered in one batched generation (strategies in BATCHED; others one by one)
    # Ask each free-text question for an answer of about its reference's length (L-Eval's protocol; docqa.api.evaluate)
    length_hints: bool = False
    # Labels of the strategies whose style was chosen by eval (style auto): they ask a multiple-choice question in the
    # choice style whatever the set's style is (a mixed set answers each question in its own kind of answer).
    choice_auto: set[str] = field(default_factory=set)
    aborted: str | None = None  # set when the model server stopped answering: why the rest was not asked


class ResultRecord(BaseModel):
    """The fields of a results.jsonl record that a resumed run relies on (others are kept as they are)."""

    model_config = ConfigDict(extra="allow")

    id: str
    strategy: str
    answer: str
    metrics: dict[str, Optional[float]]
    latency_s: float
    ttft_s: float
    prompt_tokens: int
    completion_tokens: int
    calls: int
    error: Optional[str] = None


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


def load_done(path: Path) -> dict[tuple[str, str], dict]:
    """Complete records already in a results file, by (question id, strategy). Error records are left out, so a
    resumed run asks those questions again; a torn or invalid line (an interrupted write) is dropped."""
    done = {}
    if path.is_file():
        for line in path.read_bytes().decode("utf-8", "replace").split("\n"):
            try:
                rec = ResultRecord.model_validate(json.loads(line)).model_dump()
            except (ValueError, RecursionError):  # JSONDecodeError and ValidationError are ValueErrors
                continue
            if not rec.get("error"):
                done[(rec["id"], rec["strategy"])] = rec
    return done


# Identity fields that select how many questions a run asks. A resumed run may ask more of the same questions (--limit
# 60, then --limit 100 or none: only the new ones are asked); fewer would leave records in results.jsonl that its
# summary does not count, so that is refused like any other change.
GROWABLE = ("limit", "limit_docs")


def _grows(before: Any, now: Any) -> bool:
    """A selection ``now`` holds every question ``before`` did (None: all of them)."""
    return now is None or (before is not None and now >= before)


def check_identity(out: Path, identity: dict[str, Any], resume: bool) -> None:
    """Refuse to resume a run made with another model or other options (a larger ``--limit`` or ``--limit-docs``
    extends it); record this run's identity."""
    path = out / "run.json"
    wanted = json.loads(json.dumps(identity, default=str, sort_keys=True))
    if resume and path.is_file():
        try:
            before = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ConfigError(f"{path} is unreadable ({first_line(e)}); cannot tell what run to resume. Start a "
                              f"new run with another --out.") from e
        differ = sorted(k for k in set(before) | set(wanted) if before.get(k) != wanted.get(k)
                        and not (k in GROWABLE and _grows(before.get(k), wanted.get(k))))
        if differ:
            detail = "; ".join(f"{k}: {json.dumps(before.get(k))[:80]} then, {json.dumps(wanted.get(k))[:80]} now"
                               for k in differ)
            grow = " (a resumed run may ask more questions, not fewer)" if set(differ) & set(GROWABLE) else ""
            raise ConfigError(f"--resume: the run in {out} was made with other settings ({detail}){grow}. Use the "
                              f"same settings, or another --out for a new run.")
    write_atomic(path, json.dumps(wanted, indent=2, sort_keys=True))


def run(index_for: Callable[[Question], Any], questions: list[Question], cfg: EvalConfig,
        progress: ProgressFn | None = None) -> list[dict]:
    """Answer and score every (question, strategy) pair; returns all records (resumed ones included), in
    (strategy, question) order.

    With ``cfg.concurrency`` N > 1, N questions are in flight at once (a thread pool: a served model answers them in
    parallel; the in-process model serializes them behind its lock). Records are written in question order whatever
    order they finish in. When the model server stops answering (``ServerUnreachable`` three times in a row), the
    questions not yet asked are recorded as errors without asking, and ``cfg.aborted`` says why: ``--resume``
    completes them."""
    from ..strategies.variants import parse_variants

    variants = {v.label: v for v in parse_variants(cfg.strategies)}
    strategies = list(variants)
    results_path = cfg.out / "results.jsonl" if cfg.out else None
    done = load_done(results_path) if (results_path and cfg.resume) else {}
    if results_path:
        results_path.parent.mkdir(parents=True, exist_ok=True)
        check_identity(results_path.parent, cfg.identity, cfg.resume)
        # Start afresh, or keep exactly the complete records (a line torn by an interruption is dropped).
        # Atomic: killed while rewriting, a resumed run's finished records must not be lost.
        write_atomic(results_path, "".join(json.dumps(r) + "\n" for r in done.values()))
    pairs = [(strategy, q) for strategy in strategies for q in questions]
    total = len(pairs)
    slots: list[dict | None] = [done.get((q.id, s)) for s, q in pairs]
    finished = sum(r is not None for r in slots)
    if progress and finished:
        progress(finished, total, "resumed")
    written = 0
    lock = threading.Lock()
    unreachable = 0

    def flush() -> None:  # write the finished records that come next in question order
        nonlocal written
        while written < total and slots[written] is not None:
            if results_path and (pairs[written][1].id, pairs[written][0]) not in done:
                with open(results_path, "a") as f:
                    f.write(json.dumps(slots[written]) + "\n")
            written += 1

    started: set[tuple[str, int]] = set()

    def one(group: list[int]) -> None:
        nonlocal finished, unreachable
        strategy = pairs[group[0]][0]
        qs = [pairs[i][1] for i in group]
        index = None if cfg.aborted else index_for(qs[0])
        cold = False
        if index is not None:
            with lock:
                key = (strategy, id(index))
                if key not in started:
                    # A strategy's first question of an index starts cold: caches another strategy built (the
                    # long-context prefix that auto would reuse) are dropped, so costs do not depend on the order of
                    # --strategies. Loaded models stay: their load time is nobody's answer.
                    started.add(key)
                    cold = True
                    getattr(getattr(index, "corpus", None), "caches", {}).clear()
        if cfg.aborted:
            recs = [error_record(q, strategy, f"not asked: {cfg.aborted}", "ServerUnreachable") for q in qs]
        else:
            variant = variants[strategy]
            options = {**cfg.options, **variant.options}
            options["style"] = question_style(qs[0], strategy, options.get("style"), cfg.choice_auto)
            if len(group) == 1:
                recs = [answer_one(index_for(qs[0]), qs[0], variant.strategy, options, cfg.length_hints)]
            else:
                recs = answer_many(index_for(qs[0]), qs, variant.strategy, options, cfg.batch_size, cfg.length_hints)
            for rec in recs:  # records and tables name the variant (rag:top_k=16), and say how it was asked
                rec["strategy"] = strategy
                rec["style"] = options["style"]
        for k, rec in enumerate(recs):
            rec["cold"] = cold and k == 0
        with lock:
            for i, rec in zip(group, recs, strict=True):
                slots[i] = rec
                finished += 1
                unreachable = unreachable + 1 if rec.get("error_type") == "ServerUnreachable" else 0
                if unreachable >= 3 and not cfg.aborted:
                    cfg.aborted = rec["error"]
            flush()
        if progress:
            progress(finished, total, strategy)

    todo = [i for i, r in enumerate(slots) if r is None]
    if todo:
        warm_up(index_for(pairs[todo[0]][1]))
    groups = batch_groups(todo, pairs, index_for, cfg.batch_size, {k: v.strategy for k, v in variants.items()},
                          cfg.choice_auto)
    with lock:
        flush()
    if cfg.concurrency <= 1:
        for g in groups:
            one(g)
    else:
        with ThreadPoolExecutor(max_workers=cfg.concurrency) as pool:
            for f in [pool.submit(one, g) for g in groups]:
                f.result()
    return [r for r in slots if r is not None]


def warm_up(index) -> None:
    """Load the models (and run one tiny embedding and one one-token generation) before any question is timed: the
    first question of the first strategy paid ~4.6 s of loading here, which the cold column, p95 and the verdict then
    charged to that strategy alone. Loading time is nobody's answer. A model that cannot load fails here, once."""
    corpus = getattr(index, "corpus", None)
    if corpus is None:
        return
    corpus.embedder().embed(["warm-up"], kind="query")
    gen = corpus.generator()
    gen.generate(gen.chat("You are a helpful assistant.", "Hi"), 1)


GROUP_BATCHES = 4  # a group is this many batches: slots refill within it; an interruption loses at most one group


def question_style(q: Question, strategy: str, style: str | None, choice_auto: set[str]) -> str | None:
    """The style ``q`` is asked in by ``strategy``: choice for a multiple-choice question where eval chose the style
    (``choice_auto``), else the strategy's own."""
    return "choice" if strategy in choice_auto and q.metric == "choice" else style


def batch_groups(todo: list[int], pairs: list[tuple[str, Question]], index_for: Callable[[Question], Any],
                 batch_size: int, base: dict[str, str] | None = None,
                 choice_auto: set[str] | None = None) -> list[list[int]]:
    """Consecutive pairs answered together: same strategy, same index, same style, a strategy that batches, at most
    ``GROUP_BATCHES × batch_size`` of them (decoded ``batch_size`` at a time, continuously; records are written per
    group). Everything else is a group of one. ``base`` maps a variant's label to its strategy."""
    from ..strategies import BATCHED

    batched = set(BATCHED.names())
    groups: list[list[int]] = []
    for i in todo:
        strategy, q = pairs[i]
        if groups and batch_size > 1 and (base or {}).get(strategy, strategy) in batched:
            last = groups[-1]
            s0, q0 = pairs[last[0]]
            same_style = strategy not in (choice_auto or set()) or (q0.metric == "choice") == (q.metric == "choice")
            if s0 == strategy and len(last) < GROUP_BATCHES * batch_size and last[-1] == i - 1 \
                    and index_for(q0) is index_for(q) and same_style:
                last.append(i)
                continue
        groups.append([i])
    return groups


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
            "rope": None, "error": error, "error_type": error_type, "document": q.document, "metric": q.metric or "f1"}


def length_hint(q: Question) -> int | None:
    """The answer length L-Eval's protocol asks for: the reference's word count, for free-text questions scored by
    F1 or ROUGE (multiple choice and exact-match questions get none, as in L-Eval). Not for references of a few
    words, which the short style already asks for: asked "around 2 words", the embedded model answered with the
    sentence itself ("The suggested output length is 2 words."), and on examples/ a hint for every question cost
    −5.7 F1 [−11.5, −0.3] (benchmarks/RESULTS.md)."""
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
