"""Fusion: one ranking from a dense and a lexical one. A name → function registry with one signature:
``fn(dense, lexical, weight) -> [(chunk id, fused score)]`` best first, where each input is ``[(chunk id, score)]``
best first and ``weight`` ∈ [0, 1] is the dense ranking's share (1 − weight goes to the lexical one). Every chunk of
either list is in the result once; a chunk only one list found still gets a place (it scores nothing in the other).
Ties go to the lower chunk id, so a fused ranking is reproducible.
"""

from __future__ import annotations

from ..registry import Registry

Ranking = list[tuple[int, float]]
RRF_K = 60  # Cormack et al. 2009; the constant every hybrid stack (Elastic, Vespa, llama-index) uses


def _ranked(scores: dict[int, float]) -> Ranking:
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def rrf(dense: Ranking, lexical: Ranking, weight: float = 0.5) -> Ranking:
    """Reciprocal rank fusion: Σ wᵢ / (60 + rankᵢ) over the lists holding the chunk (rank from 1). Scores are not
    compared across lists, only ranks, so it needs no calibration; weight 0.5 is plain RRF."""
    fused: dict[int, float] = {}
    for w, ranking in ((weight, dense), (1.0 - weight, lexical)):
        for rank, (cid, _) in enumerate(ranking, 1):
            fused[cid] = fused.get(cid, 0.0) + w / (RRF_K + rank)
    return _ranked(fused)


def _minmax(ranking: Ranking) -> dict[int, float]:
    if not ranking:
        return {}
    lo, hi = min(s for _, s in ranking), max(s for _, s in ranking)
    span = hi - lo
    return {cid: ((s - lo) / span if span > 0 else 1.0) for cid, s in ranking}


def weighted(dense: Ranking, lexical: Ranking, weight: float = 0.5) -> Ranking:
    """Convex combination of scores, each list min-max normalised over its own candidates (Bruch et al. 2023):
    weight · dense + (1 − weight) · lexical; a chunk missing from a list scores 0 there. Uses how far apart the scores
    are, which RRF throws away, at the price of depending on each list's depth."""
    d, lx = _minmax(dense), _minmax(lexical)
    return _ranked({cid: weight * d.get(cid, 0.0) + (1.0 - weight) * lx.get(cid, 0.0) for cid in d.keys() | lx.keys()})


FUSIONS: Registry = Registry("fusion")
FUSIONS.register("rrf", rrf)
FUSIONS.register("weighted", weighted, aliases=("score", "convex"))
