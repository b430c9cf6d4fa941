"""Could a cheap signal tell where long-context beats rag? Rank-AUC of what a router sees before answering.

    .venv/bin/python benchmarks/route_signals.py

Reads the committed one-machine records (benchmarks/results/paired/: rag ``topk-{fin,sci}-qwen15``, long-context
``prefix-style-lc-{fin,sci}-qwen15``; RESULTS.md, "Every row on one machine and one code"). For the questions where the
two score differently, each signal's AUC for "long-context scored higher": 0.5 is no information; below 0.5 the signal
is lower where long-context wins. Signals: the similarity of rag's top passage, the mean of its passages', the gap from
the first to the last, the question's words, the long-context prompt's tokens (the documents), rag's answer words.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from route_sweep import auc  # noqa: E402  (P(higher score | long-context better), ties half)

PAIRED = ROOT / "benchmarks" / "results" / "paired"
SETS = {"financial QA": "fin", "scientific QA": "sci"}


def load(name: str, strategy: str) -> dict[str, dict]:
    path = PAIRED / f"{name}.jsonl"
    if not path.is_file():
        raise SystemExit(f"error: {path} is missing: it is a committed record (git checkout it).")
    rows = (json.loads(line) for line in path.read_text().splitlines())
    return {r["id"]: r for r in rows if r["strategy"] == strategy}


def signals(rag: dict, lc: dict) -> dict[str, float]:
    sims = [p["score"] for p in rag["passages"]]
    return {"top similarity": sims[0], "mean similarity": statistics.fmean(sims), "similarity gap": sims[0] - sims[-1],
            "question words": len(rag["question"].split()), "document tokens": lc["prompt_tokens"],
            "rag answer words": len(rag["answer"].split())}


def main() -> None:
    table: dict[str, dict[str, float]] = {}
    counts = {}
    for name, tag in SETS.items():
        rag, lc = load(f"topk-{tag}-qwen15", "rag"), load(f"prefix-style-lc-{tag}-qwen15", "long-context")
        seen, lc_better = [], []
        for qid, r in rag.items():
            diff = lc[qid]["metrics"]["f1"] - r["metrics"]["f1"]
            if diff:
                seen.append(signals(r, lc[qid]))
                lc_better.append(diff > 0)
        counts[name] = (sum(lc_better), len(lc_better) - sum(lc_better))
        table[name] = {k: auc([s[k] for s in seen], lc_better) for k in seen[0]}
    print("| signal | " + " | ".join(f"{n} ({b} better / {w} worse)" for n, (b, w) in counts.items()) + " |")
    print("|---|" + "---:|" * len(SETS))
    for key in next(iter(table.values())):
        print(f"| {key} | " + " | ".join(f"{table[n][key]:.2f}" for n in SETS) + " |")


if __name__ == "__main__":
    main()
