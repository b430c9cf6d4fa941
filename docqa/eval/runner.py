"""Run questions through strategies and score every answer.

One record per (question, strategy) is appended to ``results.jsonl`` as soon as it exists, so an interrupted run
loses at most one answer and ``resume`` continues where it stopped, asking again the questions that ended in an
error, provided the model and options are the same (``run.json``). Strategies run one after another over all
questions, sharing the loaded models and the long-context prefix cache of each index.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict

from ..errors import ConfigError, first_line
from ..index.versions import write_atomic
from .answering import SERVER_ERRORS, answer_many, answer_one, error_record, length_hint, score
from .questions import Question

__all__ = ["SERVER_ERRORS", "EvalConfig", "ResultRecord", "answer_many", "answer_one", "check_identity",
           "error_record", "length_hint", "load_done", "run", "score"]

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
    # choice style whatever the set's style is, and with length hints a free-text question whose reference is a few
    # words in the short style (a mixed set answers each question in its own kind of answer: question_style).
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
            options["style"] = question_style(qs[0], strategy, options.get("style"), cfg.choice_auto,
                                              cfg.length_hints)
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
                          cfg.choice_auto, cfg.length_hints)
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


def question_style(q: Question, strategy: str, style: str | None, choice_auto: set[str],
                   hints: bool = False) -> str | None:
    """The style ``q`` is asked in by ``strategy``. Where eval chose the style (``choice_auto``): choice for a
    multiple-choice question; with length hints on (L-Eval's protocol: each question is told its reference's length),
    short for a free-text question whose reference is a few words (up to ``SHORT_MAX_WORDS``), which gets no hint
    (:func:`length_hint`): the short style is how it is told. Else the strategy's own.

    Why per question: scientific QA's set style is sentence (median reference 10 words) while 59 of its 160
    references are one to four words ("Yes", "English"); asked for a sentence, the 1.5 B reader answered "The tweets are
    in English." (F1 0.4 against "English"). Asked in the short style, rag rose from 14.2 to 29.2 and long-context from
    14.5 to 34.4 token F1 on those 59 (benchmarks/RESULTS.md, "Short references")."""
    if strategy not in choice_auto:
        return style
    if q.metric == "choice":
        return "choice"
    if hints and length_hint(q) is None and q.answers and q.metric in ("f1", "rouge_l"):
        return "short"
    return style


def batch_groups(todo: list[int], pairs: list[tuple[str, Question]], index_for: Callable[[Question], Any],
                 batch_size: int, base: dict[str, str] | None = None,
                 choice_auto: set[str] | None = None, hints: bool = False) -> list[list[int]]:
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
            same_style = len({question_style(x, strategy, None, choice_auto or set(), hints) for x in (q0, q)}) == 1
            if s0 == strategy and len(last) < GROUP_BATCHES * batch_size and last[-1] == i - 1 \
                    and index_for(q0) is index_for(q) and same_style:
                last.append(i)
                continue
        groups.append([i])
    return groups
