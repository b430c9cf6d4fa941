"""docqa's summarize chains against llama-index's response synthesizers, same model, same questions.

    .venv/bin/python benchmarks/summarize_chains.py --every 5 --window 4096 \\
        --chains map-reduce,li-tree,refine,li-refine,tree

Asks every ``--every``-th question of examples/questions.jsonl (8 of 39 by default: one-document, two-document and
unanswerable ones) with ``--strategy summarize`` and each chain over the whole examples/ corpus, one call at most
``--window`` tokens. ``li-tree`` is llama-index's TreeSummarize and ``li-refine`` its CompactAndRefine, driven through
docqa's generator (docqa/strategies/li_chains.py), so the comparison is of chain designs and prompts, not of models.
Writes benchmarks/out/chains/<chain>[-warm]/ (results.jsonl, summary.json/csv) and prints one table; ``--resume``
keeps finished answers. By default the chains keep their first-pass prefixes between questions, as in a real process
(map-reduce and tree: later questions prefill only their own tokens); ``--cold`` turns that off, so every answer
pays its whole pass and the designs compare on equal terms. Run it alone: on 2 cores a parallel job distorts every
latency.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chains", default="map-reduce,li-tree,refine,li-refine,tree")
    ap.add_argument("--every", type=int, default=5, help="ask questions 1, 1+N, 1+2N, … of the file")
    ap.add_argument("--window", type=int, default=4096, help="--summary-window: tokens per model call")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--cold", action="store_true",
                    help="keep no group prefixes between questions: every answer pays its whole first pass")
    args = ap.parse_args()

    import docqa

    suffix = "" if args.cold else "-warm"

    out = ROOT / "benchmarks" / "out" / "chains"
    root = ROOT / "benchmarks" / "out" / "indexes"
    out.mkdir(parents=True, exist_ok=True)
    lines = (ROOT / "examples" / "questions.jsonl").read_text().splitlines()
    subset = out / "questions.jsonl"
    subset.write_text("".join(line + "\n" for line in lines[::args.every]))
    docqa.ingest(ROOT / "examples" / "docs", "examples", root=root)  # incremental: a no-op once built

    rows = []
    for chain in args.chains.split(","):
        t0 = time.perf_counter()

        def progress(done: int, total: int, label: str, chain: str = chain, t0: float = t0) -> None:
            print(f"  {chain}: {done}/{total} {label} ({time.perf_counter() - t0:.0f} s)", flush=True)

        _, summary = docqa.evaluate(subset, index="examples", strategies=["summarize"], out=out / (chain + suffix),
                                    root=root, resume=args.resume, chain=chain, summary_window=args.window,
                                    progress=progress, **({"kv_budget": 0} if args.cold else {}))
        rows.append({"chain": chain + suffix, **summary[0], "wall_min": (time.perf_counter() - t0) / 60})
    (out / f"chains_summary{suffix}.json").write_text(json.dumps(rows, indent=2))

    print(f"\n{len(lines[::args.every])} questions of examples/questions.jsonl, window {args.window}")
    print(f"{'chain':<16}{'contains':>9}{'F1':>7}{'recall':>8}{'refusal':>8}{'calls':>7}{'prompt tok':>11}"
          f"{'p50 s':>8}{'p95 s':>8}{'errors':>7}")
    pct = lambda v: float("nan") if v is None else 100 * v  # noqa: E731
    for r in rows:
        print(f"{r['chain']:<16}{pct(r['contains']):9.1f}{pct(r['f1']):7.1f}{pct(r['recall_at_k']):8.1f}"
              f"{pct(r['refusal']):8.1f}{r['calls_mean']:7.1f}{r['prompt_tokens_mean']:11.0f}"
              f"{r['latency_p50_s']:8.1f}{r['latency_p95_s']:8.1f}{r['errors']:7d}")


if __name__ == "__main__":
    main()
