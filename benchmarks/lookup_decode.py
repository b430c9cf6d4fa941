"""Prompt-lookup (speculative) decoding for the llama.cpp reader: what a verify step costs, what it would accept.

Speculative decoding guesses the next k tokens and has the model check them in one forward of k + 1 rows; greedy
output is kept exactly where a guess is right. Prompt lookup guesses by copying what followed the answer's last
n-gram where it occurs in the prompt (llama-cpp-python's ``LlamaPromptLookupDecoding``, transformers'
``prompt_lookup_num_tokens``), which suits answers copied from documents. Whether it pays depends on two numbers this
script measures:

1. the cost of one ``llama_decode`` of k + 1 rows against one row, at a rag-sized and a long-context-sized cache
   (the 1.5 B reader, in process, the threads of ``--threads``);
2. how many tokens a step would accept, replayed offline on answers already recorded by ``docqa eval`` (exact for
   greedy decoding up to the rounding of the several-row kernels): each answer is re-tokenized, the prompt is
   approximated by the text the strategy read (rag's passages, long-context's document) plus the question.

The modelled decode speed-up of a policy is tokens / sum(cost of each step's rows).

    .venv/bin/python benchmarks/lookup_decode.py --records topk-fin-qwen15 prefix-style-lc-fin-qwen15 \\
        prefix-style-lc-sci-qwen15 quotes-pilot-fin-qwen15

Writes benchmarks/results/lookup_decode.json and prints both tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

LEVAL = HERE.parent.parent / "shared" / "data" / "leval"
ROWS = (1, 2, 3, 5, 9)


def verify_cost(model: str, threads: int, lengths: list[int], reps: int = 4) -> dict[int, dict[int, float]]:
    """Seconds of one llama_decode of k rows (logits for each) after ``n`` cached tokens, best of ``reps``."""
    from docqa.generators import load_generator
    from docqa.generators.base import GeneratorConfig

    gen = load_generator(GeneratorConfig(model=model, threads=threads))
    text = json.loads((LEVAL / "financial_qa.jsonl").open().readline())["input"]
    ids = gen.encode(text)
    ids = ids * (1 + (max(lengths) + max(ROWS)) // len(ids))  # room for the longest cache and its rows after it
    kv = gen._kv  # the backend's one context (docqa/generators/llamacpp_context.py)
    out: dict[int, dict[int, float]] = {}
    for n in lengths:
        plan = gen.plain_plan(n + 64)
        kv.fresh(n + 64, gen._rope_settings(plan), gen._limit(plan))
        kv.eval(ids[:n])
        out[n] = {}
        for k in ROWS:
            times = []
            for _ in range(reps):
                rows = ids[n:n + k]
                t = time.perf_counter()
                kv._batch.set_batch(batch=rows, n_past=len(kv.tokens), logits_all=True)
                kv.ctx.decode(kv._batch)
                times.append(time.perf_counter() - t)
                kv.tokens.extend(rows)
                kv.truncate(n)
            out[n][k] = min(times)
    return out


def find(seq, max_ngram: int, k: int, min_ngram: int):
    """The k tokens that followed the most recent earlier occurrence of ``seq``'s longest final n-gram
    (``min_ngram`` ≤ n ≤ ``max_ngram``), or none. Not llama-cpp-python's
    ``LlamaPromptLookupDecoding.find_candidate_pred_tokens``: it takes the first occurrence and always falls back to a
    1-gram, and the policies replayed here need a minimum match length (guessing after 1-grams lost on both sets)."""
    import numpy as np

    for n in range(min(max_ngram, len(seq) - 1), min_ngram - 1, -1):
        windows = np.lib.stride_tricks.sliding_window_view(seq[:-1], n)
        hits = np.nonzero(np.all(windows == seq[-n:], axis=1))[0]
        if len(hits):
            return seq[hits[-1] + n: hits[-1] + n + k]
    return seq[:0]


POLICIES = {  # name: (max n-gram, tokens drafted, min n-gram)
    "n-gram 1-3, 4 tokens": (3, 4, 1),
    "n-gram 1-3, 8 tokens": (3, 8, 1),
    "n-gram 3-4, 2 tokens": (4, 2, 3),
    "n-gram 3-4, 4 tokens": (4, 4, 3),
    "n-gram 4-5, 8 tokens": (5, 8, 4),
}


def replay(records: Path, cost: dict[int, float]) -> dict[str, dict]:
    """Per policy: tokens, verify steps, rows evaluated and the modelled speed-up over one row a token."""
    import numpy as np

    from docqa.generators import load_tokenizer

    enc = load_tokenizer("qwen2.5-coder-1.5b")
    docs = {}
    for name in ("financial_qa", "scientific_qa"):
        for i, line in enumerate((LEVAL / f"{name}.jsonl").open()):
            docs[f"{name}-doc{i + 1:02d}"] = json.loads(line)["input"]
    cases = []
    for line in records.open():
        r = json.loads(line)
        if r["strategy"] == "rag" and r.get("passages") and r["passages"][0].get("text"):
            text = "\n".join(p["text"] for p in r["passages"])
        elif r["strategy"].startswith("long-context"):
            text = docs[r["id"].rsplit("-q", 1)[0]]
        else:
            continue
        # a quotes-first reply (the pilot of RESULTS.md "Quotes first"): its quotes, copied from the document
        out = enc(r.get("quoted") or r["answer"])
        if out:
            cases.append((np.array(enc(text + "\n" + r["question"]), dtype=np.intc), out))
    if not cases:
        return {}
    rate = {k: cost[k] / cost[1] for k in cost}

    def step_cost(rows: int) -> float:  # interpolate between measured row counts
        lo = max(k for k in rate if k <= rows)
        hi = min((k for k in rate if k >= rows), default=lo)
        return rate[lo] if hi == lo else rate[lo] + (rate[hi] - rate[lo]) * (rows - lo) / (hi - lo)

    result = {}
    for name, (max_n, k, min_n) in POLICIES.items():
        tokens = steps = drafted = accepted = 0
        modelled = 0.0
        for prompt, out in cases:
            t, modelled, steps = 1, modelled + 1, steps + 1  # the first token comes with the prefill
            while t < len(out):
                draft = find(np.concatenate([prompt, np.array(out[:t], dtype=np.intc)]), max_n, k, min_n)
                a = 0
                while a < len(draft) and t + a < len(out) and draft[a] == out[t + a]:
                    a += 1
                modelled += step_cost(1 + len(draft))
                steps, drafted, accepted, t = steps + 1, drafted + len(draft), accepted + a, t + a + 1
            tokens += len(out)
        result[name] = {"answers": len(cases), "tokens": tokens, "steps": steps, "drafted": drafted,
                        "accepted": accepted, "speedup": round(tokens / modelled, 3)}
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", nargs="+", required=True, help="names under benchmarks/results/paired/")
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("DOCQA_THREADS", 2)))
    ap.add_argument("--lengths", default="700,5500", help="cached tokens before the verify step")
    args = ap.parse_args()
    lengths = [int(x) for x in args.lengths.split(",")]
    cost = verify_cost(args.model, args.threads, lengths)
    print("| cached tokens | " + " | ".join(f"{k} row{'s' if k > 1 else ''}" for k in ROWS) + " |")
    print("|---:|" + "---:|" * len(ROWS))
    for n, row in cost.items():
        print(f"| {n:,} | " + " | ".join(f"{row[k] * 1000:.0f} ms ({row[k] / row[1]:.2f}x)" for k in ROWS) + " |")
    replays = {}
    for name in args.records:
        # rag's prompts are ~700 tokens, long-context's ~5 k: each replay is costed at the nearer measured length
        n = min(cost, key=lambda c: abs(c - (700 if "rag" in name or "topk" in name else 5500)))
        replays[name] = replay(HERE / "results" / "paired" / f"{name}.jsonl", cost[n])
        if not replays[name]:
            print(f"{name}: no rag or long-context answer with the text it read")
        for policy, r in replays[name].items():
            print(f"{name:32s} {policy:22s} tokens/step {r['tokens'] / r['steps']:.2f}  accepted "
                  f"{r['accepted']}/{r['drafted']} drafted  modelled speed-up {r['speedup']:.2f}x")
    out = {"machine": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d"),
           "threads": args.threads, "verify_cost_s": cost, "replay": replays}
    (HERE / "results" / "lookup_decode.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
