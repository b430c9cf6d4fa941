"""The verdict of an eval: which strategy to use on this corpus with this model, and how sure that is.

The rule: the most accurate row (its ``score``: token F1 on the answerable questions, or the question set's own metric
such as multiple-choice accuracy) and every row not distinguishable from it —
its paired 95 % bootstrap interval against the best includes 0 — are equally good answers to "which is most
accurate?"; of those, the cheapest (mean seconds per question, cold questions included, so a long-context prefill
counts) is the recommendation. Seconds within 10 % of the cheapest are one cost (timing noise); among rows of that
one cost the higher score wins, and fewer prompt tokens only between equal scores (auto that never routed is rag
plus a check): a row no cheaper than the best is never recommended over it. A row at least 1.5×
cheaper that is measurably worse is named as the trade-off, not recommended. With few questions the interval is wide
and many rows tie: the verdict says so rather than crowning noise. Where the most accurate row lost on cost only by
what it pays once an index (a long-context prefix), the verdict says from how many questions an index on it is the
cheaper: the set's questions per document are not the user's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .paired import Paired, paired_rows

# Half-width of a paired interval, in points of the score, past which a tie is reported as inconclusive rather than
# as a tie.
WIDE = 5.0
COST_TIE = 1.1  # seconds within this factor of each other are one cost: two runs of the same answers differ that much


@dataclass(frozen=True)
class Verdict:
    """``use`` is the recommended row; ``best`` the highest-scoring row; ``tied`` the rows not distinguishable from it
    (``best`` included); ``versus_best`` each other row's paired score difference from ``best``."""

    use: str
    best: str
    tied: list[str]
    score: dict[str, float]  # mean score × 100 per row
    seconds: dict[str, float]  # mean seconds per answered question per row
    tokens: dict[str, float] = field(default_factory=dict)  # mean prompt tokens per row
    versus_best: dict[str, Paired] = field(default_factory=dict)
    tradeoff: str | None = None  # a row ≥ 1.5× cheaper than ``use`` but measurably less accurate than ``best``
    # When ``best`` costs more a question than ``use`` only because of what it builds once per index (a long-context
    # prefix): (questions an index from which ``best`` is the cheaper, its one-time seconds, its later questions'
    # seconds, ``use``'s). None where that does not hold or the records do not say which questions were cold.
    break_even: tuple[int, float, float, float] | None = None
    label: str = "F1"  # the score's name in sentences

    @property
    def text(self) -> str:
        """One or two sentences a person can act on."""
        text = self._choice()
        wide = [p for name, p in self.versus_best.items() if name in self.tied and p.ci_high - p.ci_low > 2 * WIDE]
        if wide:  # a tie on a few questions is mostly ignorance: say how large a difference could hide in it
            p = max(wide, key=lambda p: p.ci_high - p.ci_low)
            text += (f" Caution: over {p.n} questions a difference as large as {-p.ci_low:.1f} {self.label} points "
                     f"could hide in a tie; more questions would narrow it.")
        if self.break_even is not None:
            n, once, later, use_later = self.break_even
            what = "its document prefix" if self.best.split(":")[0] == "long-context" else "what it builds first"
            text += (f" {self.best} pays {once:.0f} s once an index ({what}) and {later:.1f} s a later "
                     f"question against {self.use}'s {use_later:.1f} s: from about {n} questions an index on, it is "
                     f"the cheaper of the two.")
        if self.tradeoff is not None:
            t, p = self.tradeoff, self.versus_best[self.tradeoff]
            text += (f" {t} is {self.seconds[self.use] / self.seconds[t]:.1f}× cheaper ({self.seconds[t]:.1f} s) but "
                     f"less accurate ({p.diff:+.1f} {self.label}, [{p.ci_low:+.1f}, {p.ci_high:+.1f}]).")
        return text

    def _choice(self) -> str:
        use, best = self.use, self.best
        cost = f"{self.seconds[use]:.1f} s a question"
        if use == best and len(self.tied) == 1:
            text = f"Use {use}: the most accurate ({self.label} {self.score[use]:.1f}, {cost}); every other row is " \
                   f"measurably less accurate"
            if self.tradeoff is not None:  # named below, with its cost
                return text + "."
            name, p = max(self.versus_best.items(), key=lambda kv: kv[1].diff)
            return text + f" (the closest, {name}: {p.diff:+.1f} {self.label}, 95 % interval [{p.ci_low:+.1f}, " \
                          f"{p.ci_high:+.1f}])."
        if use == best:
            others = [t for t in self.tied if t != best]
            rest = ", ".join(others)
            cheapest = min(others, key=lambda t: self.seconds[t])
            if self.seconds[use] <= self.seconds[cheapest]:
                how = f"the cheapest of the rows that tie with it ({cost})"
            else:  # dearer only within timing noise: say so, with both figures
                how = (f"as cheap as the rows that tie with it within timing noise ({cost} against "
                       f"{cheapest}'s {self.seconds[cheapest]:.1f} s)")
            return (f"Use {use}: the most accurate ({self.label} {self.score[use]:.1f}) and {how}; {rest} "
                    f"{'is' if len(self.tied) == 2 else 'are'} not distinguishable from it on these questions.")
        p = self.versus_best[use]
        if self.seconds[use] < self.seconds[best]:
            costs = f"it costs {cost} against {self.seconds[best]:.1f} s"
        else:  # an equal score at one cost (within 10 %): prompt tokens, then the order of the rows, decided
            costs = (f"it costs the same within timing noise ({cost} against {self.seconds[best]:.1f} s), with "
                     f"{self.tokens.get(use, 0):,.0f} prompt tokens a question against {self.tokens.get(best, 0):,.0f}")
        return (f"Use {use}: {self.label} {self.score[use]:.1f} against the best, {best}'s {self.score[best]:.1f}, is "
                f"within noise ({p.diff:+.1f}, 95 % interval [{p.ci_low:+.1f}, {p.ci_high:+.1f}] over {p.n} "
                f"questions), and {costs}.")


