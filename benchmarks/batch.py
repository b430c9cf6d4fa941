"""Batched generation: rag over examples/questions.jsonl at batch 1 and batch N on the embedded model.

    .venv/bin/python benchmarks/batch.py [--batch 8] [--limit 39] [--threads T]

Same index (examples/docs, real embedder), same greedy decoding, 96-token budget. Reports questions per second at
each batch size, the speed-up, and whether every answer is identical to batch 1 (it must be). Decoding reads every
weight once a step; a batch shares that read, and shares the per-step Python and framework overhead, which on a
135 M model is most of a step. Prefill does the same arithmetic batched or not. Writes benchmarks/results/batch.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--limit", type=int, default=39)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--dtype", default="auto", help="the generator's --dtype")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "batch.json")
    args = ap.parse_args()
    import torch

    import docqa
    from docqa.eval.questions import load_jsonl

    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="docqa-batch-"))
    docqa.ingest(ROOT / "examples" / "docs", "examples", root=root)
    from docqa.generators import GeneratorConfig

    index = docqa.open_index("examples", root=root, generator=GeneratorConfig(dtype=args.dtype))
    questions = [q.question for q in load_jsonl(ROOT / "examples" / "questions.jsonl")][: args.limit]
    index.ask(questions[0], "rag")  # load both models before timing
    rows, answers = [], {}
    for size in (1, args.batch):
        t0 = time.perf_counter()
        got = index.ask_many(questions, "rag", batch_size=size)
        seconds = time.perf_counter() - t0
        answers[size] = [a.text for a in got]
        rows.append({"batch": size, "questions": len(got), "seconds": round(seconds, 1),
                     "questions_per_s": round(len(got) / seconds, 3),
                     "completion_tokens": sum(a.tokens["completion"] for a in got),
                     "prompt_tokens": sum(a.tokens["prompt"] for a in got)})
    same = sum(a == b for a, b in zip(answers[1], answers[args.batch], strict=True))
    speedup = rows[1]["questions_per_s"] / rows[0]["questions_per_s"]
    result = {"dtype": args.dtype, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": platform.processor() or platform.machine(), "cores": os.cpu_count(),
              "torch_threads": torch.get_num_threads(), "rows": rows,
              "speedup": round(speedup, 2), "identical_answers": f"{same}/{len(questions)}"}
    print(f"{'batch':>6} {'questions':>9} {'seconds':>8} {'q/s':>7} {'prompt tok':>10} {'answer tok':>10}")
    for r in rows:
        print(f"{r['batch']:>6} {r['questions']:>9} {r['seconds']:>8} {r['questions_per_s']:>7} "
              f"{r['prompt_tokens']:>10} {r['completion_tokens']:>10}")
    print(f"speed-up {speedup:.2f}x; answers identical to batch 1: {same}/{len(questions)}")
    for i, (a, b) in enumerate(zip(answers[1], answers[args.batch], strict=True)):
        if a != b:
            print(f"  q{i}: batch 1 {a!r}\n       batch {args.batch} {b!r}")
    out = args.out
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
