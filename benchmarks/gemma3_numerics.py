"""Gemma 3 270M (a real hybrid-attention checkpoint) through docqa's in-process path, against transformers' own forward.

What it proves, each on real text (Paul Graham's essays, ../shared/data/haystack) in fp32:
1. within the window (2 k and 16 k tokens): docqa's logits — its chunked prefill into its own caches (full layers in
   place, sliding layers keeping their last 511 positions), its rope installed per layer type, its few-query
   attention for the question — equal transformers' untouched model's (max |Δ| over the last 64 positions);
2. a question over a reused prefix (kept in memory, and saved to disk and loaded back) gives the tokens of a fresh run;
3. past the 32 k window (global layers stretched by YaRN, sliding layers untouched): one full pass of the whole text
   equals a chunked prefill followed by token-by-token decoding of the last positions (cached keys and new queries
   rotate alike);
4. the KV bytes a 32 k-token cache holds, per layer type, against a cache that kept every position in every layer.

Gemma's terms of use apply to the checkpoint; it is installed only by ``make gemma3``. Writes
``benchmarks/results/gemma3_numerics.json``; RESULTS.md quotes it.

    .venv/bin/python benchmarks/gemma3_numerics.py [--lengths 2048 16384] [--past 33792] [--tail 64]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from docqa.generators import GeneratorConfig, TransformersGenerator  # noqa: E402
from docqa.generators.gguf import resolve_model  # noqa: E402
from docqa.kv_cache import new_cache  # noqa: E402
from docqa.rope import plan_for  # noqa: E402

HAYSTACK = ROOT.parent / "shared" / "data" / "haystack" / "paul_graham_essays"


def text_ids(gen, n: int) -> list[int]:
    text = "\n\n".join(p.read_text() for p in sorted(HAYSTACK.glob("*.txt")))
    ids = gen.encode(text)
    while len(ids) < n:
        ids = ids + ids
    return ids[:n]


def docqa_tail_logits(gen, ids: list[int], plan, tail: int) -> torch.Tensor:
    """docqa's path: the head prefilled in chunks into docqa's cache, then the last ``tail`` tokens as one question."""
    with torch.inference_mode():
        gen._apply_rope(plan)
        cache = new_cache(gen.model.config, expected=len(ids), dtype=gen.model.dtype)
        gen._prefill(ids[:-tail], cache, None, logits=False)
        t = torch.tensor([ids[-tail:]], device=gen.device)
        return gen.model(input_ids=t, use_cache=True, **{gen._cache_kw: cache}).logits[0].float()


def reference_tail_logits(ref, ids: list[int], tail: int) -> torch.Tensor:
    with torch.inference_mode():
        return ref(input_ids=torch.tensor([ids]), logits_to_keep=tail).logits[0].float()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[2048, 16384])
    ap.add_argument("--past", type=int, default=33792, help="a length past the 32 k window (0: skip)")
    ap.add_argument("--tail", type=int, default=64)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gemma3_numerics.json")
    args = ap.parse_args()

    from transformers import AutoModelForCausalLM

    folder = resolve_model("gemma3-270m")
    gen = TransformersGenerator("gemma3-270m", folder, GeneratorConfig(model="gemma3-270m", dtype="float32"))
    ref = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()  # transformers' own, untouched
    rm = gen.rope_model()
    out: dict = {"machine": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d"),
                 "torch": torch.__version__, "threads": torch.get_num_threads(), "within": [], "past": None}
    import transformers

    out["transformers"] = transformers.__version__
    for n in args.lengths:
        ids = text_ids(gen, n)
        plan = plan_for("yarn", rm, n)
        t0 = time.perf_counter()
        mine = docqa_tail_logits(gen, ids, plan, args.tail)
        t1 = time.perf_counter()
        want = reference_tail_logits(ref, ids, args.tail)
        t2 = time.perf_counter()
        row = {"tokens": n, "max_abs_diff": (mine - want).abs().max().item(), "logit_scale": want.abs().max().item(),
               "same_argmax": bool((mine.argmax(-1) == want.argmax(-1)).all()), "docqa_s": t1 - t0,
               "transformers_s": t2 - t1, "plan": plan.to_dict()}
        print(json.dumps(row), flush=True)
        out["within"].append(row)

    # A question over a reused prefix (in memory, and through disk) gives a fresh run's tokens.
    doc = text_ids(gen, 4096)
    question = gen.encode("\n\nQuestion: What did the author say about startups?\nAnswer:")
    plan = plan_for("yarn", rm, len(doc) + len(question) + 16)
    prefix = gen.prefill_prefix(doc, plan)
    reused = [gen.generate(question, 16, prefix=prefix).text for _ in range(2)]
    with tempfile.TemporaryDirectory() as d:
        gen.save_prefix(prefix, Path(d) / "p.safetensors")
        loaded = gen.load_prefix(Path(d) / "p.safetensors", doc, plan)
        from_disk = gen.generate(question, 16, prefix=loaded).text
    fresh = gen.generate(doc + question, 16, rope=plan).text
    out["prefix"] = {"tokens": len(doc), "fresh": fresh, "reused": reused, "from_disk": from_disk,
                     "equal": reused == [fresh, fresh] and from_disk == fresh}
    print(json.dumps(out["prefix"]), flush=True)

    if args.past:
        ids = text_ids(gen, args.past)
        plan = plan_for("yarn", rm, args.past)
        with torch.inference_mode():
            gen._apply_rope(plan)
            t0 = time.perf_counter()
            full = gen.model(input_ids=torch.tensor([ids]), logits_to_keep=args.tail).logits[0].float()
            t1 = time.perf_counter()
            cache = new_cache(gen.model.config, expected=len(ids), dtype=gen.model.dtype)
            gen._prefill(ids[:-args.tail], cache, None, logits=False)
            steps = torch.stack([gen.model(input_ids=torch.tensor([[i]]), use_cache=True,
                                           **{gen._cache_kw: cache}).logits[0, -1].float() for i in ids[-args.tail:]])
            t2 = time.perf_counter()
        out["past"] = {"tokens": args.past, "max_abs_diff": (full - steps).abs().max().item(),
                       "same_argmax": bool((full.argmax(-1) == steps.argmax(-1)).all()), "one_pass_s": t1 - t0,
                       "prefill_then_steps_s": t2 - t1, "plan": plan.to_dict()}
        print(json.dumps(out["past"]), flush=True)

    per_layer = 2 * gen.model.config.num_key_value_heads * gen.model.config.head_dim * 4
    layers = gen.model.config.num_hidden_layers
    out["kv_bytes_32k"] = {"docqa": gen.kv_bytes(32768), "every_layer_full": layers * per_layer * 32768,
                           "per_token_marginal": gen.kv_bytes_per_token()}
    print(json.dumps(out["kv_bytes_32k"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
