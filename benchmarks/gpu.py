"""GPU evidence: docqa's generator on a random-weight model with Llama-3.1-8B's shape, against the hardware's bounds
and against transformers' own ``generate``.

    python benchmarks/gpu.py --prefill-chunks 2048,32768 --profile   # on a CUDA machine: 8 B shape, bf16
    python benchmarks/gpu.py --smoke                                  # anywhere: a tiny shape on CPU, checks the script

The model is built from a config directly on the GPU in bf16 (no weights to download or carry) and fed token ids (no
tokenizer). Imports only torch, transformers and docqa's generator modules (the GPU machine has no faiss, llama-index
nor pydantic). Reports, each phase saved as it ends:

- prefill tokens/s and the share of bf16 peak at each length and prefill chunk (FLOPs = 2·params·n + 2·layers·n²·d
  for causal attention), the second of two runs;
- decode tokens/s at batch 1 over a 1 k and a 32 k-token context — eager steps, CUDA-graph steps (docqa's default on
  CUDA), CUDA-graph steps with docqa's grouped attention — and at batch 16 over 32 k (continuous batching, SDPA and
  grouped attention), each against the HBM-bandwidth bound (every weight plus every row's KV cache read once a step);
- peak memory; ``model.generate`` beside them; with ``--profile``, torch.profiler tables of eager steps.

Writes benchmarks/results/gpu.json. Peak figures default to the detected GPU (H200/H100: 989 TFLOPS bf16 dense; H200
4.8 TB/s, H100 3.35 TB/s, A100 312 TFLOPS / 2.0 TB/s) or --peak-tflops / --bandwidth-tbs.
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
    ap.add_argument("--variants", default="eager+sdpa,eager+grouped,graph+grouped",
                    help="batch-1 decode variants: eager or graph steps, + sdpa or grouped attention")
    ap.add_argument("--batch-tokens", type=int, default=32, help="new tokens per row in the batched runs")
    ap.add_argument("--prefill-chunk", type=int, default=None, help="docqa's prefill chunk (default: docqa's own)")
    ap.add_argument("--prefill-chunks", default=None,
                    help="prefill chunks to compare, e.g. 2048,auto (auto: docqa's choice from free memory)")
    ap.add_argument("--peak-tflops", type=float, default=None)
    ap.add_argument("--bandwidth-tbs", type=float, default=None)
    ap.add_argument("--skip-hf", action="store_true", help="skip transformers' generate")
    ap.add_argument("--hf-batch", type=int, default=1, help="transformers' generate at batch 1 and this (16 at 32 k "
                    "ran out of memory on an H200: it prefills every row in one forward)")
    ap.add_argument("--profile", action="store_true", help="torch.profiler tables of eager decode steps")
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

    from docqa import attention

    def set_attention(kind: str) -> None:
        """sdpa: transformers' SDPA (given a mask, it repeats grouped keys/values per query head); grouped: docqa's
        few-query attention, on this device too."""
        if kind == "grouped":
            attention.DEVICES.setdefault(device.split(":")[0], 1)
            model.set_attn_implementation(attention.register())
        else:
            model.set_attn_implementation("sdpa")

    def reset_peak() -> None:
        gc.collect()
        if device != "cpu":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()

    # Prefill: each length and chunk twice, the second timed (the first meets new shapes: cuBLAS picks its kernels).
    chunks = [None if x == "auto" else int(x) for x in args.prefill_chunks.split(",")] if args.prefill_chunks \
        else [args.prefill_chunk]
    for chunk in chunks:
        gen.config.prefill_chunk = chunk
        for n in lengths:
            try:
                plan = gen.plain_plan(n + 64)
                for _ in range(2):
                    reset_peak()
                    sync(device)
                    t = time.perf_counter()
                    state = gen.prefill_prefix(ids[:n], plan)
                    sync(device)
                    s = time.perf_counter() - t
                    del state
                row = {"tokens": n, "chunk": chunk or f"auto ({gen.prefill_step(n)})", "seconds": round(s, 3),
                       "tok_s": round(n / s, 1),
                       "tflops": round(flops(n) / s / 1e12, 1),
                       "share_of_peak": peak_flops and round(flops(n) / s / peak_flops, 3),
                       "peak_gb": round(peak_gb(device), 1)}
                result["prefill"].append(row)
                print("docqa prefill", row, flush=True)
            except Exception as e:  # noqa: BLE001 - recorded, and the next measurement runs
                failed("prefill", {"tokens": n, "chunk": chunk}, e)
    gen.config.prefill_chunk = args.prefill_chunk
    save()

    def bound(batch: int, ctx: int) -> float | None:
        """Tokens/s if a step only read every weight once and every row's cache once, at full HBM bandwidth."""
        return bandwidth and batch * bandwidth / (weight_bytes + batch * ctx * kv_tok)

    def decode_row(who: str, batch: int, ctx: int, tps: float, **extra) -> dict:
        b = bound(batch, ctx)
        row = {"who": who, "batch": batch, "context": ctx, "tok_s": round(tps, 1), "bound_tok_s": b and round(b, 1),
               "share_of_bound": b and round(tps / b, 3), "peak_gb": round(peak_gb(device), 1), **extra}
        result["decode"].append(row)
        print("decode", row, flush=True)
        return row

    # Batch 1 over a short and a long context (the short one shows the per-step overhead): eager steps, CUDA-graph
    # steps (docqa's default on CUDA), and CUDA-graph steps with docqa's grouped attention.
    variants = [(v, v.startswith("graph"), v.split("+")[1]) for v in args.variants.split(",")]
    from docqa.generators import cuda_graphs

    captures: list[float] = []  # seconds each CUDA-graph capture took (warm-up steps included)
    real_capture = cuda_graphs.StaticStep._capture

    def timed_capture(self) -> None:
        t = time.perf_counter()
        real_capture(self)
        sync(device)
        captures.append(time.perf_counter() - t)

    cuda_graphs.StaticStep._capture = timed_capture
    for ctx in sorted({min(1024, context), context}):
        try:
            state = gen.prefill_prefix(ids[:ctx], gen.plain_plan(ctx + 64 + args.decode_tokens))
        except Exception as e:  # noqa: BLE001
            failed("decode", {"who": "docqa", "batch": 1, "context": ctx}, e)
            continue
        texts = {}
        for label, graphs, attn in variants:
            try:
                gen.config.cuda_graphs = graphs
                set_attention(attn)
                reset_peak()
                captures.clear()
                out = gen.generate(ids[ctx:ctx + 16], args.decode_tokens, prefix=state)
                texts[label] = out.text
                # A question after the cached prefix: a 64-token suffix's prefill, best of three.
                suffix = min(gen.generate(ids[ctx + 16:ctx + 80], 1, prefix=state).prefill_s for _ in range(3))
                capture = captures[0] if captures else 0.0
                # Replay alone: the decode time less the capture, over the forwards after the first token.
                replay = (out.completion_tokens - 1) / max(1e-9, out.decode_s - capture) if capture else None
                decode_row(f"docqa {label}", 1, ctx, out.completion_tokens / out.decode_s,
                           tokens=out.completion_tokens, ttft_s=round(out.ttft_s, 3), suffix64_s=round(suffix, 4),
                           capture_s=round(capture, 3), replay_tok_s=replay and round(replay, 1),
                           replay_share_of_bound=replay and bandwidth and round(replay / bound(1, ctx), 3),
                           same_answer_as_first=out.text == next(iter(texts.values())))
            except Exception as e:  # noqa: BLE001
                failed("decode", {"who": f"docqa {label}", "batch": 1, "context": ctx}, e)
        del state
        gen.config.cuda_graphs = True
        set_attention("sdpa")
        save()

    # Batch N (rows prefilled one by one, decoded together with continuous batching), SDPA and grouped attention.
    for attn in ("sdpa", "grouped"):
        try:
            set_attention(attn)
            reset_peak()
            prompts = [ids[i:i + context] for i in range(args.batch)]  # distinct rows
            sync(device)
            t = time.perf_counter()
            outs = gen.generate_batch(prompts, args.batch_tokens)
            sync(device)
            # Every row is seated (prefilled) before the first step: decoding is the wall time less the prefills.
            prefills = sum(o.prefill_s for o in outs)
            wall = time.perf_counter() - t
            decode_row(f"docqa batched {attn}", args.batch, context,
                       sum(o.completion_tokens for o in outs) / (wall - prefills),
                       tokens=sum(o.completion_tokens for o in outs), prefill_s=round(prefills, 2),
                       wall_s=round(wall, 2))
            del outs
        except Exception as e:  # noqa: BLE001
            failed("decode", {"who": f"docqa batched {attn}", "batch": args.batch, "context": context}, e)
        save()
    set_attention("sdpa")

    if not args.skip_hf:  # transformers' generate, same model, greedy, a fixed number of new tokens
        for batch in sorted({1, args.hf_batch}):
            try:
                reset_peak()
                inp = torch.tensor([ids[i:i + context] for i in range(batch)], device=device)
                with torch.inference_mode():
                    kw = dict(attention_mask=torch.ones_like(inp), pad_token_id=shape["eos_token_id"],
                              do_sample=False)
                    sync(device)
                    t = time.perf_counter()
                    model.generate(inp, max_new_tokens=1, min_new_tokens=1, **kw)
                    sync(device)
                    t_prefill = time.perf_counter() - t
                    t = time.perf_counter()
                    model.generate(inp, max_new_tokens=args.decode_tokens, min_new_tokens=args.decode_tokens, **kw)
                    sync(device)
                    total = time.perf_counter() - t
                decode_row("transformers generate", batch, context,
                           batch * (args.decode_tokens - 1) / max(1e-9, total - t_prefill),
                           prefill_s=round(t_prefill, 2))
                del inp
            except Exception as e:  # noqa: BLE001 - an out-of-memory error is a result too
                failed("decode", {"who": "transformers generate", "batch": batch, "context": context}, e)
            save()

    if args.profile:  # where a step's time goes: eager batch 1 and a batch of 4 (CPU launch cost vs GPU kernels)
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device != "cpu" else [])
        ctx = min(1024, context)  # short prompts: the tables are about the decode steps, not the prefills
        gen.config.cuda_graphs = False
        for batch in (1, 4):
            try:
                rows = [ids[i:i + ctx] for i in range(batch)]
                states = gen.prefill_prefix(rows[0], gen.plain_plan(ctx + 64)) if batch == 1 else None
                with profile(activities=acts) as prof:
                    if batch == 1:
                        gen.generate(ids[ctx:ctx + 16], 16, prefix=states)
                    else:
                        gen.generate_batch(rows, 16)
                    sync(device)
                sort = "self_cuda_time_total" if device != "cpu" else "self_cpu_time_total"
                for key in (sort, "self_cpu_time_total"):
                    table = prof.key_averages().table(sort_by=key, row_limit=18, max_name_column_width=60)
                    print(f"profile batch {batch}, context {ctx}, eager, by {key}:\n{table}", flush=True)
                    result.setdefault("profile", []).append({"batch": batch, "context": ctx, "sort": key,
                                                             "table": table})
                del states
            except Exception as e:  # noqa: BLE001
                failed("decode", {"who": "profile", "batch": batch}, e)
        gen.config.cuda_graphs = True
    print(f"wrote {save()}")


if __name__ == "__main__":
    main()
