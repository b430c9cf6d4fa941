"""L-Eval's length hint in another wording: does the reader stop echoing it as its answer?

    .venv/bin/python benchmarks/hint_wording.py --leval SET.jsonl --wording leval --out OUT [--strategies S]
    .venv/bin/docqa compare CONTROL OUT      # CONTROL: docqa eval --leval ... (docqa's wording)

docqa eval follows L-Eval's protocol and asks each free-text question for an answer of about its reference's length.
Until 2026-12-06 it appended L-Eval's own sentence, "The suggested output length is around N words."; the 1.5 B reader
answered some questions with that sentence itself (4-6 % of every row's answers, benchmarks/RESULTS.md), so
docqa.prompts.with_length now puts "Answer in about N words." on its own line. This script runs ``docqa.evaluate``
exactly as ``docqa eval --leval`` does, with only that sentence patched:

- ``leval``: L-Eval's sentence, after the question (docqa's wording before 2026-12-06)
- ``instruction``: the question, then on its own line "Answer in about N words." (docqa's wording now; a control)

Prints the rows and how many answers echo a length request.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORDINGS = ("leval", "instruction")


def leval_sentence(question: str, length_hint: int | None) -> str:
    """The question as L-Eval's baselines read it (docqa.prompts.with_length before 2026-12-06): its sentence run on
    after the question."""
    question = question.strip()
    return f"{question} The suggested output length is around {length_hint} words." if length_hint else question


ECHO = re.compile(r"(suggested output length|answer in about \d+ words|around \d+ words)", re.I)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leval", type=Path, required=True)
    ap.add_argument("--wording", choices=WORDINGS, required=True)
    ap.add_argument("--strategies", default="long-context")
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--root", type=Path, default=ROOT / "benchmarks" / "out" / "indexes")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import docqa
    from docqa import prompts
    from docqa.generators import GeneratorConfig

    if args.wording == "leval":  # "instruction" is docqa's own with_length, left as it is
        prompts.with_length = leval_sentence
    records, rows = docqa.evaluate(leval=args.leval, strategies=args.strategies.split(","), out=args.out,
                                   root=args.root, model=args.model,
                                   generator=GeneratorConfig(threads=args.threads))
    for row in rows:
        rs = [r for r in records if r["strategy"] == row["strategy"]]
        echoes = sum(bool(ECHO.search(r["answer"])) for r in rs)
        print(f"{row['strategy']} ({args.wording}): F1 {100 * row['f1']:.1f} over {row['questions']} questions, "
              f"{echoes} answers echo a length request")


if __name__ == "__main__":
    main()
