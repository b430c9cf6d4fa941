"""How far transformers' bf16 keys and values are from llama.cpp's own, for the prefill handover.

    .venv/bin/python benchmarks/handover_agreement.py [--model qwen2.5-coder-1.5b] [--lengths 48,600]

For each length n, the first n tokens of examples/docs/employee_handbook.md are evaluated by llama.cpp (its cache
read back as a sequence state) and prefilled by the handover's transformers model in bf16 (a forward of n tokens:
64 or fewer take docqa's grouped attention, docqa/attention.py, more take SDPA); printed: the largest relative
difference over layers (docqa.generators.prefill_assist.disagreement) of keys and of values, and for the longest
length also its first rows against the shortest length's llama.cpp cache (the same positions through SDPA).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--lengths", default="48,600")
    args = ap.parse_args()
    from docqa.generators import GeneratorConfig, load_generator
    from docqa.generators.llamacpp_state import parse_state
    from docqa.generators.prefill_assist import disagreement

    gen = load_generator(GeneratorConfig(model=f"llama.cpp:{args.model}", prefill="transformers"))
    assist = gen._handover.assist
    if assist is None:
        raise SystemExit(f"no handover for this model: {gen._handover.reason}")
    assist.prepare()
    ids = gen.encode((ROOT / "examples" / "docs" / "employee_handbook.md").read_text())
    lengths = sorted(int(x) for x in args.lengths.split(","))

    def llama_cache(n: int):
        gen._kv.create((gen._rope_settings(gen.plain_plan(n + 64)), max(2048, n + 64)))
        gen._kv.eval(ids[:n])
        return parse_state(gen._kv.state())

    print("| forward | keys apart | values apart |\n|---|---:|---:|")
    for n in lengths:
        mine = llama_cache(n)
        keys, values = assist.keys_values(ids[:n])
        print(f"| {n} tokens | {disagreement(keys, mine.keys):.1%} | {disagreement(values, mine.values):.1%} |")
    first, last = lengths[0], lengths[-1]
    if first < last:
        mine = llama_cache(first)
        keys, values = assist.keys_values(ids[:last])
        print(f"| first {first} rows of the {last}-token forward | "
              f"{disagreement([k[:first] for k in keys], mine.keys):.1%} | "
              f"{disagreement([v[:first] for v in values], mine.values):.1%} |")


if __name__ == "__main__":
    main()
