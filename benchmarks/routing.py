"""Calibrating auto's routing signal on examples/: P("I don't know." | RAG prompt) against RAG being wrong.

    .venv/bin/python benchmarks/routing.py [--leval] [--limit N]

For every answerable question of examples/questions.jsonl (or, with --leval, L-Eval financial QA's scored questions,
one index per transcript), answers with RAG while reading the decline probability, and scores the answer (contains
for examples, token F1 < 0.2 as "wrong" for L-Eval). Prints, for thresholds from 1e-4 to 0.05, how many questions
would be routed and how many of them RAG had wrong (precision), and of the wrong ones how many are routed (recall);
the threshold in docqa/strategies/auto.py is the one with the best Youden J (recall − false-route rate) on examples/
only. Writes benchmarks/results/routing[-leval].json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
THRESHOLDS = [1e-4, 2e-4, 3e-4, 5e-4, 7e-4, 1e-3, 1.5e-3, 2e-3, 3e-3, 5e-3, 1e-2, 0.05]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leval", action="store_true")
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    import docqa
    from docqa.eval.metrics import METRICS
    from docqa.eval.questions import load_jsonl, load_leval
    from docqa.prompts import NO_ANSWER
    from docqa.strategies import rag
    from docqa.strategies.base import AskConfig

    root = Path(tempfile.mkdtemp(prefix="docqa-routing-"))
    rows = []
    if args.leval:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from leval import LEVAL, published_predictions

        scored = set(published_predictions("turbo-16k-0613"))
        docs = load_leval(LEVAL / "financial_qa.jsonl")
        for name, text, qs in docs:
            qs = [q for q in qs if (q.document, q.question) in scored]
            folder = root / "src" / name
            folder.mkdir(parents=True)
            (folder / f"{name}.txt").write_text(text)
            docqa.ingest(folder, name, root=root)
            idx = docqa.open_index(name, root=root)
            answers = rag.ask_many(idx.corpus, [q.question for q in qs], AskConfig(style="paragraph",
                                                                                   max_new_tokens=128), 8, NO_ANSWER)
            for q, a in zip(qs, answers, strict=True):
                f1 = METRICS.get("f1")(a.text, q.answers)
                rows.append({"id": q.id, "decline_p": a.details["decline_p"], "wrong": f1 < 0.2, "f1": f1})
    else:
        docqa.ingest(ROOT / "examples" / "docs", "examples", root=root)
        idx = docqa.open_index("examples", root=root)
        qs = [q for q in load_jsonl(ROOT / "examples" / "questions.jsonl") if q.answers][: args.limit]
        answers = rag.ask_many(idx.corpus, [q.question for q in qs], AskConfig(style="short"), 8, NO_ANSWER)
        for q, a in zip(qs, answers, strict=True):
            ok = METRICS.get("contains")(a.text, q.answers) > 0
            rows.append({"id": q.id, "decline_p": a.details["decline_p"], "wrong": not ok, "answer": a.text})
    wrong = sum(r["wrong"] for r in rows)
    right = len(rows) - wrong
    table = []
    print(f"{len(rows)} questions, RAG wrong on {wrong}")
    print(f"{'threshold':>10}{'routed':>8}{'of them wrong':>15}{'recall':>8}{'false-route':>13}{'J':>7}")
    for t in THRESHOLDS:
        routed = [r for r in rows if r["decline_p"] >= t]
        hit = sum(r["wrong"] for r in routed)
        recall, false = hit / max(1, wrong), (len(routed) - hit) / max(1, right)
        table.append({"threshold": t, "routed": len(routed), "routed_wrong": hit, "recall": recall,
                      "false_route": false, "j": recall - false})
        print(f"{t:>10}{len(routed):>8}{hit:>15}{recall:>8.2f}{false:>13.2f}{recall - false:>7.2f}")
    pairs = [(r["decline_p"], r["wrong"]) for r in rows]
    bad = [p for p, w in pairs if w]
    good = [p for p, w in pairs if not w]
    auc = sum((b > g) + 0.5 * (b == g) for b in bad for g in good) / max(1, len(bad) * len(good))
    best = max(table, key=lambda t: t["j"])
    print(f"AUC of the decline probability for a wrong RAG answer: {auc:.3f}; best J {best['j']:.2f} at "
          f"{best['threshold']}")
    out = ROOT / "benchmarks" / "results" / f"routing{'-leval' if args.leval else ''}.json"
    out.write_text(json.dumps({"auc": auc, "best": best, "rows": rows, "table": table}, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
