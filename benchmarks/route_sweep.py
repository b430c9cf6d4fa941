"""Choosing auto's route threshold from one eval run: every threshold scored offline, paired, with its cost.

    .venv/bin/docqa eval --leval SET.jsonl --strategies auto:route_threshold=1,long-context --out OUT ...
    .venv/bin/python benchmarks/route_sweep.py OUT [OUT ...] [--json benchmarks/results/route_sweep.json]

(OUT: the eval folder, or its results.jsonl; the records behind RESULTS.md are benchmarks/results/paired/route-*.jsonl.)

auto (Self-Route) answers with rag, reads P("I don't know." | the rag prompt), and answers again with long-context
when that probability reaches the threshold (or the answer declines in words). With ``route_threshold=1`` the
probability is read and recorded (``decline_p``, and the first step's answer as ``rag_answer``) but routes nothing
beyond the worded declines; the run's long-context records hold what a routed question would have got. Decoding is
greedy and each step's prompt does not depend on the threshold, so auto at any threshold t answers exactly:
``rag_answer`` where p < t and the words do not decline, the long-context answer elsewhere. That makes the sweep
exact for answers and F1 (checked: the unrouted records' scores are recomputed from ``rag_answer``).

Cost is estimated from the same records, not measured per threshold: a question costs its auto record's latency
(rag + scoring; a worded decline also its long-context call, as recorded), plus, when routed by the probability,
its long-context latency; a document's prefix (the long-context run's first question of that document, minus the
median of its later ones) is paid by the first question routed in that document, as auto's shared prefix cache
would. Long-context's own cost is its mean latency. Prints per set: routed questions, auto's token F1, paired
differences against rag and long-context (10 000 bootstrap resamples), mean seconds a question and the share of
long-context's; plus the per-question oracle router (the better of the two answers) as the ceiling of any route.
A second table applies one more rule: once a question has built a document's prefix, that document's later questions
go straight to long-context (warm, it costs less than a rag call), as a cost-aware auto could.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from docqa.eval.metrics import METRICS  # noqa: E402
from docqa.eval.paired import paired  # noqa: E402
from docqa.prompts import is_refusal  # noqa: E402

THRESHOLDS = [None, 0.5, 0.3, 0.2, 0.1, 0.05, 0.03, 0.02, 0.01, 0.005, 0.002, 0.001]


def _load(run: Path) -> tuple[list[dict], dict[str, dict]]:
    """auto's records (those that read the probability) and long-context's, by question id."""
    auto, lc = [], {}
    for line in (run if run.is_file() else run / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r.get("error") or not r.get("references"):
            continue
        if r["strategy"].startswith("auto") and r.get("decline_p") is not None:
            auto.append(r)
        elif r["strategy"] == "long-context":
            lc[r["id"]] = r
    if not auto or not lc:
        raise SystemExit(f"{run}: needs auto records with decline_p (auto:route_threshold=1) and long-context ones")
    return auto, lc


def _prefix_costs(lc: dict[str, dict]) -> tuple[dict[str, float], set[str]]:
    """Per document: what building its prefix added to the first long-context question asked of it; and the ids of
    those first questions (their records hold the prefill)."""
    by_doc: dict[str, list[dict]] = {}
    for r in lc.values():  # insertion order = the run's order
        by_doc.setdefault(r["document"], []).append(r)
    out = {}
    for doc, rs in by_doc.items():
        later = [r["latency_s"] for r in rs[1:]]
        out[doc] = max(0.0, rs[0]["latency_s"] - (statistics.median(later) if later else 0.0))
    return out, {rs[0]["id"] for rs in by_doc.values()}


def _spread(r: dict) -> float | None:
    """How much the first passage auto's rag step read stands out from the last (fused retrieval scores)."""
    scores = [p["score"] for p in r.get("passages") or [] if p.get("score") is not None]
    return scores[0] - scores[-1] if len(scores) > 1 else None


