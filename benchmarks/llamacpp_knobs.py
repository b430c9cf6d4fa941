"""llama.cpp's context settings on this CPU: the prefill batch (n_batch = n_ubatch), flash attention, the KV type.

    .venv/bin/python benchmarks/llamacpp_knobs.py                     # qwen2.5-coder-1.5b at 1 k and 8 k tokens
    .venv/bin/python benchmarks/llamacpp_knobs.py --lengths 1024,8192,30000 --settings batch512,kv-q8

docqa's llama.cpp backend (docqa/generators/llamacpp_context.py) prefills 512 tokens a ``llama_decode`` call, keeps an
f16 KV cache, and turns flash attention on only for contexts past 16 k tokens. Each setting here changes one of those
(the module's constants, or the context parameters llama.cpp is given) and runs docqa's own generator in a process of
its own: prefill tokens/s at each length (one document prefix, as long-context prefills it), decode tokens/s after the
longest prefix, the seconds of a rag-sized prompt (650 tokens and one new token, best of three), and the answer after
the longest prefix (greedy: a setting that changes it changes what docqa answers). Text: the Paul Graham essays of
../shared/data/haystack. Writes benchmarks/results/llamacpp_knobs[-TAG].json and prints the table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from per_process import check_tag, parse_lengths, print_table, run_each, run_one_json, write_results

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HAYSTACK = ROOT.parent / "shared" / "data" / "haystack" / "paul_graham_essays"
# name → (tokens a llama_decode call, flash attention: None = docqa's rule by context size, KV type)
SETTINGS = {
    "batch256": (256, None, "f16"),
    "batch512": (512, None, "f16"),  # docqa's settings
    "batch1024": (1024, None, "f16"),
    "batch2048": (2048, None, "f16"),
    "flash-on": (512, True, "f16"),
    "kv-q8": (512, True, "q8_0"),  # a quantized V cache needs flash attention
}
QUESTION = "\n\nQuestion: What did the author work on before college? Answer in one sentence:"


def run_one(name: str, model: str, lengths: list[int]) -> dict:
    import llama_cpp

    import docqa.generators.llamacpp_context as context
    from docqa.generators import GeneratorConfig, load_generator

    batch, flash, kv = SETTINGS[name]
    context.N_BATCH, context.FLASH_ATTN = batch, flash
    if kv != "f16":
        defaults = llama_cpp.llama_context_default_params
        kind = getattr(llama_cpp, f"GGML_TYPE_{kv.upper()}")

        def params():
            p = defaults()
            p.type_k = p.type_v = kind
            return p

        llama_cpp.llama_context_default_params = params
    gen = load_generator(GeneratorConfig(model=f"llama.cpp:{model}", prefill="llama.cpp"))
    ids_all = gen.encode("\n\n".join(p.read_text() for p in sorted(HAYSTACK.glob("*.txt"))))
    row: dict = {"setting": name, "n_batch": batch, "flash_attn": flash, "kv": kv, "prefill": {}}
    state = None
    for n in lengths:
        state = None  # the previous prefix's cache is freed before the next is prefilled
        t = time.perf_counter()
        state = gen.prefill_prefix(ids_all[:n], gen.plain_plan(n + 600))
        row["prefill"][str(n)] = round(n / (time.perf_counter() - t), 1)
    out = gen.generate(gen.encode(QUESTION), 48, prefix=state)
    row["decode_tok_s"] = round(out.completion_tokens / max(out.decode_s, 1e-9), 2)
    row["answer"] = out.text
    state = None
    seconds = []
    for k in range(3):
        start = 2000 + 700 * k
        t = time.perf_counter()
        gen.generate(ids_all[start:start + 650], 1)
        seconds.append(time.perf_counter() - t)
    row["rag650_s"] = round(min(seconds), 2)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--lengths", default="1024,8192")
    ap.add_argument("--settings", default=",".join(SETTINGS), help=f"some of {', '.join(SETTINGS)}")
    ap.add_argument("--tag", default="", help="results file: benchmarks/results/llamacpp_knobs[-TAG].json")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one setting in this process
    args = ap.parse_args()
    lengths = parse_lengths(ap, args.lengths)
    names = [s.strip() for s in args.settings.split(",") if s.strip()]
    unknown = [s for s in names if s not in SETTINGS]
    if unknown or not names:
        ap.error(f"--settings: unknown {', '.join(unknown) or '(none given)'}; known: {', '.join(SETTINGS)}")
    tag = check_tag(ap, args.tag)
    if args.one:
        run_one_json(run_one, args.one, args.model, lengths)
        return

    rows = run_each(__file__, names, ["--model", args.model, "--lengths", args.lengths], "setting")
    write_results("llamacpp_knobs", tag, args.model, lengths, rows)
    base = next((r for r in rows if r.get("setting") == "batch512" and "error" not in r), None)
    print_table(rows, "setting", ["setting", *(f"prefill tok/s @{n}" for n in lengths),
                                  f"decode tok/s after {lengths[-1]}", "rag-sized prompt s", "answer as docqa's"],
                lambda r: [*(r["prefill"][str(n)] for n in lengths), r["decode_tok_s"], r["rag650_s"],
                           "—" if base is None else "yes" if r["answer"] == base["answer"] else "no"])

if __name__ == "__main__":
    main()
