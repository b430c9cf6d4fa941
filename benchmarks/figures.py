"""Figures an answer states that the text it read does not hold: how often `docqa ask`'s warning fires on real
answers, and whether the answers it fires on are worse.

No model runs: the answers are eval records already made with the 1.5 B reader (the one-machine runs of
benchmarks/RESULTS.md), the text each one read is its L-Eval document (long-context) or the passages its record holds
(rag), and the check is the one `Index.evidence` makes (docqa/eval/grounding.py, ``evidence``). A figure also in the
reference is counted apart: there the warning fired on a figure the reference confirms (a false alarm, unless the
reference itself computed it).

    .venv/bin/python benchmarks/figures.py --leval ../shared/data/leval \\
        --runs financial_qa:prefix-style-lc-fin-qwen15:long-context financial_qa:topk-fin-qwen15:rag \\
               scientific_qa:prefix-style-lc-sci-qwen15:long-context

Writes benchmarks/results/figures.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from docqa.eval.grounding import _FIGURE, _figure, evidence  # noqa: E402

PAIRED = HERE / "results" / "paired"


def documents(path: Path) -> dict[str, str]:
    """L-Eval document id (``financial_qa-doc01``, as docqa eval names them) → its text."""
    stem = path.stem
    return {f"{stem}-doc{i:02d}": json.loads(line)["input"]
            for i, line in enumerate(path.read_text().splitlines(), 1) if line.strip()}


def read_text(record: dict, docs: dict[str, str]) -> list[str] | None:
    """What the record's strategy read: its passages' text, or its whole document; None where the record holds
    neither."""
    if record.get("read") == "chunks":
        texts = [p.get("text") or "" for p in record.get("passages") or []]
        return texts if texts and all(texts) else None
    return [docs[record["document"]]] if record.get("document") in docs else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--leval", type=Path, required=True, help="folder of the L-Eval .jsonl files")
    ap.add_argument("--runs", nargs="+", required=True, help="SET:RECORDS:STRATEGY (records under results/paired)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "figures.json")
    args = ap.parse_args()

    table = []
    print("| set | strategy | answers | with a figure | warned | token F1 warned / not | flagged figures also in "
          "the reference |")
    print("|---|---|---:|---:|---:|---|---:|")
    for run in args.runs:
        set_name, records, strategy = run.split(":")
        docs = documents(args.leval / f"{set_name}.jsonl")
        rows = [json.loads(line) for line in (PAIRED / f"{records}.jsonl").read_text().splitlines() if line.strip()]
        rows = [r for r in rows if r.get("strategy") == strategy and not r.get("error")]
        warned, quiet, in_ref, flagged, with_figure, skipped = [], [], 0, 0, 0, 0
        for r in rows:
            text = read_text(r, docs)
            if text is None:
                skipped += 1
                continue
            _, missing = evidence(r["answer"], text, question=r["question"])
            with_figure += bool(re.search(r"\d", r["answer"]))
            f1 = r["metrics"]["f1"]
            (warned if missing else quiet).append(f1)
            refs = {_figure(n) for ref in r["references"] for n in _FIGURE.findall(ref)}
            flagged += len(missing)
            in_ref += sum(_figure(n) in refs for n in missing)
        cell = {"set": set_name, "records": records, "strategy": strategy, "answers": len(warned) + len(quiet),
                "skipped": skipped, "with_figure": with_figure, "warned": len(warned),
                "f1_warned": statistics.mean(warned) if warned else None,
                "f1_quiet": statistics.mean(quiet) if quiet else None,
                "flagged_figures": flagged, "flagged_in_reference": in_ref}
        table.append(cell)

        def pct(x):
            return "—" if x is None else f"{100 * x:.1f}"

        print(f"| {set_name} | {strategy} | {cell['answers']} | {with_figure} | {len(warned)} | "
              f"{pct(cell['f1_warned'])} / {pct(cell['f1_quiet'])} | {in_ref} of {flagged} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "table": table}, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
