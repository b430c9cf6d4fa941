"""Paired comparison of two strategies on the same questions: mean difference, bootstrap interval, wins / losses.

Two rows of an eval table differ by a few points on a few dozen questions; whether that is a difference or noise is
what a reader of the table must know before choosing. Each question is answered by both, so the per-question
differences are paired: their mean, and the 2.5–97.5 percentiles of the means of ``resamples`` bootstrap resamples
(seeded: the same records give the same interval), say how sure the difference is.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Paired:
    """``after − before`` over ``n`` paired questions, in the metric's units."""

    n: int
    diff: float
    ci_low: float
    ci_high: float
    wins: int
    losses: int
    ties: int

    def as_dict(self, prefix: str = "") -> dict:
        return {f"{prefix}{k}": v for k, v in asdict(self).items()}

    def __str__(self) -> str:
        return f"{self.diff:+.1f} [{self.ci_low:+.1f}, {self.ci_high:+.1f}], {self.wins} / {self.losses} / {self.ties}"


def paired(before: list[float], after: list[float], resamples: int = 10_000, seed: int = 0) -> Paired:
    """Compare per-question scores ``before[i]`` and ``after[i]`` of the same questions."""
    if len(before) != len(after) or not before:
        raise ValueError(f"paired() needs two equally long, non-empty lists, got {len(before)} and {len(after)}")
    diffs = [b - a for a, b in zip(before, after, strict=True)]
    rng = random.Random(seed)
    n = len(diffs)
    means = sorted(sum(rng.choice(diffs) for _ in range(n)) / n for _ in range(resamples))
    return Paired(n=n, diff=sum(diffs) / n, ci_low=means[int(0.025 * resamples)],
                  ci_high=means[int(0.975 * resamples) - 1], wins=sum(d > 0 for d in diffs),
                  losses=sum(d < 0 for d in diffs), ties=sum(d == 0 for d in diffs))


def paired_rows(records: list[dict], metric: str = "f1", resamples: int = 10_000) -> dict[str, Paired]:
    """Every strategy (row) after the first against the first, on ``metric`` × 100, over the answerable questions
    both answered (matched by document and question id)."""
    order = list(dict.fromkeys(r["strategy"] for r in records))
    if len(order) < 2:
        return {}

    def scores(strategy: str) -> dict[tuple, float]:
        return {(r.get("document"), r["id"]): 100 * r["metrics"][metric] for r in records
                if r["strategy"] == strategy and r["metrics"].get(metric) is not None}

    base = scores(order[0])
    out = {}
    for strategy in order[1:]:
        other = scores(strategy)
        keys = [k for k in base if k in other]
        if keys:
            out[strategy] = paired([base[k] for k in keys], [other[k] for k in keys], resamples)
    return out
