"""``docqa bench rope``: perplexity of one fixed slice of text against the length of context before it.

Every row scores the same tokens: the last ``tail`` tokens (default 1 024) of a window of ``max(lengths)`` tokens.
A row of length L feeds the L − tail tokens just before that slice, then the slice. More context can only help a
method that works, so its curve falls or stays flat; a method that breaks past the trained window rises there.
(Scoring "the last 1 k of the first L tokens" instead, as docqa's earlier script did, scores different text at each
length, so its rows were not comparable.)

Each (sample, length, method) is one cell: a rope plan sized for L (:func:`docqa.rope.plan_for`), one chunked
forward, log-probabilities of the slice only (the length × vocabulary matrix never exists). Within the trained
window every method's plan is plain RoPE (and static and dynamic NTK sized for the same length coincide), so plans with
identical frequencies are computed once and shared (``reuse_identical``);
the test suite turns that off to show the equality numerically. Several samples take windows at evenly spaced
offsets of the text; the table reports the perplexity of their pooled slice tokens and the per-sample spread.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..index.versions import write_atomic
from ..rope import canonical_method, plan_for
from .common import BenchProgress, CellLog, fingerprint, fmt_len, plan_identity, probe_cost


@dataclass
class RopeBenchConfig:
    lengths: list[int]
    methods: list[str]
    tail: int = 1024  # tokens of the fixed final slice that is scored
    samples: int = 1  # windows at evenly spaced offsets of the text, averaged
    reuse_identical: bool = True  # compute identical plans (every method within the window) once
    fresh: bool = False  # ignore finished cells in the output folder


@dataclass
class RopeBenchResult:
    rows: list[dict[str, Any]]  # one per (length, method): ppl, spread, seconds
    computed: int  # cells computed in this run
    reused: int  # cells taken from an earlier run (resume) or shared with an identical plan
    files: list[Path] = field(default_factory=list)
    trained_window: int = 0


def _check(gen, cfg: RopeBenchConfig, n_ids: int) -> None:
    if not hasattr(gen, "tail_logprobs"):
        raise ConfigError(f"The '{gen.spec}' backend returns no log-probabilities of given text, which perplexity "
                          f"needs; run docqa bench rope on the transformers backend (--model transformers:NAME; "
                          f"docqa bench needle works with any backend that generates).")
    for m in cfg.methods:
        canonical_method(m)
    if cfg.samples < 1:
        raise ConfigError(f"--samples must be at least 1, got {cfg.samples}.")
    if not 0 < cfg.tail < min(cfg.lengths):
        raise ConfigError(f"--tail {cfg.tail} must be shorter than the shortest length ({min(cfg.lengths)}).")
    if n_ids < max(cfg.lengths):
        raise ConfigError(f"The text has {n_ids:,} tokens; the longest length needs {max(cfg.lengths):,}. Give a "
                          f"longer --text (e.g. ../shared/data/haystack) or shorter --lengths.")


def run_rope(gen, text: str, cfg: RopeBenchConfig, out: Path, *, text_desc: str = "",
             progress: BenchProgress | None = None) -> RopeBenchResult:
    """Run (or resume) the grid and write ``cells.jsonl``, ``results.json``, ``results.csv``, ``ppl_vs_length.png``
    into ``out``."""
    progress = progress or BenchProgress()
    ids = gen.encode(text)
    _check(gen, cfg, len(ids))
    rope_model = gen.rope_model()
    window = max(cfg.lengths)
    span = len(ids) - window
    offsets = [0] if cfg.samples == 1 else [round(i * span / (cfg.samples - 1)) for i in range(cfg.samples)]
    header = {"benchmark": "rope", "model": gen.spec, "text": fingerprint(ids), "tokens": len(ids), "tail": cfg.tail,
              "window": window, "offsets": offsets, "trained_window": rope_model.trained_window}
    log = CellLog(out, header, fresh=cfg.fresh)

    plans = {}  # (sample, length, method) → plan
    todo = []
    seen_sig: dict[tuple, tuple] = {}
    for s in range(len(offsets)):
        for length in cfg.lengths:
            for method in cfg.methods:
                name = canonical_method(method)
                plan = plan_for(name, rope_model, length)
                plans[(s, length, name)] = plan
                sig = (s, length, *plan_identity(plan, rope_model))
                key = f"s{s}:L{length}:{name}"
                if key in log:
                    seen_sig.setdefault(sig, key)  # a finished cell still serves identical plans when resumed
                    continue
                if cfg.reuse_identical and sig in seen_sig:
                    todo.append((key, s, length, name, plan, seen_sig[sig]))
                    continue
                seen_sig[sig] = key
                todo.append((key, s, length, name, plan, None))
    to_compute = [t for t in todo if t[5] is None]
    cost = None
    if to_compute:
        probe_ids = ids[: min(2048, len(ids))]
        cost = probe_cost(lambda n: gen.tail_logprobs(probe_ids[:n], plan_for("none", rope_model, n), 1),
                          small=min(512, len(probe_ids) // 4), large=len(probe_ids))
    work = {t[0]: (cost.seconds(t[2]) if cost else float(t[2])) for t in to_compute}
    progress.start(len(to_compute), sum(work.values()), sum(work.values()) if cost else None)
    computed = 0
    for key, s, length, name, plan, same_as in todo:
        if same_as is not None:
            continue
        label = f"L={fmt_len(length)} {name}" + (f" sample {s + 1}" if len(offsets) > 1 else "")
        progress.cell(label, work[key])
        seq = ids[offsets[s] : offsets[s] + window][window - length :]
        t0 = time.perf_counter()
        logp = gen.tail_logprobs(seq, plan, cfg.tail, progress=progress.tokens)
        dt = time.perf_counter() - t0
        nll = float(-logp.double().mean())
        log.add({"key": key, "sample": s, "length": length, "method": name, "nll": nll, "ppl": math.exp(nll),
                 "seconds": dt, "tokens_per_s": length / dt, "plan": plan.to_dict()})
        computed += 1
        progress.done(label, f"ppl {math.exp(nll):.2f}")
    for key, _, _, name, plan, same_as in todo:  # shared plans: the same numbers, said so
        if same_as is not None:
            log.add({**log.cells[same_as], "key": key, "method": name, "same_as": same_as, "seconds": 0.0,
                     "plan": plan.to_dict()})
    rows = summarize(log.cells, cfg, len(offsets))
    files = write(out, rows, log, header, text_desc, rope_model.trained_window, gen)
    return RopeBenchResult(rows, computed, len(plans) - computed, files, rope_model.trained_window)


def summarize(cells: dict[str, dict], cfg: RopeBenchConfig, samples: int) -> list[dict[str, Any]]:
    """One row per (length, method): perplexity over the pooled slice tokens of every sample, and the spread."""
    rows = []
    for length in cfg.lengths:
        for method in cfg.methods:
            name = canonical_method(method)
            got = [cells.get(f"s{s}:L{length}:{name}") for s in range(samples)]
            got = [c for c in got if c]
            if not got:
                continue
            ppls = [c["ppl"] for c in got]
            rows.append({"length": length, "method": name, "ppl": math.exp(sum(c["nll"] for c in got) / len(got)),
                         "ppl_min": min(ppls), "ppl_max": max(ppls), "samples": len(got),
                         "seconds": sum(c["seconds"] for c in got), "factor": got[0]["plan"]["factor"],
                         "shared": all("same_as" in c for c in got)})
    return rows


def write(out: Path, rows, log: CellLog, header, text_desc: str, trained: int, gen) -> list[Path]:
    from . import plots

    out.mkdir(parents=True, exist_ok=True)
    meta = {**header, "text_desc": text_desc, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(gen)}
    write_atomic(out / "results.json", json.dumps({"meta": meta, "rows": rows, "cells": list(log.cells.values())},
                                                 indent=2))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["length", "method", "ppl", "ppl_min", "ppl_max", "samples", "seconds",
                                        "factor", "shared"])
    w.writeheader()
    w.writerows(rows)
    write_atomic(out / "results.csv", buf.getvalue())
    png = plots.ppl_vs_length(out / "ppl_vs_length.png", rows, trained, f"{gen.spec}: perplexity of a fixed "
                              f"{header['tail']}-token slice")
    return [out / "results.json", out / "results.csv", png, log.path]


def machine(gen) -> dict[str, Any]:
    """Where the bench ran (:func:`docqa.environment.describe`)."""
    from ..environment import describe

    return describe(gen)
