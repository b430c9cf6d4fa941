"""Which dtype each phase of generation runs in, decided from the device and, on CPU, from a measured probe.

On GPUs: bf16 where the GPU supports it (Ampere and later), else fp16, for everything.

On CPUs the answer differs from machine to machine, so it is measured, not assumed. One had AVX+FMA only (bf16
matmuls emulated, slower than fp32); another (Xeon with AMX) ran bf16 matmuls at 867 GFLOP/s against fp32's 196, and
this project's 2-core machine (AVX-512 BF16) at 905 against 196. Prefill is matmul-bound, so it runs in bf16 where bf16
wins. Decoding is not: one token reads every weight and, after a long document prefix, the whole KV cache, and bf16
decoding over a 30 k-token cache was 3× slower than fp32 on the AMX machine. So decoding stays fp32: the KV cache is
stored in fp32 (a bf16 prefill writes into it) and read by fp32 decode steps without conversion. The probe times one
prefill-shaped matmul in both dtypes (~0.3 s) and is cached per machine in ``cache_dir()/cpu_dtype_probe.json``,
keyed by the CPU model, core count and torch version. Perplexity is unchanged within 1 % (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..environment import cpu_name
from ..errors import ConfigError
from ..paths import cache_dir, read_keyed, write_keyed

if TYPE_CHECKING:
    import torch

DTYPES = ("auto", "float32", "bfloat16", "float16")
BF16_MIN_SPEEDUP = 1.5  # below this the copy of the weights a bf16 prefill needs is not worth its memory


@dataclass(frozen=True)
class PhaseDtypes:
    """The dtype of the weights that prefill (long chunks) and decoding (a few tokens a step) run in."""

    prefill: "torch.dtype"
    decode: "torch.dtype"
    reason: str  # one line for --verbose output and RESULTS.md

    @property
    def split(self) -> bool:
        return self.prefill != self.decode


def cpu_probe(refresh: bool = False) -> dict:
    """bf16 against fp32 matmul throughput on this CPU, measured once and cached per machine. Keyed by the thread
    count docqa gives torch and torch's installed version, so that a cached probe costs no torch import (a llama.cpp
    answer that prefills alone never needs torch)."""
    from importlib.metadata import version

    from ..threads import apply, count

    key = f"{cpu_name()} | {os.cpu_count()} cpus | {count()} threads | torch {version('torch')}"
    path = cache_dir() / "cpu_dtype_probe.json"
    cached = None if refresh else read_keyed(path, key)
    if cached is not None:
        return cached
    import torch

    apply()  # measured with the threads the key names
    a32, b32 = torch.randn(1024, 1024), torch.randn(1024, 2048)
    result = {}
    for name, dt in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        a, b = a32.to(dt), b32.to(dt)
        a @ b  # warm up (oneDNN picks its kernel on the first call)
        t0, n = time.perf_counter(), 0
        while n < 3 or time.perf_counter() - t0 < 0.1:
            a @ b
            n += 1
        result[name] = 2 * 1024 * 1024 * 2048 * n / (time.perf_counter() - t0) / 1e9
    result = {f"{k}_gflops": round(v, 1) for k, v in result.items()}
    result["bf16_speedup"] = round(result["bfloat16_gflops"] / result["float32_gflops"], 2)
    write_keyed(path, key, result)
    return result


def resolve(requested: str, device: str) -> PhaseDtypes:
    """The dtypes for ``--dtype requested`` on ``device`` (see the module docstring)."""
    import torch

    if requested not in DTYPES:
        raise ConfigError(f"Unknown dtype '{requested}'. Use {', '.join(DTYPES)}.")
    if requested != "auto":
        dt = getattr(torch, requested)
        return PhaseDtypes(dt, dt, f"--dtype {requested}")
    if device.startswith("cuda"):
        dt = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return PhaseDtypes(dt, dt, f"auto on {device}: {str(dt).removeprefix('torch.')}")
    if device == "cpu" and not os.environ.get("DOCQA_NO_CPU_PROBE"):
        probe = cpu_probe()
        if probe["bf16_speedup"] >= BF16_MIN_SPEEDUP:
            return PhaseDtypes(torch.bfloat16, torch.float32,
                               f"auto on CPU: bf16 prefill (bf16 matmul {probe['bf16_speedup']}x fp32 here), fp32 "
                               f"decoding")
        return PhaseDtypes(torch.float32, torch.float32,
                           f"auto on CPU: fp32 (bf16 matmul only {probe['bf16_speedup']}x fp32 here)")
    return PhaseDtypes(torch.float32, torch.float32, f"auto on {device}: fp32")
