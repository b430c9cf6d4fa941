"""Prefill and decode on the backend that is faster for each: transformers computes a long prompt's keys and values in
bf16, llama.cpp loads them (:mod:`docqa.generators.llamacpp_state`) and decodes from its 4-bit weights.

Why (benchmarks/RESULTS.md, "The reader per phase"): on a Xeon with AMX, transformers in bf16 prefilled the 1.5 B
reader at 477 / 392 / 229 tokens/s at 1 k / 8 k / 30 k tokens, llama.cpp at 87 / 57 / ~24; llama.cpp decoded 2.3x
faster (8.3 against 3.6 tokens/s after 8 k) from a sixth of the memory. One backend per process had to give up one
phase or the other; handing the cache over gives each phase its faster backend, and the transformers model is held in
bf16 only (3 GB for the 1.5 B), never in fp32.

When (``GeneratorConfig.prefill``, ``--prefill``, ``$DOCQA_PREFILL``): ``auto`` hands a fresh prompt of at least
:data:`MIN_TOKENS` tokens to transformers where the CPU's measured bf16 matmul rate is at least
:data:`MIN_BF16_SPEEDUP` times its fp32 rate (:func:`docqa.generators.dtypes.cpu_probe`, cached per machine):
llama.cpp's quantized prefill ran at about the fp32 matmul rate (the 1.5 B's 87 tokens/s is ~230 GFLOP/s against the
probe's 196 fp32), so bf16 matmuls that fast are what make the handover pay. CPUs without fast bf16 (AVX+FMA only)
keep llama.cpp's prefill. A process that answers one question (``GeneratorConfig.one_shot``: a one-question
``docqa ask``) hands a prompt over only where the seconds it saves exceed loading the transformers side
(:meth:`Handover.pays`). ``transformers`` forces the handover, ``llama.cpp`` turns it off. Prompts after a cached
prefix (a question) stay on llama.cpp; rope plans past the window (YaRN, linear, NTK) are handed over under the same
plan, which transformers realises with docqa's rope registry and llama.cpp with its context settings.

Answers hold by check, not by hope: the first handover in a process under each rope setting compares the two
backends' keys and values over the prompt's first :data:`CHECK_TOKENS` tokens, and a model whose caches disagree
(another rope layout, a conversion gone wrong) keeps llama.cpp's prefill, with the reason in the run's environment
record. The first handover on a machine also times both backends (:data:`RATE_TOKENS`), and auto follows those rates.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import ConfigError, ModelLoadError, first_line
from ..rope import RopePlan
from .base import PREFILL_CHOICES, GeneratorConfig, ProgressFn
from .llamacpp_state import StateLayout, build_state, layout_of, parse_state

# Fewest fresh prompt tokens handed over. Loading the bf16 model costs ~3.5 s once per process (warm page cache); at
# the AMX machine's rates each handed-over token saves ~9 ms, so 512 tokens pay for the load on the first prompt.
MIN_TOKENS = 512
MIN_BF16_SPEEDUP = 2.0
CHECK_TOKENS = 48
# Largest relative difference (Frobenius norm) allowed between the two backends' keys or values on the check: bf16
# against llama.cpp's 8-bit activations differed by 0.2-3.5 % on the 1.5 B's layers; a wrong layout differs by ~100 %.
MAX_DISAGREEMENT = 0.10
HEADROOM = 1 << 30  # bytes kept free beyond the bf16 weights and the prompt's keys and values
# The probe is a gate, not the decision: the first handover on a machine times both backends on the prompt's first
# RATE_TOKENS tokens (~5 s of llama.cpp once), and the rates, cached per machine and model, decide from then on.
RATE_TOKENS = 512
MIN_RATE_GAIN = 1.25  # transformers' measured prefill must beat llama.cpp's by this much, or llama.cpp prefills


@dataclass(frozen=True)
class PrefillChoice:
    assist: bool
    reason: str


def asked(config: GeneratorConfig) -> str:
    """The prefill choice in force: ``config.prefill``, else $DOCQA_PREFILL, else auto."""
    return config.prefill or os.environ.get("DOCQA_PREFILL") or "auto"


def choose(config: GeneratorConfig) -> PrefillChoice:
    """Whether prompts are handed to transformers for prefill (see the module docstring), and why, in one line."""
    wanted = asked(config)
    if wanted not in PREFILL_CHOICES:
        source = f"--prefill {wanted}" if config.prefill else f"DOCQA_PREFILL={wanted}"
        raise ConfigError(f"{source}: use {', '.join(PREFILL_CHOICES)}.")
    if wanted == "llama.cpp":
        return PrefillChoice(False, "prefill on llama.cpp (asked)")
    if wanted == "transformers":
        return PrefillChoice(True, f"prompts of {MIN_TOKENS}+ tokens prefilled by transformers in bf16 (asked)")
    if os.environ.get("DOCQA_NO_CPU_PROBE"):
        return PrefillChoice(False, "prefill on llama.cpp (CPU probe off)")
    try:
        from .dtypes import cpu_probe

        probe = cpu_probe()
    except ImportError:  # torch absent: llama.cpp alone
        return PrefillChoice(False, "prefill on llama.cpp (no torch for a bf16 prefill)")
    speedup = probe.get("bf16_speedup", 0.0)
    if speedup >= MIN_BF16_SPEEDUP:
        return PrefillChoice(True, f"prompts of {MIN_TOKENS}+ tokens prefilled by transformers in bf16 (bf16 matmul "
                                   f"{speedup}x fp32 on this CPU)")
    return PrefillChoice(False, f"prefill on llama.cpp (bf16 matmul only {speedup}x fp32 on this CPU)")


class PrefillAssist:
    """The transformers side of the handover: a bf16 copy of the model, loaded on first use, that returns a prompt's
    keys and values laid out as llama.cpp's cache holds them."""

    def __init__(self, model: str, gguf: Path, config: GeneratorConfig, n_params: int, arch: str):
        self.model_name, self.gguf, self.config, self.n_params, self.arch = model, gguf, config, n_params, arch
        self._gen = None
        self.folder = ""
        self.load_s = 0.0

    def weight_bytes(self) -> int:
        return 2 * self.n_params

    def fits(self, kv_bytes: int) -> bool:
        """Room for the bf16 weights (unless loaded), the prompt's keys and values once and a quarter (transformers'
        cache, emptied layer by layer into the state handed over, :class:`Prefilled`; a layer's conversion in flight)
        and headroom, by the OS's count of available memory. The prefill's activations are bounded apart, by the
        chunk size (:func:`.memory.prefill_step`)."""
        from .memory import available_memory

        need = (0 if self._gen is not None else self.weight_bytes()) + kv_bytes + kv_bytes // 4 + HEADROOM
        return available_memory() >= need

    def prepare(self) -> None:
        """Convert the GGUF to bf16 safetensors once (about 45 s and 3.4 GB of disk for the 1.5 B), while the model
        loads: there the CLI draws the conversion's progress; the weights themselves load on first use."""
        from .gguf import materialize_gguf

        self.folder = str(materialize_gguf(self.gguf, "bfloat16"))

    def load(self) -> None:
        """Load the bf16 model now (about 3.5 s for the 1.5 B from a warm page cache)."""
        self._generator()

    @property
    def loaded(self) -> bool:
        return self._gen is not None

    def _generator(self):
        if self._gen is None:
            import dataclasses

            from . import GENERATORS  # the backend by its registry name: helpers never import a backend module

            t0 = time.perf_counter()
            cfg = dataclasses.replace(self.config, model=self.folder, dtype="bfloat16", device="cpu",
                                      prefill="llama.cpp")
            self._gen = GENERATORS.get("transformers")(f"transformers:{self.model_name}", self.folder, cfg)
            self.load_s = time.perf_counter() - t0
        return self._gen

    def prefilled(self, ids: list[int], plan: RopePlan | None = None, progress: ProgressFn | None = None
                  ) -> Prefilled:
        """``ids`` prefilled at positions 0..n-1 under ``plan`` (default: the model's own rope), its cache handed out
        layer by layer in llama.cpp's order (:class:`Prefilled`)."""
        gen = self._generator()
        state = gen.prefill_prefix(list(ids), plan or gen.plain_plan(len(ids)), progress)
        return Prefilled(state, len(ids), self.arch in INTERLEAVED_ROPE)

    def keys_values(self, ids: list[int], plan: RopePlan | None = None, progress: ProgressFn | None = None
                    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Every layer's keys and values of ``ids`` at once (:meth:`Prefilled.keys`): for short probes."""
        cache = self.prefilled(ids, plan, progress)
        return list(cache.keys()), list(cache.values())


class Prefilled:
    """transformers' cache of a prompt, handed out one layer at a time as (positions, KV heads x head dim) float16
    arrays in llama.cpp's order: its NORM-rope models (llama) hold each head's rotated pairs interleaved, where
    transformers holds them as two halves; NEOX-rope models (qwen2) hold them as transformers does.

    Each layer's keys (values) are released from the cache as soon as they are handed out, so converting a prompt
    holds its keys and values about once: at 40 k tokens of the 1.5 B, one copy is 1.15 GB, and the cache, a converted
    copy and the state built from it were held together before (benchmarks/RESULTS.md)."""

    def __init__(self, state, n: int, interleaved: bool):
        self._layers = list(state.cache.layers)
        self.n, self._interleaved = n, interleaved

    def _rows(self, tensor, rows: int, key: bool) -> np.ndarray:
        import torch

        t = tensor[0, :, :rows]  # (KV heads, positions, head dim)
        if key and self._interleaved:
            half = t.shape[-1] // 2
            t = torch.stack((t[..., :half], t[..., half:]), dim=-1).flatten(-2)
        return t.permute(1, 0, 2).reshape(rows, -1).to(torch.float16).numpy()

    def head(self, rows: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The first ``rows`` positions of every layer (the agreement check's), the cache left whole."""
        return ([self._rows(layer.keys, rows, True) for layer in self._layers],
                [self._rows(layer.values, rows, False) for layer in self._layers])

    def keys(self) -> Iterator[np.ndarray]:
        for layer in self._layers:
            out = self._rows(layer.keys, self.n, True)
            _release(layer, "keys", "_k")
            yield out

    def values(self) -> Iterator[np.ndarray]:
        for layer in self._layers:
            out = self._rows(layer.values, self.n, False)
            _release(layer, "values", "_v")
            yield out


def _release(layer, *names: str) -> None:
    """Drop a cache layer's references to its tensors (the visible ones and docqa's in-place buffers,
    :class:`docqa.kv_cache.InPlaceLayer`), so their memory goes back before the next layer is converted."""
    for name in names:
        if getattr(layer, name, None) is not None:
            setattr(layer, name, None)


# GGUF architectures whose llama.cpp rope rotates adjacent pairs (llama.cpp's converter permutes their Q/K weights so
# that this equals transformers' rotate-half): their cached keys are interleaved relative to transformers'.
INTERLEAVED_ROPE = frozenset({"llama"})


def disagreement(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """The largest relative difference between two caches' layers (0 = equal)."""
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        x32, y32 = x.astype(np.float32), y.astype(np.float32)
        worst = max(worst, float(np.linalg.norm(x32 - y32) / max(np.linalg.norm(y32), 1e-6)))
    return worst


def _rates_path() -> Path:
    from ..paths import cache_dir

    return cache_dir() / "prefill_rates.json"


def rates_key(gguf: Path, threads: int) -> str:
    """What a measured prefill rate holds for: this CPU, cores and threads, the model file, both libraries."""
    from importlib.metadata import version

    import llama_cpp

    from ..environment import cpu_name

    # torch's version from its metadata (the same string as torch.__version__): a prefill the rates keep on llama.cpp
    # need not import torch at all.
    return (f"{cpu_name()} | {os.cpu_count()} cpus | {threads} threads | {gguf.name} | torch {version('torch')} | "
            f"llama_cpp {llama_cpp.__version__}")


def read_rates(key: str) -> dict | None:
    """The prefill rates measured for ``key`` ({"llama.cpp": tok/s, "transformers": tok/s}), or None."""
    from ..paths import read_keyed

    found = read_keyed(_rates_path(), key)
    ok = found is not None and all(isinstance(found.get(b), (int, float)) for b in ("llama.cpp", "transformers"))
    return found if ok else None


def write_rates(key: str, rates: dict) -> None:
    """Add ``rates`` under ``key`` to the cache file, atomically (a lost write only means measuring again)."""
    from ..paths import write_keyed

    write_keyed(_rates_path(), key, rates)


def slower(rates: dict) -> str | None:
    """Why the handover does not pay on the measured ``rates``, or None where it does."""
    if rates["transformers"] >= MIN_RATE_GAIN * rates["llama.cpp"]:
        return None
    return (f"measured here: transformers prefills {rates['transformers']:.0f} tokens/s, llama.cpp "
            f"{rates['llama.cpp']:.0f}")


class CachePort(Protocol):
    """What the handover needs from a llama.cpp backend's context: its cache empty on entry."""

    def append(self, ids: list[int]) -> None: ...  # evaluate ``ids`` after what the cache holds

    def state(self) -> bytes: ...  # the cache as llama.cpp's sequence state

    def load(self, blob: np.ndarray, ids: list[int]) -> bool: ...  # replace the cache by a state holding ``ids``

    def clear(self) -> None: ...  # empty the cache


class Handover:
    """The llama.cpp side: when to hand a prompt over, the one-time agreement check and rate measurement, and the
    state it loads."""

    def __init__(self, assist: PrefillAssist | None, reason: str, rates_key: str = "", rates: dict | None = None):
        self.assist, self.reason, self.rates_key, self.rates = assist, reason, rates_key, rates
        self.checked: set[tuple] = set()  # rope settings whose caches were compared in this process
        self._layouts: dict[tuple, StateLayout] = {}  # per context shape: V's layout follows flash attention

    @classmethod
    def for_model(cls, model: str, gguf: Path, config: GeneratorConfig, n_params: int, arch: str,
                  threads: int) -> Handover:
        choice = choose(config)
        if not choice.assist:
            return cls(None, choice.reason)
        key = rates_key(gguf, threads)
        rates = read_rates(key)
        why = slower(rates) if rates is not None and asked(config) == "auto" else None
        if why:
            return cls(None, f"prefill on llama.cpp ({why})")
        assist = PrefillAssist(model, gguf, config, n_params, arch)
        try:
            assist.prepare()
        except Exception as e:  # noqa: BLE001 - transformers cannot convert this GGUF: llama.cpp prefills, as before
            return cls(None, f"prefill on llama.cpp (no transformers copy of this GGUF: {first_line(e)})")
        reason = choice.reason
        if rates is not None and why is None and asked(config) == "auto":
            reason = (f"prompts of {MIN_TOKENS}+ tokens prefilled by transformers in bf16 (measured here: "
                      f"{rates['transformers']:.0f} tokens/s against llama.cpp's {rates['llama.cpp']:.0f})")
        return cls(assist, reason, key, rates)

    def pays(self, tokens: int) -> bool:
        """Whether handing over a prompt of ``tokens`` pays off in this process. Where it answers one question
        (``one_shot``) and the transformers side is not loaded yet, only if the prefill seconds it saves at the
        measured rates exceed loading that side (``setup_s``, measured here at a first load): on this project's
        AMD EPYC (llama.cpp 149, transformers 249 tokens/s; 3.6 s to load) from ~1 300 tokens, so a rag prompt of
        ~600 stays on llama.cpp and a document prefix of 5 k goes over. Otherwise always: a process that answers
        many loads once for all of them, and ``--prefill transformers`` always hands over."""
        rates = self.rates or {}
        if not self.assist or not self.assist.config.one_shot or self.assist.loaded or "setup_s" not in rates or \
                asked(self.assist.config) != "auto":
            return True
        saved = tokens * (1 / rates["llama.cpp"] - 1 / rates["transformers"])
        return saved > rates["setup_s"]

    def off(self, why: str) -> None:
        self.assist = None
        self.reason = f"prefill on llama.cpp ({why})"

    def _agree(self, port: CachePort, keys: list[np.ndarray], values: list[np.ndarray], mine, rope: tuple) -> bool:
        """The once-per-process check: transformers' keys and values against llama.cpp's over the same positions.
        Off for good (cache emptied) where they differ by more than :data:`MAX_DISAGREEMENT`."""
        worst = max(disagreement(keys, mine.keys), disagreement(values, mine.values))
        if worst > MAX_DISAGREEMENT:
            port.clear()
            self.off(f"transformers' cache differs from llama.cpp's by {worst:.0%}")
            return False
        self.checked.add(rope)
        return True

    def fill(self, port: CachePort, ids: list[int], plan: RopePlan, shape: tuple, kv_bytes: int,
             progress: ProgressFn | None = None) -> bool:
        """Fill ``port``'s empty cache with ``ids`` prefilled by transformers under ``plan`` (the rope the context of
        ``shape`` = (rope settings, n_ctx) realises); False, the cache empty again, where the handover does not apply
        (no assist, a short prompt, no memory for it) or fails its checks (then it stays off for this generator, with
        the reason in :attr:`reason`). Each rope setting is checked once per process: YaRN, linear and NTK plans
        past the 1.5 B's window agreed with llama.cpp's within 2-6 %, as the model's own rope does."""
        assist = self.assist
        if assist is None or len(ids) < MIN_TOKENS or not self.pays(len(ids)) or not assist.fits(kv_bytes):
            return False
        # Loading the transformers side in a process that had no torch yet: what a one-question process pays for its
        # first handover (torch, transformers and the bf16 weights), kept with the rates for :meth:`pays`.
        cold = not assist.loaded and "torch" not in sys.modules
        # A state llama.cpp writes in this context is the template the handed-over one must match byte for byte. The
        # first handover of a process also compares both backends' caches over a probe, and the first on a machine
        # times both on RATE_TOKENS tokens.
        measure = self.rates is None and not os.environ.get("DOCQA_NO_CPU_PROBE")
        rope = shape[0]
        probe = ids[:RATE_TOKENS] if measure else ids[:CHECK_TOKENS] if rope not in self.checked else ids[:1]
        t0 = time.perf_counter()
        port.append(probe)
        llama_s = time.perf_counter() - t0
        blob = port.state()
        try:
            mine = parse_state(blob)
            layout = self._layouts.get(shape) or layout_of(blob, mine)
        except ModelLoadError as e:
            port.clear()
            self.off(f"its cache layout is not one docqa writes: {first_line(e)}")
            return False
        self._layouts[shape] = layout
        del blob
        if measure:  # once per machine and model: both backends timed on the same RATE_TOKENS tokens
            assist.load()  # not part of the timed prefill
            t0 = time.perf_counter()
            keys, values = assist.keys_values(probe, plan)
            hf_s = time.perf_counter() - t0
            if not self._agree(port, keys, values, mine, rope):
                return False
            del keys, values
            self.rates = {"llama.cpp": round(len(probe) / llama_s, 1), "transformers": round(len(probe) / hf_s, 1),
                          "tokens": len(probe), "measured": time.strftime("%Y-%m-%d")}
            write_rates(self.rates_key, self.rates)
            why = slower(self.rates)
            if why and asked(assist.config) == "auto":
                port.clear()
                self.off(why)
                return False
        cache = assist.prefilled(ids, plan, progress)
        if cold and self.rates is not None and "setup_s" not in self.rates and self.rates_key:
            self.rates = {**self.rates, "setup_s": round(assist.load_s, 2)}
            write_rates(self.rates_key, self.rates)
        # Compared on the prompt's own first rows (no second forward). A separate forward of 64 tokens or fewer takes
        # docqa's grouped attention, whose bf16 scores once made it 20 % apart from llama.cpp's (docqa/attention.py
        # now keeps them in fp32 on CPU).
        if rope not in self.checked and not self._agree(port, *cache.head(len(probe)), mine, rope):
            return False
        state = build_state(layout, cache.keys(), cache.values(), n=cache.n)
        del cache
        if not port.load(state, ids):
            self.off("llama.cpp refused the handed-over cache")
            return False
        return True
