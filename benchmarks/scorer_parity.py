"""Scorer parity: docqa's metrics on L-Eval's published financial_qa predictions must reproduce L-Eval's figures.

    .venv/bin/python benchmarks/scorer_parity.py

Reads ../shared/data/leval/predictions/<model>/financial_qa.pred.jsonl (52 scored questions each; the prediction is
the field ending in ``_pred``, the reference ``gt``) and compares mean token F1 and ROUGE-L with the figures
published in ../shared/data/README.md. Exits 1 if any differs by more than 0.1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from docqa.eval.metrics import rouge_l, token_f1  # noqa: E402

PRED = Path(__file__).resolve().parents[2] / "shared" / "data" / "leval" / "predictions"
PUBLISHED = {  # model: (token F1, ROUGE-L F)
    "turbo-16k-0613": (45.4, 34.2),
    "vicuna-13b-16k": (45.6, 35.3),
    "llama2-13b-chat-4k": (38.1, 29.0),
}


def main() -> int:
    ok = True
    print(f"{'model':<22}{'F1':>8}{'pub.':>8}{'ROUGE-L':>10}{'pub.':>8}")
    for model, (pub_f1, pub_rl) in PUBLISHED.items():
        rows = [json.loads(line) for line in (PRED / model / "financial_qa.pred.jsonl").read_text().splitlines()]
        preds = [next(v for k, v in r.items() if k.endswith("_pred")) for r in rows]
        f1 = 100 * sum(token_f1(p, [r["gt"]]) for p, r in zip(preds, rows)) / len(rows)
        rl = 100 * sum(rouge_l(p, [r["gt"]]) for p, r in zip(preds, rows)) / len(rows)
        good = abs(f1 - pub_f1) <= 0.1 and abs(rl - pub_rl) <= 0.1
        ok &= good
        print(f"{model:<22}{f1:8.2f}{pub_f1:8.1f}{rl:10.2f}{pub_rl:8.1f}  {'ok' if good else 'MISMATCH'}  "
              f"(n={len(rows)})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
