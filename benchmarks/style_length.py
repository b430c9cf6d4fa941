"""The answer style's own length against L-Eval's length hint: does the reader write the length it is asked for?

    .venv/bin/python benchmarks/style_length.py --leval SET.jsonl --instruction free --out OUT [--strategies S]
    .venv/bin/python benchmarks/style_length.py --leval SET.jsonl --instruction style --out CONTROL
    .venv/bin/docqa compare CONTROL OUT

Under L-Eval's protocol each free-text question of more than a few words carries "Answer in about N words." while
the system prompt still says the style's own length ("in one short sentence", "in a short paragraph of two to four
sentences"). On financial QA the 1.5 B reader wrote about half the words it was asked for (median 29 against 55;
precision 0.53 over recall 0.35). This script runs ``docqa.evaluate`` exactly as ``docqa eval --leval`` does, with
the sentence and paragraph styles' instructions patched:

- ``style``: docqa's instructions as they are (a control)
- ``free``: "Answer the question from the context." — the length comes from the question's hint alone

Prints each row with the answers' median length against their references'.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

INSTRUCTIONS = ("style", "free")
FREE = "Answer the question from the context."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leval", type=Path, required=True)
    ap.add_argument("--instruction", choices=INSTRUCTIONS, required=True)
    ap.add_argument("--strategies", default="long-context")
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--limit-docs", type=int)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--root", type=Path, default=ROOT / "benchmarks" / "out" / "indexes")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import docqa
    from docqa import prompts
    from docqa.generators import GeneratorConfig

    if args.instruction == "free":  # "style" leaves docqa's instructions as they are
        for name in ("sentence", "paragraph"):
            prompts.STYLES.register(name, replace(prompts.STYLES.get(name), instruction=FREE), replace=True)
    try:
        records, rows = docqa.evaluate(leval=args.leval, strategies=args.strategies.split(","), out=args.out,
                                       root=args.root, model=args.model, limit_docs=args.limit_docs,
                                       generator=GeneratorConfig(threads=args.threads))
    except docqa.DocQAError as e:  # a missing set, an unknown model: one line, as docqa's own commands say it
        sys.exit(f"error: {e}")
    for row in rows:
        rs = [r for r in records if r["strategy"] == row["strategy"] and r["references"]]
        words = statistics.median(len(r["answer"].split()) for r in rs)
        ref = statistics.median(len(r["references"][0].split()) for r in rs)
        print(f"{row['strategy']} ({args.instruction}): F1 {100 * row['f1']:.1f} over {row['questions']} questions, "
              f"answers {words:g} words (median) against references' {ref:g}")


if __name__ == "__main__":
    main()
