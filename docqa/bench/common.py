"""What both benchmarks share: grid parsing, the text to read, the log of finished cells (resume), progress, and
a time estimate made before a long grid starts."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import ConfigError
from ..lists import split_list

SMOKE_TEXT = Path(__file__).with_name("smoke_text.txt")  # the example company's documents, ~25 k SmolLM2 tokens


def parse_lengths(spec: str) -> list[int]:
    """'2k,4k,8192,32K' → [2048, 4096, 8192, 32768] (k = 1 024), sorted and unique."""
    out = []
    for part in split_list(spec, "--lengths", example="2k,4k,8192"):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kK]?)\s*", part)
        if not m:
            raise ConfigError(f"Bad length '{part}' in '{spec}'. Use numbers of tokens like 2k,4k,8192.")
        n = int(float(m.group(1)) * (1024 if m.group(2) else 1))
        if n < 2:
            raise ConfigError(f"Length '{part}' is too short; use at least a few hundred tokens.")
        out.append(n)
    return sorted(set(out))


def parse_fractions(spec: str) -> list[float]:
    """Depths in percent, '0,25,50,75,100' → [0.0, 0.25, 0.5, 0.75, 1.0]."""
    try:
        vals = sorted({float(x) / 100 for x in split_list(spec, "--depths", example="0,25,50,75,100")})
    except ValueError as e:
        raise ConfigError(f"Bad depths '{spec}'. Use percentages like 0,25,50,75,100.") from e
    if not vals or vals[0] < 0 or vals[-1] > 1:
        raise ConfigError(f"Depths must lie in 0..100, got '{spec}'.")
    return vals


def read_text(path: Path | None) -> tuple[str, str]:
    """(text, description) of a text file, or of every .txt/.md file of a folder in name order; the shipped smoke
    text when ``path`` is None."""
    if path is None:
        return SMOKE_TEXT.read_text(), "docqa's smoke text (the example company's documents)"
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (".txt", ".md"))
        if not files:
            raise ConfigError(f"No .txt or .md files under '{path}'. Give a text file or a folder of them.")
    elif path.is_file():
        files = [path]
    else:
        raise ConfigError(f"--text '{path}' does not exist. Give a text file or a folder of .txt/.md files.")
    try:
        text = "\n\n".join(f.read_text(encoding="utf-8", errors="replace").strip() for f in files)
    except OSError as e:
        raise ConfigError(f"Cannot read --text '{path}' ({e.strerror}).") from e
    return text, f"{path} ({len(files)} file{'s' * (len(files) != 1)})"


def fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class CellRecord(BaseModel):
    """One finished cell in ``cells.jsonl``; the fields beyond ``key`` depend on the benchmark."""

    model_config = ConfigDict(extra="allow")

    key: str
    seconds: float


class CellLog:
    """Finished cells, appended one JSON line each as soon as they exist, so an interrupted run resumes where it
    stopped. The first line records the settings the cells depend on; a log made with other settings is refused
    (``fresh=True`` starts over)."""

    def __init__(self, folder: Path, header: dict[str, Any], fresh: bool = False):
        self.path = Path(folder) / "cells.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.header = json.loads(json.dumps(header, default=str))
        self.cells: dict[str, dict[str, Any]] = {}
        if self.path.is_file() and not fresh:
            lines = self.path.read_bytes().decode("utf-8", "replace").split("\n")
            try:
                before = json.loads(lines[0]).get("header", {})
            except (ValueError, AttributeError):
                before = None
            if before != self.header:
                differ = sorted(k for k in set(before or {}) | set(self.header)
                                if (before or {}).get(k) != self.header.get(k)) if isinstance(before, dict) else []
                raise ConfigError(f"{self.path} holds cells of a run with other settings "
                                  f"({', '.join(differ) or 'unreadable header'}). Use another --out, or --fresh to "
                                  f"start over there.")
            for line in lines[1:]:
                try:
                    rec = CellRecord.model_validate(json.loads(line)).model_dump()
                except (ValueError, RecursionError, ValidationError):
                    continue  # a line torn by an interruption
                self.cells[rec["key"]] = rec
        self._rewrite()

    def _rewrite(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        tmp.write_text("".join(json.dumps(x) + "\n" for x in [{"header": self.header}, *self.cells.values()]))
        os.replace(tmp, self.path)

    def __contains__(self, key: str) -> bool:
        return key in self.cells

    def add(self, record: dict[str, Any]) -> None:
        self.cells[record["key"]] = record
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


class BenchProgress:
    """Callbacks a terminal uses to draw progress; the defaults do nothing."""

    def start(self, cells: int, work: float, estimate_s: float | None) -> None: ...
    def cell(self, label: str, work: float) -> None: ...
    def tokens(self, done: int, total: int) -> None: ...
    def done(self, label: str, result: str) -> None: ...


@dataclass
class CostModel:
    """Seconds for a forward over L tokens ≈ a·L + b·L² (linear layers + attention), from two timed probes."""

    a: float
    b: float

    def seconds(self, length: int) -> float:
        return self.a * length + self.b * length * length


def probe_cost(run: Callable[[int], None], small: int = 512, large: int = 2048) -> CostModel:
    """Time ``run(small)`` and ``run(large)`` (each a forward over that many tokens) and fit :class:`CostModel`."""
    times = []
    for n in (small, large):
        t0 = time.perf_counter()
        run(n)
        times.append(time.perf_counter() - t0)
    # Solve a·n + b·n² = t for the two probes; keep both terms non-negative (timing noise on fast devices).
    (n1, t1), (n2, t2) = (small, times[0]), (large, times[1])
    b = max(0.0, (t2 / n2 - t1 / n1) / (n2 - n1))
    a = max(1e-9, t1 / n1 - b * n1)
    return CostModel(a, b)


def fmt_len(n: int) -> str:
    return f"{n // 1024}k" if n % 1024 == 0 else str(n)


def plan_identity(plan, rope_model) -> tuple:
    """What a rope plan does, not what it is called: the hash of its inverse frequencies and its attention factor.
    Two methods with the same identity compute the same numbers (every method within the trained window; static and
    dynamic NTK sized for the same length), so a grid computes one of them and shares the result."""
    return (hashlib.sha256(repr(rope_model.rotation(plan)).encode()).hexdigest()[:16],)
