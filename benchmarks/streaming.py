"""An answer drawn as it is written: when the first words of it reach a terminal, against when the whole answer does.

In one process (the models loaded once, as `docqa ask` with piped or typed questions loads them), each question of a
question file is asked with ``on_text`` — what `docqa ask` passes on a terminal — and the clock is read at the first
text drawn and at the answer's return. Strategies and answer styles from the command line; a long-context corpus is
prefilled by its first question (its seconds are reported apart: they come before any word, streamed or not).

    .venv/bin/python benchmarks/streaming.py --index examples --strategies rag,long-context \\
        --styles sentence,paragraph --limit 8

Writes benchmarks/results/streaming.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def ask_one(idx, question: str, strategy: str, style: str, max_new_tokens: int) -> dict:
    t0 = time.perf_counter()
    first: list[float] = []
    draws: list[str] = []

    def on_text(text: str) -> None:
        if not first:
            first.append(time.perf_counter() - t0)
        draws.append(text)

    ans = idx.ask(question, strategy, style=style, max_new_tokens=max_new_tokens, on_text=on_text)
    total = time.perf_counter() - t0
    return {"question": question, "strategy": strategy, "style": style, "first_text_s": first[0] if first else None,
            "answer_s": total, "draws": len(draws), "words": len(ans.text.split()),
            "completion_tokens": ans.tokens.get("completion", 0), "prefix": ans.details.get("prefix"),
            "last_draw_is_answer": bool(draws) and draws[-1] == ans.text}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", default="examples")
    ap.add_argument("--root", type=Path, default=None)
    ap.add_argument("--questions", type=Path, default=HERE.parent / "examples" / "questions.jsonl")
    ap.add_argument("--strategies", default="rag,long-context")
    ap.add_argument("--styles", default="sentence,paragraph")
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=160)
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "streaming.json")
    args = ap.parse_args()

    import docqa

    questions = [json.loads(line)["question"] for line in args.questions.read_text().splitlines() if line.strip()]
    questions = questions[: args.limit]
    idx = docqa.open_index(args.index, root=args.root, model=args.model)
    idx.load()
    rows = []
    for strategy in args.strategies.split(","):
        for style in args.styles.split(","):
            for q in questions:
                row = ask_one(idx, q, strategy, style, args.max_new_tokens)
                rows.append(row)
                print(f"{strategy:13} {style:9} first {row['first_text_s'] or float('nan'):6.2f} s  answer "
                      f"{row['answer_s']:6.2f} s  {row['words']:3} words  {row['prefix'] or ''}", flush=True)

    table = []
    print("\n| strategy | style | questions | first words, s (median) | whole answer, s (median) | "
          "answer words (median) | seconds sooner (median) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for strategy in args.strategies.split(","):
        for style in args.styles.split(","):
            # A question that prefilled the corpus is left out: its minute comes before any word either way.
            these = [r for r in rows if r["strategy"] == strategy and r["style"] == style and r["first_text_s"]
                     and r["prefix"] != "prefilled"]
            if not these:
                continue
            cell = {"strategy": strategy, "style": style, "questions": len(these),
                    "first_text_s": statistics.median(r["first_text_s"] for r in these),
                    "answer_s": statistics.median(r["answer_s"] for r in these),
                    "words": statistics.median(r["words"] for r in these),
                    "sooner_s": statistics.median(r["answer_s"] - r["first_text_s"] for r in these)}
            table.append(cell)
            print(f"| {strategy} | {style} | {cell['questions']} | {cell['first_text_s']:.2f} | "
                  f"{cell['answer_s']:.2f} | {cell['words']:.0f} | {cell['sooner_s']:.2f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": platform.processor() or platform.machine(),
                                    "cpu": _cpu(), "date": time.strftime("%Y-%m-%d"), "index": args.index,
                                    "model": idx._model_name(), "table": table, "rows": rows}, indent=1))
    print(f"\nwrote {args.out}")


def _cpu() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


if __name__ == "__main__":
    main()
