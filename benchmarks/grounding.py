"""Does groundedness agree with the reference-based score? Per answer of finished eval runs: docqa's groundedness
(overlap, and a judge model when asked) against the answer's own score (token F1), as correlations with bootstrap
intervals and as the score of grounded against ungrounded answers.

    .venv/bin/python benchmarks/grounding.py benchmarks/out/fin-grounded --root benchmarks/out/indexes \
        [--judge qwen2.5-coder-1.5b] [--limit 60]

A measure that does not agree with the score is reported as such. Writes benchmarks/results/grounding.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _rank(values):
    import numpy as np

    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    v = np.asarray(values)[order]
    i = 0
    while i < len(v):  # average ranks over ties
        j = i
        while j + 1 < len(v) and v[j + 1] == v[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2
        i = j + 1
    return ranks


def correlation(x: list[float], y: list[float], spearman: bool, resamples: int = 4000) -> tuple[float, float, float]:
    """Pearson (or Spearman) r and its 95 % bootstrap interval over the pairs."""
    import numpy as np

    x, y = np.asarray(x, float), np.asarray(y, float)

    def r(a, b):
        if spearman:
            a, b = _rank(a), _rank(b)
        if a.std() == 0 or b.std() == 0:
            return float("nan")
        return float(np.corrcoef(a, b)[0, 1])

    rng = np.random.default_rng(0)
    n = len(x)
    boots = []
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        v = r(x[idx], y[idx])
        if v == v:
            boots.append(v)
    boots.sort()
    lo = boots[int(0.025 * len(boots))] if boots else float("nan")
    hi = boots[int(0.975 * len(boots)) - 1] if boots else float("nan")
    return r(x, y), lo, hi


def mean_diff(a: list[float], b: list[float], resamples: int = 4000) -> tuple[float, float, float]:
    """mean(a) − mean(b) and its 95 % bootstrap interval (independent samples)."""
    import numpy as np

    a, b = np.asarray(a, float), np.asarray(b, float)
    rng = np.random.default_rng(0)
    diffs = sorted(float(a[rng.integers(0, len(a), len(a))].mean() - b[rng.integers(0, len(b), len(b))].mean())
                   for _ in range(resamples))
    return float(a.mean() - b.mean()), diffs[int(0.025 * resamples)], diffs[int(0.975 * resamples) - 1]


def main() -> None:
    from docqa.eval import grounding as gr
    from docqa.eval.html_report import load_run
    from docqa.eval.metrics import primary
    from docqa.index.store import IndexStore

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--root", type=Path, default=ROOT / "benchmarks" / "out" / "indexes")
    ap.add_argument("--judge", default=None, help="a model to judge with as well (e.g. qwen2.5-coder-1.5b)")
    ap.add_argument("--limit", type=int, default=None, help="judge at most this many answers (cost)")
    args = ap.parse_args()

    cache: dict[str, list] = {}

    def chunks_for(r: dict):
        name = f"leval-{r['document']}" if r.get("document") else "examples"
        if name not in cache:
            store = IndexStore(name, args.root)
            cache[name] = [(c.id, c.file, c.text) for c in store.chunks()]
            store.close()
        return cache[name]

    records = []
    for run in args.runs:
        recs, _ = load_run(run)
        records += [r for r in recs if not r.get("error") and r.get("references") and r["answer"].strip()]
    methods: dict[str, object] = {"overlap": "overlap"}
    judge_info = None
    if args.judge:
        from docqa.generators import GeneratorConfig, load_generator

        gen = load_generator(GeneratorConfig(model=args.judge))
        methods[f"judge ({args.judge})"] = gr.make_judge(gen)
        judge_info = {"model": args.judge, "prompt": gr.JUDGE_PROMPT}
    out: dict = {"runs": [str(r) for r in args.runs], "answers": len(records), "judge": judge_info, "methods": {}}
    print(f"{len(records)} answered, answerable records from {', '.join(str(r) for r in args.runs)}\n")
    print("| measure | answers | strategy | mean groundedness | Pearson r [95 %] | Spearman ρ [95 %] | F1 of fully "
          "grounded − others [95 %] (n) |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for name, method in methods.items():
        subset = records if name == "overlap" or args.limit is None else records[: args.limit]
        t0 = time.perf_counter()
        values = []
        for r in subset:
            rr = dict(r)
            gr.add_groundedness([rr], chunks_for, method)
            values.append((r["strategy"], rr["metrics"]["groundedness"], 100 * primary(r["metrics"])))
        seconds = time.perf_counter() - t0
        rows = []
        for strategy in ["all", *dict.fromkeys(s for s, _, _ in values)]:
            vs = [(g, f) for s, g, f in values if g is not None and (strategy == "all" or s == strategy)]
            if len(vs) < 5:
                continue
            g, f = [a for a, _ in vs], [b for _, b in vs]
            pr, sr = correlation(g, f, False), correlation(g, f, True)
            full = [b for a, b in vs if a == 1.0]
            rest = [b for a, b in vs if a < 1.0]
            md = mean_diff(full, rest) if full and rest else (float("nan"),) * 3
            row = {"strategy": strategy, "answers": len(vs), "mean": sum(g) / len(g), "pearson": pr, "spearman": sr,
                   "grounded_minus_rest": md, "n_grounded": len(full), "n_rest": len(rest)}
            rows.append(row)
            print(f"| {name} | {len(vs)} | {strategy} | {100 * row['mean']:.1f} | {pr[0]:+.2f} [{pr[1]:+.2f}, "
                  f"{pr[2]:+.2f}] | {sr[0]:+.2f} [{sr[1]:+.2f}, {sr[2]:+.2f}] | {md[0]:+.1f} [{md[1]:+.1f}, "
                  f"{md[2]:+.1f}] ({len(full)} / {len(rest)}) |")
        out["methods"][name] = {"seconds": round(seconds, 1), "rows": rows}
    dest = ROOT / "benchmarks" / "results" / "grounding.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
