"""``docqa bench needle``: gkamradt's needle in a haystack, over context lengths × needle depths × rope methods.

A sentence (the needle) is placed at a depth of a haystack cut to the target length; the model is asked for it.
Two prompt forms, both scored in one pass over the haystack:

- **question**: docqa's long-context prompt — the context, then the question; the model must answer on its own.
- **passkey** (Mohtashami & Jaggi 2023): the same prompt with the assistant's turn already begun with the needle's
  own words ("The secret passcode for the archive room is"), so only retrieval is measured, not instruction
  following — a 135 M model misses every plain question past a few thousand tokens whatever the rope.

The two prompts share everything up to the assistant turn, so that prefix is prefilled once and both answers are
decoded from it (half the cost). A cell is found when the answer string appears in the model's output. Within the
trained window every method's plan is plain RoPE and the prompt is the same, so such cells are computed once and
shared. Works with any backend that generates; backends without prefix reuse prefill each form separately.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import prompts
from ..errors import ConfigError
from ..index.versions import write_atomic
from ..rope import canonical_method, plan_for
from .common import BenchProgress, CellLog, fingerprint, fmt_len, plan_identity, probe_cost

DEFAULT_NEEDLE = "The secret passcode for the archive room is 4817."
DEFAULT_QUESTION = "What is the secret passcode for the archive room?"
DEFAULT_ANSWER = "4817"
FORMS = ("question", "passkey")


@dataclass
class NeedleBenchConfig:
    lengths: list[int]
    depths: list[float]  # fractions of the haystack, 0.0 = start, 1.0 = end
    methods: list[str]
    forms: list[str] = field(default_factory=lambda: list(FORMS))
    needle: str = DEFAULT_NEEDLE
    question: str = DEFAULT_QUESTION
    answer: str = DEFAULT_ANSWER  # found = this string appears in the output (case-insensitive)
    answer_start: str | None = None  # passkey form's start of the answer; default: the needle up to the answer
    max_new_tokens: int = 16
    reuse_identical: bool = True
    fresh: bool = False

    def passkey_start(self) -> str:
        if self.answer_start is not None:
            return self.answer_start
        if self.answer not in self.needle:
            raise ConfigError(f"The answer '{self.answer}' is not in the needle, so the passkey form's answer start "
                              f"cannot be derived from it; give --answer-start, or --forms question.")
        return self.needle.split(self.answer, 1)[0].rstrip()


@dataclass
class NeedleBenchResult:
    cells: list[dict[str, Any]]
    rows: list[dict[str, Any]]  # one per (method, form): found / total, per length
    computed: int
    reused: int
    files: list[Path] = field(default_factory=list)
    trained_window: int = 0


def _place(body: str, needle: str, depth: float) -> str:
    """The haystack with the needle inserted at a sentence boundary near ``depth``."""
    at = int(len(body) * depth)
    if depth <= 0:
        cut = 0
    elif depth >= 1:
        cut = len(body)
    else:
        cut = body.rfind(". ", 0, at)
        cut = cut + 2 if cut >= 0 else at
    sep_before = "" if cut == 0 or body[cut - 1].isspace() else " "
    return f"{body[:cut]}{sep_before}{needle} {body[cut:]}".strip()


def build_prompts(gen, hay_ids: list[int], length: int, depth: float, cfg: NeedleBenchConfig) -> tuple[list[int],
                                                                                                       list[int]]:
    """(question-form ids, passkey-form ids) of about ``length`` tokens with the answer budget."""
    question = prompts.question_block(cfg.question)
    fixed = len(gen.encode(gen.chat(prompts.SYSTEM, f"Context:\n{cfg.needle}\n\n{question}") + cfg.passkey_start()))
    room = length - fixed - cfg.max_new_tokens - 4
    if room < 16:
        raise ConfigError(f"Length {length} leaves no room for a haystack around the prompt ({fixed} tokens).")
    if room > len(hay_ids):
        raise ConfigError(f"The text has {len(hay_ids):,} tokens; length {length:,} needs {room:,}. Give a longer "
                          f"--text (e.g. ../shared/data/haystack) or shorter --lengths.")
    body = gen.decode(hay_ids[:room])
    user = f"Context:\n{_place(body, cfg.needle, depth)}\n\n{question}"
    chat = gen.chat(prompts.SYSTEM, user)
    return gen.encode(chat), gen.encode(chat + cfg.passkey_start())


def _answer(gen, ids_by_form: dict[str, list[int]], plan, max_new: int) -> dict[str, str]:
    """Decode every form, sharing the prefilled common prefix where the backend can keep one."""
    forms = list(ids_by_form)
    seqs = [ids_by_form[f] for f in forms]
    common = 0
    while all(common < len(s) - 1 for s in seqs) and len({s[common] for s in seqs}) == 1:
        common += 1
    out = {}
    if hasattr(gen, "prefill_prefix") and common > 0:
        state = gen.prefill_prefix(seqs[0][:common], plan)
        for f, s in zip(forms, seqs):
            out[f] = gen.generate(s[common:], max_new, prefix=state, stop=prompts.STOP).text
    else:
        for f, s in zip(forms, seqs):
            out[f] = gen.generate(s, max_new, rope=plan, stop=prompts.STOP).text
    return out


def run_needle(gen, text: str, cfg: NeedleBenchConfig, out: Path, *, text_desc: str = "",
               progress: BenchProgress | None = None) -> NeedleBenchResult:
    """Run (or resume) the grid; writes ``cells.jsonl``, ``results.json`` and ``needle_<method>.png`` in ``out``."""
    progress = progress or BenchProgress()
    forms = [f for f in FORMS if f in cfg.forms]
    if not forms or set(cfg.forms) - set(FORMS):
        raise ConfigError(f"--forms takes {', '.join(FORMS)} (comma-separated), got {','.join(cfg.forms)}.")
    methods = [canonical_method(m) for m in cfg.methods]
    if getattr(gen, "fixed_rope", False) and methods != ["none"]:
        raise ConfigError("A served model's rope is set when its server starts, not per request: run with --methods "
                          "none, once per server launch (e.g. relaunched with --rope-scaling yarn), each into its own "
                          "--out.")
    if "passkey" in forms:
        cfg.passkey_start()
    rope_model = gen.rope_model()
    hay_ids = gen.encode(text)
    header = {"benchmark": "needle", "model": gen.spec, "text": fingerprint(hay_ids), "needle": cfg.needle,
              "question": cfg.question, "answer": cfg.answer, "answer_start": cfg.answer_start,
              "max_new_tokens": cfg.max_new_tokens, "trained_window": rope_model.trained_window}
    log = CellLog(out, header, fresh=cfg.fresh)
    grid = [(length, depth) for length in cfg.lengths for depth in cfg.depths]
    build_prompts(gen, hay_ids, max(cfg.lengths), 0.0, cfg)  # a text too short is refused before any work
    todo = []  # (length, depth, method, plan, shared-with key or None)
    seen: dict[tuple, str] = {}
    for length, depth in grid:
        for method in methods:
            plan = plan_for(method, rope_model, length)
            keys = [f"L{length}:d{depth:g}:{method}:{f}" for f in forms]
            sig = (length, depth, *plan_identity(plan, rope_model))
            if all(k in log for k in keys):
                # A finished cell still serves identical plans: a resumed grid does not compute them again.
                seen.setdefault(sig, f"L{length}:d{depth:g}:{method}")
                continue
            todo.append((length, depth, method, plan, seen.get(sig) if cfg.reuse_identical else None))
            seen.setdefault(sig, f"L{length}:d{depth:g}:{method}")
    compute = [t for t in todo if t[4] is None]
    cost = None
    if compute:
        probe = hay_ids[: min(2048, len(hay_ids))]
        cost = probe_cost(lambda n: gen.generate(probe[:n], 1), small=min(512, len(probe) // 4), large=len(probe))
    weight = lambda n: cost.seconds(n) if cost else float(n)  # noqa: E731
    progress.start(len(compute), sum(weight(t[0]) for t in compute), sum(weight(t[0]) for t in compute)
                   if cost else None)
    computed = 0
    for length, depth, method, plan, same in todo:
        if same is not None:
            continue
        label = f"L={fmt_len(length)} depth {depth:.0%} {method}"
        progress.cell(label, weight(length))
        q_ids, p_ids = build_prompts(gen, hay_ids, length, depth, cfg)
        plan = plan_for(method, rope_model, len(p_ids) + cfg.max_new_tokens)
        t0 = time.perf_counter()
        texts = _answer(gen, {f: (q_ids if f == "question" else p_ids) for f in forms}, plan, cfg.max_new_tokens)
        dt = time.perf_counter() - t0
        for f in forms:
            log.add({"key": f"L{length}:d{depth:g}:{method}:{f}", "length": length, "depth": depth,
                     "method": method, "form": f, "found": cfg.answer.lower() in texts[f].lower(),
                     "output": texts[f], "prompt_tokens": len(q_ids if f == "question" else p_ids),
                     "seconds": dt / len(forms), "plan": plan.to_dict()})
        computed += 1
        progress.done(label, " ".join(f"{f}:{'found' if cfg.answer.lower() in texts[f].lower() else 'missed'}"
                                      for f in forms))
    for length, depth, method, _, same in todo:
        if same is not None:
            for f in forms:
                src = log.cells[f"{same}:{f}"]
                log.add({**src, "key": f"L{length}:d{depth:g}:{method}:{f}", "method": method,
                         "same_as": src["key"], "seconds": 0.0})
    cells = [c for c in log.cells.values() if c["method"] in methods and c["length"] in cfg.lengths
             and c["depth"] in cfg.depths and c["form"] in forms]
    rows = summarize(cells, methods, forms, cfg.lengths)
    files = _write(out, cells, rows, header, text_desc, methods, forms, cfg, rope_model.trained_window, gen)
    total = len(grid) * len(methods)
    return NeedleBenchResult(cells, rows, computed, total - computed, files, rope_model.trained_window)


def summarize(cells, methods, forms, lengths) -> list[dict[str, Any]]:
    rows = []
    for method in methods:
        for form in forms:
            cs = [c for c in cells if c["method"] == method and c["form"] == form]
            by_len = {fmt_len(n): f"{sum(c['found'] for c in cs if c['length'] == n)}/"
                                  f"{sum(1 for c in cs if c['length'] == n)}" for n in lengths}
            rows.append({"method": method, "form": form, "found": sum(c["found"] for c in cs), "cells": len(cs),
                         **by_len})
    return rows


def _write(out, cells, rows, header, text_desc, methods, forms, cfg, trained, gen) -> list[Path]:
    from . import plots
    from .rope_ppl import machine

    meta = {**header, "text_desc": text_desc, "lengths": cfg.lengths, "depths": cfg.depths, "forms": forms,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(gen)}
    write_atomic(out / "results.json", json.dumps({"meta": meta, "rows": rows, "cells": cells}, indent=2))
    files = [out / "results.json", out / "cells.jsonl"]
    for method in methods:
        files.append(plots.needle_heatmap(out / f"needle_{method}.png", cells, method, forms, cfg.lengths,
                                          cfg.depths, trained, f"{gen.spec}: needle, rope {method}"))
    return files