def sweep(run: Path, span: tuple[int, int | None] = (0, None)) -> dict:
    auto, lc = _load(run)
    prefix, first_lc = _prefix_costs(lc)
    f1 = METRICS.get("f1")
    qs = [r for r in auto if r["id"] in lc][span[0]:span[1]]
    rag = [100 * f1(r["rag_answer"], r["references"]) for r in qs]
    lcs = [100 * lc[r["id"]]["metrics"]["f1"] for r in qs]
    worded = [is_refusal(r["rag_answer"]) for r in qs]
    # The sweep reproduces the run: unrouted records were scored on the very answer it re-scores.
    for r, s, w in zip(qs, rag, worded, strict=True):
        if not w:
            assert abs(s - 100 * r["metrics"]["f1"]) < 1e-9, r["id"]
    lc_cost = statistics.fmean(lc[r["id"]]["latency_s"] for r in qs)
    rows = []
    for t, sticky in [(t, s) for s in (False, True) for t in THRESHOLDS]:
        routed = [w or (t is not None and r["decline_p"] >= t) for r, w in zip(qs, worded, strict=True)]
        if sticky:  # once a document's prefix is built, its later questions go to long-context (cheaper when warm)
            built: set[str] = set()
            for i, r in enumerate(qs):
                routed[i] = routed[i] or r["document"] in built
                if routed[i]:
                    built.add(r["document"])
        scores = [b if go else a for a, b, go in zip(rag, lcs, routed, strict=True)]
        cost, paid = 0.0, set()
        for r, go, w in zip(qs, routed, worded, strict=True):
            if go and sticky and r["document"] in paid:  # straight to the warm long-context prefix, no rag step
                cost += lc[r["id"]]["latency_s"] - (prefix[r["document"]] if r["id"] in first_lc else 0.0)
                continue
            cost += r["latency_s"]
            if go and not w:  # a worded decline's long-context call is in its own record already
                own = lc[r["id"]]["latency_s"] - (prefix[r["document"]] if r["id"] in first_lc else 0.0)
                cost += own + (prefix[r["document"]] if r["document"] not in paid else 0.0)
            if go:
                paid.add(r["document"])
        cost /= len(qs)
        rows.append({"threshold": t, "sticky": sticky, "routed": sum(routed), "f1": statistics.fmean(scores),
                     "vs_rag": paired(rag, scores).as_dict(), "vs_lc": paired(lcs, scores).as_dict(),
                     "cost_s": cost, "cost_share_of_lc": cost / lc_cost})
    best = [max(a, b) for a, b in zip(rag, lcs, strict=True)]
    flat = [(sp, b > a) for r, a, b in zip(qs, rag, lcs, strict=True) if (sp := _spread(r)) is not None]
    ps = sorted(r["decline_p"] for r in qs)
    return {"run": str(run), "questions": len(qs), "rag_f1": statistics.fmean(rag), "lc_f1": statistics.fmean(lcs),
            "lc_cost_s": lc_cost, "oracle_router_f1": statistics.fmean(best),
            "lc_better": sum(b > a for a, b in zip(rag, lcs, strict=True)),
            "rag_better": sum(a > b for a, b in zip(rag, lcs, strict=True)),
            "decline_p_quantiles": {q: ps[min(len(ps) - 1, int(q * len(ps)))] for q in (0.1, 0.25, 0.5, 0.75, 0.9)},
            "auc_lc_better": auc([r["decline_p"] for r in qs], [b > a for a, b in zip(rag, lcs, strict=True)]),
            # A second signal, found by looking at the first 60 scientific questions (and financial QA): when no
            # passage stands out, rag is more likely to have missed. Scored here as -spread, so > 0.5 means "flat
            # retrieval, long-context better"; --span tests it on questions it was not found on.
            "auc_lc_better_by_flat_retrieval": auc([-sp for sp, _ in flat], [better for _, better in flat]),
            "span": list(span), "rows": rows}


def auc(scores, positive) -> float | None:
    """P(a question long-context answers better gets a higher score, e.g. decline probability, than one it does
    not)."""
    pos = [s for s, p in zip(scores, positive, strict=True) if p]
    neg = [s for s, p in zip(scores, positive, strict=True) if not p]
    if not pos or not neg:
        return None
    return sum((a > b) + 0.5 * (a == b) for a in pos for b in neg) / (len(pos) * len(neg))


def _r3(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _show(res: dict) -> None:
    print(f"\n{res['run']}: {res['questions']} questions; rag {res['rag_f1']:.1f}, long-context {res['lc_f1']:.1f} "
          f"({res['lc_cost_s']:.1f} s a question), oracle router {res['oracle_router_f1']:.1f}; long-context better on "
          f"{res['lc_better']}, rag on {res['rag_better']}; AUC of P(decline) for 'long-context better' "
          f"{_r3(res['auc_lc_better'])}; of flat retrieval {_r3(res['auc_lc_better_by_flat_retrieval'])}")
    print(f"{'threshold':>10}{'routed':>8}{'F1':>7}  {'vs rag':<32}{'vs long-context':<32}{'s/q':>7}{'of LC':>7}")
    for row in res["rows"]:
        if row["sticky"] and row["threshold"] is None:
            print("then, once a document's prefix is built, its later questions straight to long-context:")
        t = "words" if row["threshold"] is None else f"{row['threshold']:g}"
        vr, vl = row["vs_rag"], row["vs_lc"]
        fmt = "{diff:+.1f} [{ci_low:+.1f}, {ci_high:+.1f}] {wins}/{losses}/{ties}"
        print(f"{t:>10}{row['routed']:>8}{row['f1']:>7.1f}  {fmt.format(**vr):<32}{fmt.format(**vl):<32}"
              f"{row['cost_s']:>7.1f}{row['cost_share_of_lc']:>7.0%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--span", default="0:", help="A:B: only the run's questions A+1..B, in its order (a held-out part; "
                    "a document whose first question is outside it has its prefix cost left out)")
    args = ap.parse_args()
    a, _, b = args.span.partition(":")
    span = (int(a or 0), int(b) if b else None)
    results = [sweep(run, span) for run in args.runs]
    for res in results:
        _show(res)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