def decide(records: list[dict], rows: list[dict], resamples: int = 10_000) -> Verdict | None:
    """The verdict over an eval's records and summary rows; None with fewer than two rows or no answerable
    question (nothing to compare on)."""
    from .metrics import label

    scored = [r for r in rows if r.get("score") is not None]
    if len(scored) < 2:
        return None
    points = {r["strategy"]: 100 * r["score"] for r in scored}
    best = max(scored, key=lambda r: points[r["strategy"]])["strategy"]
    versus = {k: v for k, v in paired_rows(records, resamples=resamples, base=best).items() if k in points}
    tied = [best] + [k for k, p in versus.items() if p.ci_high >= 0]
    seconds = {}
    for name in points:
        answered = [r["latency_s"] for r in records if r["strategy"] == name and not r.get("error")]
        seconds[name] = sum(answered) / len(answered) if answered else float("inf")
    # Seconds within 10 % of the cheapest are one cost (timing noise: two runs of the same answers differ that much);
    # among those the higher score, then fewer prompt tokens, then the order of --strategies, decide. (Tokens first
    # recommended auto over long-context on 160 scientific questions at 12.1 s against 11.7 s: less accurate by the
    # mean and no cheaper.)
    cheapest = min(seconds[name] for name in tied)
    close = [name for name in tied if seconds[name] <= COST_TIE * cheapest]
    tokens = {r["strategy"]: r.get("prompt_tokens_mean", 0.0) or 0.0 for r in scored}
    order = [r["strategy"] for r in scored]
    use = min(close, key=lambda name: (-points[name], tokens.get(name, 0.0), order.index(name)))
    cheaper = [name for name in points if name not in tied and seconds[name] * 1.5 <= seconds[use]]
    tradeoff = max(cheaper, key=lambda name: points[name], default=None)
    return Verdict(use=use, best=best, tied=tied, score=points, seconds=seconds, tokens=tokens, versus_best=versus,
                   tradeoff=tradeoff, label=label(scored), break_even=_break_even(records, use, best, points))


def _split_cost(records: list[dict], name: str) -> tuple[float, float, float] | None:
    """(seconds a later question, seconds paid once an index, questions an index) of one row: eval marks each
    index's first question of a strategy ``cold``. None without both cold and later questions."""
    answered = [r for r in records if r["strategy"] == name and not r.get("error")]
    cold = [r["latency_s"] for r in answered if r.get("cold")]
    warm = [r["latency_s"] for r in answered if not r.get("cold")]
    if not cold or not warm:
        return None
    later = sum(warm) / len(warm)
    return later, max(0.0, sum(cold) / len(cold) - later), len(answered) / len(cold)


def _break_even(records: list[dict], use: str, best: str, points: dict[str, float]):
    """Where the more accurate ``best`` lost to ``use`` on cost only by what it pays once an index, the number of
    questions an index from which it is the cheaper. Why: eval's mean seconds count a long-context prefix once per
    index of the question set (financial QA: ~6 questions a transcript), while a user may ask many more; on 2 cores a
    later long-context question from the cached prefix costs less than a rag question (2.7 against 4.3 s, p50)."""
    if use == best or points[best] <= points[use]:
        return None
    b, u = _split_cost(records, best), _split_cost(records, use)
    if b is None or u is None or b[0] >= u[0] or b[1] <= u[1]:
        return None
    n = math.ceil((b[1] - u[1]) / (u[0] - b[0]))
    if n <= b[2]:  # already within the questions asked: the mean has counted it
        return None
    return n, b[1], b[0], u[0]
