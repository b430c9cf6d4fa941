"""Whole-document questions ("Summarize the paper.") on real documents: what each strategy's answer holds of it.

L-Eval's financial and scientific QA sets ask facts, none of them a summary (this script counts how many of their
questions docqa's cue would route: docqa/strategies/whole.py). Their references, though, are facts about each
document that people wrote, several per document: an answer to "Summarize the earnings call." is scored here by token
precision, recall and F1 against the document's pooled references (each question's first reference, joined), as the
pyramid method scores a summary by the reference facts it holds. Absolute numbers are low by construction (a summary
of ~100 words against ~300-400 words of facts); the comparison between strategies on the same question is what the
score is for. Paired per document (the mean over its phrasings), 10 000 bootstrap resamples.

Each document is its own index (``--root``, as ``docqa eval --leval`` builds them: leval-<set>-docNN). Strategies are
asked as ``docqa ask`` asks them (its default answer style and budget) unless ``--style`` is given.

    python benchmarks/whole_questions.py --root /tmp/sl/indexes --strategies auto:whole_tokens=0,auto \\
        --docs 6,8 --out benchmarks/results/paired/whole-questions-qwen15.jsonl
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import docqa  # noqa: E402
from docqa.eval.metrics import tokens  # noqa: E402
from docqa.eval.paired import paired  # noqa: E402
from docqa.eval.questions import shared_instruction  # noqa: E402
from docqa.strategies.whole import whole_cue  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "leval"
# set → (what its documents are called, phrasings of a whole-document question)
SETS = {"financial_qa": ("earnings call", ["Summarize the {kind}.", "What are the main points of the {kind}?"]),
        "scientific_qa": ("paper", ["Summarize the {kind}.", "What are the main points of the {kind}?"])}


def prf(prediction: str, reference: str) -> tuple[float, float, float]:
    """Token precision, recall and F1 (SQuAD normalisation, docqa's metric's tokens)."""
    p, r = tokens(prediction), tokens(reference)
    common = sum((collections.Counter(p) & collections.Counter(r)).values())
    if not p or not r or not common:
        return 0.0, 0.0, 0.0
    precision, recall = common / len(p), common / len(r)
    return precision, recall, 2 * precision * recall / (precision + recall)


def cue_counts() -> dict[str, dict[str, int]]:
    """How many of each set's questions docqa's cue marks as whole-document questions (after the shared lead-in)."""
    out = {}
    for name in SETS:
        questions = [q for line in (DATA / f"{name}.jsonl").open() for q in json.loads(line)["instructions"]]
        lead = shared_instruction(questions) or ""
        routed = [q for q in questions if whole_cue(q[len(lead):] if lead and q.startswith(lead) else q)]
        out[name] = {"questions": len(questions), "routed": len(routed), "examples": routed[:5]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="folder of per-document indexes (leval-<set>-docNN)")
    ap.add_argument("--strategies", default="auto:whole_tokens=0,auto")
    ap.add_argument("--docs", default="6,8", help="documents per set (financial, scientific), from doc01")
    ap.add_argument("--style", default=None, help="answer style for every strategy (default: each as ask asks it)")
    ap.add_argument("--max-new-tokens", type=int, default=None)
    ap.add_argument("--out", type=Path, required=True, help="records (JSON lines; appended)")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "whole_questions.json")
    args = ap.parse_args()
    strategies = args.strategies.split(",")
    options = {k: v for k, v in (("style", args.style), ("max_new_tokens", args.max_new_tokens)) if v is not None}
    counts = cue_counts()
    for name, c in counts.items():
        print(f"{name}: {c['routed']} of {c['questions']} questions marked whole-document", flush=True)
    records = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as out:
        for (name, (kind, phrasings)), n in zip(SETS.items(), map(int, args.docs.split(",")), strict=True):
            documents = [json.loads(line) for line in (DATA / f"{name}.jsonl").open()]
            for i in range(1, n + 1):
                index = f"leval-{name}-doc{i:02d}"
                idx = docqa.open_index(index, root=args.root)
                text = next(iter(idx.corpus.store.documents())).text.strip()
                doc = next(d for d in documents if d["input"].strip()[:200] == text[:200])
                pooled = " ".join(doc["outputs"])
                for strategy in strategies:
                    for phrasing in phrasings:
                        question = phrasing.format(kind=kind)
                        t0 = time.perf_counter()
                        a = idx.ask(question, strategy, **options)
                        p, r, f = prf(a.text, pooled)
                        rec = {"set": name, "index": index, "strategy": strategy, "question": question,
                               "answer": a.text, "precision": p, "recall": r, "f1": f,
                               "seconds": time.perf_counter() - t0, "prompt_tokens": a.tokens.get("prompt"),
                               "completion_tokens": a.tokens.get("completion"), "route": a.details.get("route"),
                               "model": a.model}
                        records.append(rec)
                        out.write(json.dumps(rec) + "\n")
                        out.flush()
                        print(f"{index} {strategy:22s} {question[:34]:34s} P {100 * p:3.0f} R {100 * r:3.0f} "
                              f"F {100 * f:3.0f} {rec['seconds']:5.1f}s {a.details.get('route')}", flush=True)
    table = []
    for name in SETS:
        per_doc: dict[str, dict[str, list[dict]]] = collections.defaultdict(lambda: collections.defaultdict(list))
        for r in records:
            if r["set"] == name:
                per_doc[r["strategy"]][r["index"]].append(r)
        base = strategies[0]
        docs = sorted(per_doc[base])
        for strategy in strategies:
            mean = {k: [100 * statistics.mean(x[k] for x in per_doc[strategy][d]) for d in docs]
                    for k in ("precision", "recall", "f1")}
            row = {"set": name, "strategy": strategy, "documents": len(docs),
                   **{k: round(statistics.mean(v), 1) for k, v in mean.items()},
                   "seconds": round(statistics.mean(x["seconds"] for d in docs for x in per_doc[strategy][d]), 1)}
            if strategy != base:
                for k in ("recall", "f1"):
                    b = [100 * statistics.mean(x[k] for x in per_doc[base][d]) for d in docs]
                    pr = paired(b, mean[k])
                    row[f"{k}_vs_{base}"] = [round(pr.diff, 1), round(pr.ci_low, 1), round(pr.ci_high, 1),
                                             pr.wins, pr.losses, pr.ties]
            table.append(row)
            print(json.dumps(row), flush=True)
    args.json.write_text(json.dumps({"cue": counts, "rows": table, "strategies": strategies, "options": options,
                                     "date": time.strftime("%Y-%m-%d")}, indent=1) + "\n")


if __name__ == "__main__":
    main()
