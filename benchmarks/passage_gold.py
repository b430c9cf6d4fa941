"""For how many questions of an L-Eval set the reference answer is located in the corpus (docqa/eval/retrieval.py's
rule), over the chunks docqa's own indexes hold — the questions the passage-level retrieval metrics can score.

    .venv/bin/python benchmarks/passage_gold.py ../shared/data/leval/financial_qa.jsonl \
        ../shared/data/leval/scientific_qa.jsonl --root benchmarks/out/indexes

Indexes are the ones `docqa eval --leval FILE --root ROOT` builds (leval-STEM-docNN); documents without one are
skipped and counted. Prints a table (Markdown) with the located share per set and per rule.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from docqa.eval.questions import load_leval
    from docqa.eval.retrieval import SHORT_WORDS, _content, gold_chunks
    from docqa.index.store import IndexStore

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--root", type=Path, default=ROOT / "benchmarks" / "out" / "indexes")
    args = ap.parse_args()
    print("| set | questions scored | with an index | answer located | short refs (substring) | long refs (≥ 60 % of "
          "content words) | gold chunks per located question |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for path in args.files:
        docs = load_leval(path)
        total = indexed = located = 0
        short = [0, 0]
        long = [0, 0]
        golds = []
        for name, _, qs in docs:
            qs = [q for q in qs if q.metric is not None and q.answers]
            total += len(qs)
            home = args.root / f"leval-{name}"
            if not home.is_dir():
                continue
            store = IndexStore(f"leval-{name}", args.root)
            chunks = [(c.id, c.text) for c in store.chunks()]
            store.close()
            for q in qs:
                indexed += 1
                gold = gold_chunks(q.answers, chunks)
                kind = short if max(len(_content(a)) for a in q.answers) <= SHORT_WORDS else long
                kind[0] += 1
                if gold:
                    located += 1
                    kind[1] += 1
                    golds.append(len(gold))
        mean = sum(golds) / len(golds) if golds else float("nan")
        print(f"| {path.stem} | {total} | {indexed} | {located} / {indexed} | {short[1]} / {short[0]} | "
              f"{long[1]} / {long[0]} | {mean:.1f} |")


if __name__ == "__main__":
    main()
