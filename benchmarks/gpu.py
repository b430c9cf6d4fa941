"""GPU evidence: docqa's generator on a random-weight model with Llama-3.1-8B's shape, against the hardware's bounds
and against transformers' own ``generate``.

    python benchmarks/gpu.py                 # on a CUDA machine: the 8 B shape, bf16, 8 k and 32 k tokens
    python benchmarks/gpu.py --smoke         # anywhere: a tiny shape on CPU, to check the script itself runs

The model is built from a config directly on the GPU in bf16 (no weights to download or carry) and fed token ids (no
tokenizer). Imports only torch, transformers and docqa's generator modules (the GPU machine has no faiss nor
llama-index). Reports: prefill tokens/s and the share of bf16 peak at each length (FLOPs = 2·params·n + 2·layers·n²·d
for causal attention); decode tokens/s at batch 1 and 16 over a 32 k-token context against the HBM-bandwidth bound
(every weight plus every row's KV cache read once a step); peak memory; the same for ``model.generate``. Writes
benchmarks/results/gpu.json. Peak figures default to the detected GPU (H200/H100: 989 TFLOPS bf16 dense; H200 4.8 TB/s,
H100 3.35 TB/s, A100 312 TFLOPS / 2.0 TB/s) or --peak-tflops / --bandwidth-tbs.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GPUS = {"H200": (989e12, 4.8e12), "H100": (989e12, 3.35e12), "A100": (312e12, 2.0e12), "L40S": (362e12, 0.864e12)}
LLAMA_31_8B = dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                   num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=131072,
                   rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                    "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                    "original_max_position_embeddings": 8192},
                   bos_token_id=128000, eos_token_id=128001, tie_word_embeddings=False)
SMOKE = dict(LLAMA_31_8B, vocab_size=1000, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2)


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_gb(device: str) -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 1e9 if device.startswith("cuda") else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny shape on CPU: checks the script, measures nothing")
    ap.add_argument("--lengths", default=None, help="prefill lengths (default 8192,32768; smoke 256,512)")
    ap.add_argument("--decode-context", type=int, default=None, help="default 32768 (smoke 512)")
    ap.add_argument("--decode-tokens", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--prefill-chunk", type=int, default=8192, help="docqa's prefill chunk on the GPU")
    ap.add_argument("--prefill-chunks", default=None,
                    help="prefill chunks to compare, e.g. 2048,8192 (2048 is GeneratorConfig's default)")
    ap.add_argument("--peak-tflops", type=float, default=None)
    ap.add_argument("--bandwidth-tbs", type=float, default=None)
    ap.add_argument("--skip-hf", action="store_true", help="skip transformers' generate")
    ap.add_argument("--out", type=Path, default=None, help="default benchmarks/results/gpu.json (gpu_smoke.json)")
    args = ap.parse_args()

    import torch
    import transformers

    from docqa.generators.base import GeneratorConfig
    from docqa.generators.hf import TransformersGenerator

    device = "cpu" if args.smoke or not torch.cuda.is_available() else "cuda:0"
    if device == "cpu" and not args.smoke:
        raise SystemExit("No CUDA GPU here; run with --smoke to check the script on CPU.")
    shape = SMOKE if args.smoke else LLAMA_31_8B
    lengths = [int(x) for x in (args.lengths or ("256,512" if args.smoke else "8192,32768")).split(",")]
    context = args.decode_context or (512 if args.smoke else 32768)
    name = torch.cuda.get_device_name(0) if device != "cpu" else "cpu"
    peak_flops, bandwidth = next((v for k, v in GPUS.items() if k in name), (None, None))
    peak_flops = args.peak_tflops * 1e12 if args.peak_tflops else peak_flops
    bandwidth = args.bandwidth_tbs * 1e12 if args.bandwidth_tbs else bandwidth
    dtype = torch.float32 if args.smoke else torch.bfloat16

    t0 = time.perf_counter()
    config = transformers.LlamaConfig(**shape)
    torch.set_default_dtype(dtype)
    with torch.device(device):
        model = transformers.LlamaForCausalLM(config).eval()
    torch.set_default_dtype(torch.float32)
    sync(device)
    params = sum(p.numel() for p in model.parameters())
    embed = model.get_input_embeddings().weight.numel()
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    gen = TransformersGenerator.from_model(model, None, GeneratorConfig(prefill_chunk=args.prefill_chunk))
    kv_tok = gen.kv_bytes_per_token()
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "device": name,
              "torch": torch.__version__, "transformers": transformers.__version__, "shape": "smoke" if args.smoke
              else "Llama-3.1-8B", "params": params, "weight_gb": weight_bytes / 1e9, "kv_bytes_per_token": kv_tok,
              "build_s": round(time.perf_counter() - t0, 1), "peak_tflops": peak_flops and peak_flops / 1e12,
              "bandwidth_tbs": bandwidth and bandwidth / 1e12, "prefill": [], "decode": []}
    print(f"{name}: {params / 1e9:.2f} B params, {weight_bytes / 1e9:.1f} GB, KV {kv_tok / 1e3:.0f} kB/token, built "
          f"in {result['build_s']} s", flush=True)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, shape["vocab_size"] - 2, (max(lengths + [context]) + 64,), generator=g).tolist()
    d, layers = shape["hidden_size"], shape["num_hidden_layers"]

    def flops(n: int) -> float:
        return 2 * (params - embed) * n + 2 * layers * n * n * d

    def save() -> Path:  # after every phase: a later phase that fails or runs out of time loses nothing
        path = args.out or ROOT / "benchmarks" / "results" / ("gpu_smoke.json" if args.smoke else "gpu.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
        return path

    def failed(section: str, row: dict, e: BaseException) -> None:
        row["error"] = f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
        result[section].append(row)
        print(section, row, flush=True)
        gc.collect()
        if device != "cpu":
            torch.cuda.empty_cache()

    chunks = [int(x) for x in args.prefill_chunks.split(",")] if args.prefill_chunks else [args.prefill_chunk]
    for chunk in chunks:
        gen.config.prefill_chunk = chunk
        for n in lengths:  # docqa's prefill
            try:
                plan = gen.plain_plan(n + 64)
                gen.prefill_prefix(ids[:256], gen.plain_plan(320))  # warm-up
                sync(device)
                if device != "cpu":
                    torch.cuda.reset_peak_memory_stats()
                t = time.perf_counter()
                state = gen.prefill_prefix(ids[:n], plan)
                sync(device)
                s = time.perf_counter() - t
                row = {"tokens": n, "chunk": chunk, "seconds": round(s, 3), "tok_s": round(n / s, 1),
                       "tflops": round(flops(n) / s / 1e12, 1),
                       "share_of_peak": peak_flops and round(flops(n) / s / peak_flops, 3),
                       "peak_gb": round(peak_gb(device), 1), "rope": state.plan.method}
                result["prefill"].append(row)
                print("docqa prefill", row, flush=True)
                del state
                gc.collect()
            except Exception as e:  # noqa: BLE001 - recorded, and the next measurement runs
                failed("prefill", {"tokens": n, "chunk": chunk}, e)
    gen.config.prefill_chunk = args.prefill_chunk
    save()

    def bound(batch: int) -> float | None:
        if not bandwidth:
            return None
        return batch * bandwidth / (weight_bytes + batch * context * kv_tok)

    # docqa decode at batch 1 over a context-token prefix, then batch N (rows prefilled one by one, decoded together)
    # A short context first: its steps read the weights and almost no cache, so it shows the per-step overhead.
    for ctx in sorted({min(1024, context), context}):
        try:
            plan = gen.plain_plan(ctx + 64 + args.decode_tokens)
            state = gen.prefill_prefix(ids[:ctx], plan)
            if device != "cpu":
                torch.cuda.reset_peak_memory_stats()
            out = gen.generate(ids[ctx:ctx + 16], args.decode_tokens, prefix=state)
            tps = out.completion_tokens / out.decode_s
            b = bandwidth and bandwidth / (weight_bytes + ctx * kv_tok)
            row = {"who": "docqa", "batch": 1, "context": ctx, "tok_s": round(tps, 1), "bound_tok_s": b and
                   round(b, 1), "share_of_bound": b and round(tps / b, 3), "peak_gb": round(peak_gb(device), 1),
                   "tokens": out.completion_tokens}
            result["decode"].append(row)
            print("docqa decode", row, flush=True)
            del state
            gc.collect()
        except Exception as e:  # noqa: BLE001
            failed("decode", {"who": "docqa", "batch": 1, "context": ctx}, e)
    save()
    try:
        if device != "cpu":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        prompts = [ids[i:i + context] for i in range(args.batch)]  # distinct rows
        outs = gen.generate_batch(prompts, args.decode_tokens)
        toks = sum(o.completion_tokens for o in outs)
        tps = toks / outs[0].decode_s
        row = {"who": "docqa", "batch": args.batch, "context": context, "tok_s": round(tps, 1),
               "bound_tok_s": bound(args.batch) and round(bound(args.batch), 1),
               "share_of_bound": bound(args.batch) and round(tps / bound(args.batch), 3),
               "peak_gb": round(peak_gb(device), 1), "prefill_s": round(outs[0].prefill_s, 1), "tokens": toks}
        result["decode"].append(row)
        print("docqa decode", row, flush=True)
        del outs
        gc.collect()
    except Exception as e:  # noqa: BLE001
        failed("decode", {"who": "docqa", "batch": args.batch, "context": context}, e)
    save()

    if not args.skip_hf:  # transformers' generate, same model, greedy, fixed number of new tokens
        for batch in (1, args.batch):
            if device != "cpu":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            inp = torch.tensor([ids[i:i + context] for i in range(batch)], device=device)
            try:
                with torch.inference_mode():
                    sync(device)
                    t = time.perf_counter()
                    kw = dict(attention_mask=torch.ones_like(inp), pad_token_id=shape["eos_token_id"], do_sample=False)
                    model.generate(inp, max_new_tokens=1, min_new_tokens=1, **kw)
                    sync(device)
                    t_prefill = time.perf_counter() - t
                    t = time.perf_counter()
                    model.generate(inp, max_new_tokens=args.decode_tokens, min_new_tokens=args.decode_tokens, **kw)
                    sync(device)
                    total = time.perf_counter() - t
                tps = batch * (args.decode_tokens - 1) / max(1e-9, total - t_prefill)
                row = {"who": "transformers generate", "batch": batch, "context": context, "tok_s": round(tps, 1),
                       "prefill_s": round(t_prefill, 2), "bound_tok_s": bound(batch) and round(bound(batch), 1),
                       "share_of_bound": bound(batch) and round(tps / bound(batch), 3),
                       "peak_gb": round(peak_gb(device), 1)}
            except Exception as e:  # noqa: BLE001 - an out-of-memory error is a result too
                failed("decode", {"who": "transformers generate", "batch": batch, "context": context}, e)
                continue
            result["decode"].append(row)
            print("hf generate", row, flush=True)
            del inp
            gc.collect()
            save()
    print(f"wrote {save()}")


if __name__ == "__main__":
    main()
