"""The reader per phase: llama.cpp in process against docqa's transformers path, on one machine in one run.

    .venv/bin/python benchmarks/reader.py                       # qwen2.5-coder-1.5b, 1k / 8k / 30k tokens
    .venv/bin/python benchmarks/reader.py --lengths 1024,8192 --backends llama.cpp
    .venv/bin/python benchmarks/reader.py --backends llama.cpp,handover,transformers

Backends: ``llama.cpp`` (llama.cpp alone: --prefill llama.cpp), ``handover`` (llama.cpp decoding, prompts prefilled
by transformers in bf16 and handed over: --prefill transformers), ``transformers`` (docqa's transformers path).

For each backend, in a process of its own (so its peak resident memory is its own): load time, prefill tokens/s at
each length (a document prefix prefilled once, as long-context does), decode tokens/s after the longest prefix, peak
RSS, and the answers both give to the same questions over examples/'s employee handbook (greedy, so they should
agree where the quantized and dequantized weights do). Text: the Paul Graham essays of ../shared/data/haystack.
Writes benchmarks/results/reader[-TAG].json and prints the table.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

from per_process import check_tag, parse_lengths, print_table, run_each, run_one_json, write_results

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HAYSTACK = ROOT.parent / "shared" / "data" / "haystack" / "paul_graham_essays"
QUESTIONS = ["How long is the probation period for new employees?",
             "How many days a week do hybrid employees work from the office at least?",
             "For how many working days a year may you work from another country?"]


def _policy_text() -> str:
    return (ROOT / "examples" / "docs" / "employee_handbook.md").read_text()  # 2.6 k tokens; it answers QUESTIONS


def run_backend(backend: str, model: str, lengths: list[int], decode_tokens: int) -> dict:
    from docqa.generators import GeneratorConfig, load_generator

    prefill = {"llama.cpp": "llama.cpp", "handover": "transformers"}.get(backend)
    spec = f"{'llama.cpp' if backend == 'handover' else backend}:{model}"
    t0 = time.perf_counter()
    gen = load_generator(GeneratorConfig(model=spec, prefill=prefill))
    handover = getattr(gen, "_handover", None)
    if handover is not None and handover.assist is not None:  # load the transformers side now, not in a prefill
        warm = gen.encode(_policy_text())[:600]
        gen.prefill_prefix(warm, gen.plain_plan(700))
    load_s = time.perf_counter() - t0
    text = "\n\n".join(p.read_text() for p in sorted(HAYSTACK.glob("*.txt")))
    ids_all = gen.encode(text)
    row: dict = {"spec": backend if backend == "handover" else gen.spec, "load_s": round(load_s, 1), "prefill": {},
                 "dtypes": getattr(getattr(gen, "dtypes", None), "reason", None) or getattr(gen, "dtypes_reason", "")}
    state = None
    for n in lengths:
        ids = ids_all[:n]
        plan = gen.plain_plan(n + 600)
        t = time.perf_counter()
        state = gen.prefill_prefix(ids, plan)
        dt = time.perf_counter() - t
        row["prefill"][str(n)] = round(n / dt, 1)
        print(f"  {gen.spec}: prefill {n} tokens in {dt:.1f} s ({n / dt:.1f} tok/s)", flush=True)
    # Decode after the longest prefix: a question that asks for a long answer; ban nothing, count what comes.
    ask = gen.encode("\n\nSummarize the essays above in detail, point by point.")
    out = gen.generate(ask, decode_tokens, prefix=state)
    row["decode_after"] = lengths[-1]
    row["decode_tokens"] = out.completion_tokens
    row["decode_tok_s"] = round(out.completion_tokens / max(out.decode_s, 1e-9), 2)
    del state
    doc = _policy_text()
    row["answers"] = [gen.generate(gen.chat("Answer from the documents in a few words.",
                                            f"Documents:\n{doc}\n\nQuestion: {q}"), 48, stop=("\n",)).text
                      for q in QUESTIONS]
    row["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--backends", default="llama.cpp,transformers")
    ap.add_argument("--lengths", default="1024,8192,30000")
    ap.add_argument("--decode-tokens", type=int, default=32)
    ap.add_argument("--tag", default="", help="results file: benchmarks/results/reader[-TAG].json")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one backend in this process
    args = ap.parse_args()
    lengths = parse_lengths(ap, args.lengths)
    tag = check_tag(ap, args.tag)
    if args.one:
        run_one_json(run_backend, args.one, args.model, lengths, args.decode_tokens)
        return
    passed = ["--model", args.model, "--lengths", args.lengths, "--decode-tokens", str(args.decode_tokens)]
    rows = run_each(__file__, args.backends.split(","), passed, "spec", echo=True)
    write_results("reader", tag, args.model, lengths, rows)
    print_table(rows, "spec", ["backend", "load s", *(f"prefill tok/s @{n}" for n in lengths),
                               f"decode tok/s after {lengths[-1]}", "peak RSS GB"],
                lambda r: [r["load_s"], *(r["prefill"][str(n)] for n in lengths), r["decode_tok_s"], r["peak_rss_gb"]])
    for r in rows:
        print(r["spec"], r.get("answers"))


if __name__ == "__main__":
    main()
