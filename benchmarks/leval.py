"""docqa's strategies on L-Eval's financial QA, beside the published models on the same questions.

    .venv/bin/python benchmarks/leval.py --limit 16 --strategies rag,long-context,summarize,auto
    .venv/bin/python benchmarks/leval.py --strategies summarize --chain li-tree --summary-window 2048

Builds one index per earnings-call transcript (``docqa eval --leval``), asks each question of its own transcript,
and scores with docqa's metrics (which reproduce L-Eval's published figures, see scorer_parity.py). The published
predictions are rescored on exactly the questions asked here, so the rows compare like with like. Writes
benchmarks/out/leval/ (results.jsonl, summary.json/csv, plot) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LEVAL = ROOT.parent / "shared" / "data" / "leval"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=16)
    ap.add_argument("--strategies", default="rag,long-context,auto")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--resume", action="store_true", help="keep finished (question, strategy) pairs")
    ap.add_argument("--chain", default="map-reduce", help="summarize's chain (li-tree, li-refine: llama-index's)")
    ap.add_argument("--summary-window", type=int, default=None, help="summarize: tokens per call")
    args = ap.parse_args()

    import docqa
    from docqa.eval.metrics import rouge_l, token_f1

    # Runs with another chain or window go to their own folder, so they never mix with the default run's records.
    tag = "" if (args.chain, args.summary_window) == ("map-reduce", None) else f"-{args.chain}-{args.summary_window}"
    out = ROOT / "benchmarks" / "out" / f"leval{tag}"
    t0 = time.perf_counter()
    records, rows = docqa.evaluate(None, leval=LEVAL / "financial_qa.jsonl", strategies=args.strategies.split(","),
                                   out=out, limit=args.limit, root=ROOT / "benchmarks" / "out" / "indexes",
                                   max_new_tokens=args.max_new_tokens, resume=args.resume, chain=args.chain,
                                   summary_window=args.summary_window)
    minutes = (time.perf_counter() - t0) / 60
    asked = {r["question"] for r in records}
    print(f"{len(asked)} questions, {minutes:.1f} min\n")
    published = {}
    for model in ("turbo-16k-0613", "vicuna-13b-16k", "llama2-13b-chat-4k"):
        rows_ = [json.loads(x) for x in (LEVAL / "predictions" / model / "financial_qa.pred.jsonl").read_text()
                 .splitlines()]
        published[model] = {p["query"].strip(): p for p in rows_}
    # L-Eval scored 52 of the 68 questions; compare on the asked questions it scored.
    scored = asked & set.intersection(*(set(v) for v in published.values()))
    print(f"{'system':<36}{'n':>4}{'F1':>7}{'ROUGE-L':>9}{'p50 s':>8}")
    for row in rows:
        rs = [r for r in records if r["strategy"] == row["strategy"] and r["question"] in scored]
        f1 = 100 * sum(r["metrics"]["f1"] for r in rs) / len(rs)
        rl = 100 * sum(r["metrics"]["rouge_l"] for r in rs) / len(rs)
        print(f"{'docqa ' + row['strategy'] + ' (SmolLM2-135M)':<36}{len(rs):>4}{f1:7.1f}{rl:9.1f}"
              f"{row['latency_p50_s']:8.1f}")
    for model, by_query in published.items():
        same = [by_query[q] for q in sorted(scored)]
        pred = lambda p: next(v for k, v in p.items() if k.endswith("_pred"))  # noqa: E731
        f1 = 100 * sum(token_f1(pred(p), [p["gt"]]) for p in same) / len(same)
        rl = 100 * sum(rouge_l(pred(p), [p["gt"]]) for p in same) / len(same)
        print(f"{model + ' (published)':<36}{len(same):>4}{f1:7.1f}{rl:9.1f}{'':>8}")


if __name__ == "__main__":
    main()
