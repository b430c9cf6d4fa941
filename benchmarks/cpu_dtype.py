"""The CPU dtype per phase: is ``--dtype auto`` (bf16 prefill where the probe says bf16 wins, fp32 decoding) faster
than fp32 at the same perplexity, and does it keep decoding after a long prefix fast?

    .venv/bin/python benchmarks/cpu_dtype.py [--lengths 4096,8192] [--decode-prefix 8192]

Embedded SmolLM2-135M on the Paul Graham essays (../shared/data/haystack). For each of fp32, bf16 (everything) and
auto: prefill tokens/s at each length, perplexity of the last 1 024 tokens of an 8 k slice, and decode ms/token after
a cached prefix. Writes benchmarks/results/cpu_dtype.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ESSAYS = ROOT.parent / "shared" / "data" / "haystack" / "paul_graham_essays"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", default="4096,8192")
    ap.add_argument("--decode-prefix", type=int, default=8192)
    ap.add_argument("--decode-tokens", type=int, default=24)
    args = ap.parse_args()
    from docqa.environment import cpu_name
    from docqa.generators import GeneratorConfig, TransformersGenerator, dtypes
    from docqa.generators.gguf import resolve_model  # noqa: F401 - the embedded model's folder
    from docqa.paths import DEFAULT_GENERATOR

    text = "\n\n".join(p.read_text() for p in sorted(ESSAYS.glob("*.txt")))
    lengths = [int(x) for x in args.lengths.split(",")]
    probe = dtypes.cpu_probe(refresh=True)
    rows = []
    ids_all = None
    for label in ("float32", "bfloat16", "auto"):
        gen = TransformersGenerator(DEFAULT_GENERATOR, DEFAULT_GENERATOR,
                                    GeneratorConfig(device="cpu", dtype=label))
        ids_all = ids_all or gen.encode(text)
        row = {"dtype": label, "phases": gen.dtypes.reason}
        for n in lengths:
            ids = ids_all[:n]
            t0 = time.perf_counter()
            gen.prefill_prefix(ids, gen.plain_plan(n))
            row[f"prefill_tok_s_{n}"] = round(n / (time.perf_counter() - t0), 1)
        ids = ids_all[: 8192]
        logp = gen.tail_logprobs(ids, gen.plain_plan(len(ids)), 1024)
        row["ppl_8k_tail1024"] = round(math.exp(-float(logp.mean())), 3)
        prefix = gen.prefill_prefix(ids_all[: args.decode_prefix], gen.plain_plan(args.decode_prefix + 512))
        q = ids_all[args.decode_prefix: args.decode_prefix + 16]
        out = gen.generate(q, args.decode_tokens, prefix=prefix)
        row["decode_ms_token"] = round(1000 * out.decode_s / max(1, out.completion_tokens), 1)
        row["decode_after"] = args.decode_prefix
        rows.append(row)
        print(row, flush=True)
        del gen, prefix
        gc.collect()
    base = rows[0]["ppl_8k_tail1024"]
    for r in rows:
        r["ppl_vs_fp32"] = round(r["ppl_8k_tail1024"] / base - 1, 4)
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpu": cpu_name(),
              "cores": os.cpu_count(), "probe": probe, "rows": rows}
    out_path = ROOT / "benchmarks" / "results" / "cpu_dtype.json"
    out_path.write_text(json.dumps(result, indent=2) + "\n")
    cols = ["dtype", *[f"prefill_tok_s_{n}" for n in lengths], "ppl_8k_tail1024", "ppl_vs_fp32", "decode_ms_token"]
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r[c]) for c in cols))
    print(f"wrote {out_path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
