"""Where a run (an eval, a bench) ran: date, versions, machine, and the generator's device, dtypes and threads; and
the machine's memory available now, which the budgets of the KV pool and the backends start from.

Latency columns mean something only beside the machine that produced them (the machines this project runs on differ
by 3× in bf16 speed alone), so ``summary.json`` records it and the report's readers compare timings only within one
environment.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from datetime import datetime, timezone
from typing import Any


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo; Python's ``platform.processor()`` is empty on most Linux machines)."""
    with contextlib.suppress(OSError):
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def available_memory(unknown: int = 1 << 62) -> int:
    """Bytes the OS says are available (MemAvailable); ``unknown`` where it cannot say (a large number by default:
    no limit is imposed on a guess)."""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return unknown


def describe(generator: Any = None) -> dict[str, Any]:
    """The environment of this process, and of ``generator`` when given (an in-process or a served one). Reads only
    what is already imported: describing a run never loads torch or a model."""
    from . import __version__

    env: dict[str, Any] = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "docqa": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
    }
    for name in ("torch", "transformers", "sentence_transformers", "faiss", "llama_cpp"):
        mod = sys.modules.get(name)
        if mod is not None and getattr(mod, "__version__", None):
            env[name] = mod.__version__
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        env["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    if generator is not None:
        dtypes = getattr(generator, "dtypes", None)
        config = getattr(generator, "config", None)
        env["generator"] = {k: v for k, v in {
            "spec": getattr(generator, "spec", None),
            "device": str(getattr(generator, "device", "")) or None,
            "dtype": getattr(dtypes, "reason", None) or getattr(generator, "dtypes_reason", None),
            "threads": getattr(generator, "threads", None),
            "cuda_graphs": getattr(config, "cuda_graphs", None) if str(getattr(generator, "device", "")).startswith(
                "cuda") else None,
            "base_url": getattr(config, "base_url", None),
        }.items() if v is not None}
    return env
