"""Paired comparison of two strategies on the same questions: mean difference, bootstrap interval, wins / losses.

Two rows of an eval table differ by a few points on a few dozen questions; whether that is a difference or noise is
what a reader of the table must know before choosing. Each question is answered by both, so the per-question
differences are paired: their mean, and the 2.5–97.5 percentiles of the means of ``resamples`` bootstrap resamples
(seeded: the same records give the same interval), say how sure the difference is.
"""

from __future__ import annotations

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
    import numpy as np

    diffs = np.asarray(after, dtype=float) - np.asarray(before, dtype=float)
    n = len(diffs)
    # Vectorised: 10 000 resamples of 500 questions take ~0.1 s here, against ~3 s drawing one index at a time.
    # Resamples are drawn in blocks so memory stays bounded for large question sets.
    rng = np.random.default_rng(seed)
    block = max(1, 2_000_000 // n)
    means = np.concatenate([diffs[rng.integers(0, n, size=(min(block, resamples - i), n))].mean(axis=1)
                            for i in range(0, resamples, block)])
    means.sort()
    return Paired(n=n, diff=float(diffs.mean()), ci_low=float(means[int(0.025 * resamples)]),
                  ci_high=float(means[int(0.975 * resamples) - 1]), wins=int((diffs > 0).sum()),
                  losses=int((diffs < 0).sum()), ties=int((diffs == 0).sum()))


def paired_rows(records: list[dict], metric: str = "score", resamples: int = 10_000,
                base: str | None = None) -> dict[str, Paired]:
    """Every other strategy (row) against ``base`` (default: the first), on ``metric`` × 100 (default: each
    question's own metric, see :func:`docqa.eval.metrics.primary`), over the answerable questions both answered
    (matched by document and question id)."""
    from .metrics import primary

    def value(r: dict) -> float | None:
        return primary(r["metrics"]) if metric == "score" else r["metrics"].get(metric)

    order = list(dict.fromkeys(r["strategy"] for r in records))
    if len(order) < 2:
        return {}
    if base is not None:
        order = [base] + [s for s in order if s != base]

    def scores(strategy: str) -> dict[tuple, float]:
        return {(r.get("document"), r["id"]): 100 * value(r) for r in records
                if r["strategy"] == strategy and value(r) is not None}

    base = scores(order[0])
    out = {}
    for strategy in order[1:]:
        other = scores(strategy)
        keys = [k for k in base if k in other]
        if keys:
            out[strategy] = paired([base[k] for k in keys], [other[k] for k in keys], resamples)
    return out
