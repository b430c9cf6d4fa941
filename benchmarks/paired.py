"""Paired comparison of two docqa eval runs on the same questions: mean difference, bootstrap interval, wins/losses.

    .venv/bin/python benchmarks/paired.py BEFORE/results.jsonl AFTER/results.jsonl [--metric f1] [--scored leval]

Records are matched by (document, question) and strategy; with ``--scored leval`` only the 52 questions L-Eval scored
(those with published predictions, benchmarks/leval.py) count. The interval is the 2.5–97.5 percentile of 10 000
bootstrap resamples of the per-question differences (seeded; docqa/eval/paired.py, the bootstrap `docqa eval` uses).
Intervals recorded in RESULTS.md before it moved to numpy were drawn with Python's ``random``; rerunning reproduces
them within ±0.1. Prints one row per strategy and returns the rows.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from docqa.eval.paired import paired  # noqa: E402


def load(path: Path) -> dict[tuple[str, str, str], dict]:
    out = {}
    for line in Path(path).read_text().splitlines():
        r = json.loads(line)
        # A one-corpus run (leval.py --one-corpus) asks every question of one index: its records name no document,
        # but their L-Eval ids do (financial_qa-doc03-q05).
        derived = re.match(r"^(.*-doc\d+)-q\d+$", str(r.get("id") or ""))
        document = r.get("document") or (derived.group(1) if derived else "")
        out[(r["strategy"], document, r["question"])] = r
    return out


def compare(before: Path, after: Path, metric: str = "f1", keep=None, resamples: int = 10_000) -> list[dict]:
    a, b = load(before), load(after)
    rows = []
    for strategy in dict.fromkeys(k[0] for k in b):
        keys = [k for k in b if k[0] == strategy and k in a and (keep is None or k[1:] in keep)]
        if not keys:
            continue
        da = [100 * (a[k]["metrics"][metric] or 0.0) for k in keys]
        db = [100 * (b[k]["metrics"][metric] or 0.0) for k in keys]
        p = paired(da, db, resamples)
        rows.append({"strategy": strategy, "before": sum(da) / len(da), "after": sum(db) / len(db), **p.as_dict()})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--metric", default="f1")
    ap.add_argument("--scored", choices=["all", "leval"], default="all")
    args = ap.parse_args()
    keep = None
    if args.scored == "leval":
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from leval import published_predictions

        keep = set(published_predictions("turbo-16k-0613"))
    rows = compare(args.before, args.after, args.metric, keep)
    print(f"{'strategy':<14}{'n':>4}{'before':>8}{'after':>8}{'diff':>7}  {'95% CI':<16}{'W/L/T':>10}")
    for r in rows:
        print(f"{r['strategy']:<14}{r['n']:>4}{r['before']:8.1f}{r['after']:8.1f}{r['diff']:+7.1f}  "
              f"[{r['ci_low']:+.1f}, {r['ci_high']:+.1f}]{'':<3}{r['wins']:>3}/{r['losses']}/{r['ties']}")


if __name__ == "__main__":
    main()
