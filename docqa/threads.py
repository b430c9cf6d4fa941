"""How many CPU threads torch uses: ``--threads N``, ``$DOCQA_THREADS``, or a default that looks at the machine's load.

torch starts one intra-op thread per core it may run on. On an idle machine that is right (measured here, 2 cores:
benchmarks/threads.py). Under load from another process it is not: the threads wait for each other at every
operation, and a call that took 6 s with one thread took 41 s with two on a loaded 2-core machine (issue #11). So the
default is the cores this process may use minus the other load already on them, never less than one: the busy share
of the CPUs sampled over a quarter of a second from /proc/stat when the first model loads (docqa itself is idle then).
The 1-minute load average was tried first and rejected: it lags, so right after a busy minute an idle machine still
looked loaded (benchmarks/threads.py picked 1 thread where 2 were 26 % faster).
"""

from __future__ import annotations

import os

from .errors import ConfigError

_APPLIED: list[int] = []


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def busy_cpus(seconds: float = 0.25) -> float:
    """How many CPUs other work keeps busy now: the busy share of all CPUs over ``seconds``, times their count."""
    import time

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            values = [int(x) for x in f.readline().split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values) - idle, sum(values)

    try:
        b0, t0 = sample()
        time.sleep(seconds)
        b1, t1 = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    return (b1 - b0) / max(1, t1 - t0) * (os.cpu_count() or 1)


def default_threads(cores: int | None = None, load: float | None = None) -> int:
    """Cores available minus the CPUs other work keeps busy (rounded), at least 1."""
    cores = cores or available_cores()
    if load is None:
        load = busy_cpus()
    return max(1, min(cores, cores - round(load)))


def resolve(requested: int | str | None) -> int:
    """The thread count for ``--threads`` (None: $DOCQA_THREADS, else :func:`default_threads`)."""
    value = requested if requested is not None else os.environ.get("DOCQA_THREADS")
    if value is None or value == "" or value == "auto":
        return default_threads()
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise ConfigError(f"--threads must be a positive number of threads (or auto), got {value!r}.")
    # More threads than cores only wait on each other: --threads 999 on this project's 2-core machine made a SmolLM2
    # rag answer take 19.9 s instead of 0.4 s. The count used is what the run's records report.
    return min(n, available_cores())


def count(requested: int | str | None = None) -> int:
    """The thread count, resolved once per process unless asked again explicitly; torch is not touched (llama.cpp
    takes the count per context, and importing torch to set it cost a llama.cpp answer ~1 s on 2 cores)."""
    if _APPLIED and requested is None:
        return _APPLIED[-1]
    n = resolve(requested)
    _APPLIED.append(n)
    return n


def apply(requested: int | str | None = None) -> int:
    """:func:`count`, with torch's intra-op threads set to it; returns the count."""
    import torch

    n = count(requested)
    torch.set_num_threads(n)
    return n
