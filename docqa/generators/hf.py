"""The in-process backend: a transformers causal LM with docqa's own greedy loop (in :mod:`.decoding`).

It decodes with its own loop rather than ``model.generate`` because docqa needs three things ``generate`` does not
give together: a prefill chunked to bound memory that computes logits for the last position only, one rope plan fixed
for the whole request (see :mod:`docqa.rope`), and a prefilled KV cache of a fixed prefix that many questions reuse
(:class:`~docqa.generators.base.PrefixState`). Answers are greedy, so strategies and evaluations are reproducible.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError, ModelLoadError
from ..paths import quiet_transformers
from ..rope import RopeModel, RopePlan, plan_for
from . import decoding, dtypes, memory, rope_install
from .base import (
    Floor,
    Generation,
    GeneratorConfig,
    PrefixState,
    ProgressFn,
    TextFn,
    cut_at_stop,
    render_chat,
)
from .gguf import resolve_model
from .hf_config import (  # noqa: F401 - re-exported: the loading checks live there
    _head_dim,
    _load_config,
    advertised_window,
    check_rope_layout,
    layer_types,
    resolve_attn,
    resolve_device,
    rope_model_from_config,
)
from .streaming import AnswerStream

if TYPE_CHECKING:
    import torch


# Forwards longer than this (tokens per row) run in the prefill dtype; shorter ones (decode steps, a short question
# after a cached prefix) in the decoding dtype. The same boundary as the CPU few-query attention's (docqa/attention.py).
PREFILL_MIN_TOKENS = 64


@contextlib.contextmanager
def _layer_progress(body, progress: ProgressFn | None, start: int, tokens: int, total: int):
    """Progress inside one forward, layer by layer: a one-pass prefill of a long document takes minutes on a CPU, and
    a bar that only moves at the end of each forward would stand still all that time."""
    layers = getattr(body, "layers", None)
    if progress is None or not layers or tokens < 1024:
        yield
        return
    n = len(layers)
    hooks = [layer.register_forward_hook(lambda *_, i=i: progress(start + tokens * (i + 1) // n, total))
             for i, layer in enumerate(layers)]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()


class TransformersGenerator:
    """A transformers causal LM with greedy decoding, chunked prefill, per-request rope and prefix reuse."""

    def __init__(self, spec: str, model: str, config: GeneratorConfig):

        quiet_transformers()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from .. import threads

        self.spec = spec
        self.config = config
        self.threads = threads.apply(config.threads)
        device_map, self.device = resolve_device(config.device)
        attn = resolve_attn(config.attn, self.device)
        folder = resolve_model(model)
        self.dtypes = dtypes.resolve(config.dtype, self.device)
        dtype = self.dtypes.decode
        check_rope_layout(model, _load_config(model, folder, config.trust_remote_code))  # before any weight loads
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=config.trust_remote_code)
            # Straight onto the device (no full host copy first); "auto" spreads layers over every GPU.
            self.model = AutoModelForCausalLM.from_pretrained(
                folder, dtype=dtype, trust_remote_code=config.trust_remote_code, device_map=device_map,
                **({"attn_implementation": attn} if attn else {}))
        except Exception as e:  # noqa: BLE001 - any load failure becomes one clear line
            raise ModelLoadError(  # one line: library errors often span several
                f"Could not load generator '{model}': {' '.join(str(e).split())[:400]}. Pass --model with an HF id, a "
                f"local folder or a .gguf file."
            ) from e
        self._setup()

    @classmethod
    def from_model(cls, model, tokenizer=None, config: GeneratorConfig | None = None,
                   spec: str = "in-memory") -> TransformersGenerator:
        """Wrap a causal LM already in memory (built from a config, fine-tuned in this process, …). Without a
        tokenizer it takes and returns token ids only (``generate(list_of_ids)``), as benchmarks/gpu.py does."""
        self = cls.__new__(cls)
        self.spec, self.config, self.model, self.tokenizer = spec, config or GeneratorConfig(), model, tokenizer
        check_rope_layout(spec, model.config)
        dt = next(model.parameters()).dtype
        self.dtypes = dtypes.PhaseDtypes(dt, dt, f"the model's own {str(dt).removeprefix('torch.')}")
        self.device = str(model.get_input_embeddings().weight.device)
        self._setup()
        return self

    def _setup(self) -> None:
        """Everything after the weights are in place: attention, rope, the prefill copy, the decoder body."""
        self.model.eval()
        # Inputs go where the embedding lives (the first GPU of a spread model).
        self.device = str(self.model.get_input_embeddings().weight.device)
        config = self.config
        from ..attention import DEVICES, register

        if self.device.split(":")[0] in DEVICES and getattr(self.model.config, "_attn_implementation", None) == "sdpa":
            # Few-query attention without copying the cache (see docqa/attention.py): on CPU a question after a cached
            # 30 k-token prefix went from 5.6 s to about 2 s; on an H200, CUDA-graph decoding of an 8 B model from 32
            # to 88 tokens/s (SDPA, given the graph's mask, repeats keys and values per query head).
            self.model.set_attn_implementation(register())
        self._rope_model = rope_model_from_config(self.model.config, config.trained_window)
        self.trained_window = self._rope_model.trained_window
        self._prefill_model = self._prefill_copy()
        self._rotaries = self._find_rotaries()
        # The decoder body (LlamaModel, GPTNeoXModel, …): prefill chunks that need no logits skip the LM head.
        self._body = self.model.base_model
        # transformers renamed `past_key_values` to `cache` during 5.x; pass whichever this version takes.
        params_of_forward = inspect.signature(self._body.forward).parameters
        self._cache_kw = "cache" if "cache" in params_of_forward else "past_key_values"
        self._plan: RopePlan | None = None
        self.eos_ids = self._eos_ids()
        self._ending: list[int] | None = None  # ending_ids(), on the first answer a floor holds
        self._lock = threading.RLock()
        # Sliding-window layers keep a window per sequence that continuous batching's shared, right-aligned cache does
        # not model: such models answer a batch's prompts one after another (each answer is the same either way).
        self._sliding = "sliding_attention" in layer_types(self.model.config)

    # ----------------------------------------------------------------------------------------------- loading
    def _prefill_copy(self):
        """The model long chunks run in: a bf16 copy where the CPU probe chose bf16 prefill (see
        :mod:`docqa.generators.dtypes`) and memory allows it, else the model itself."""
        import copy

        import torch

        if not self.dtypes.split:
            return self.model
        need = sum(p.numel() for p in self.model.parameters()) * 2
        if memory.available_memory() < 2 * need:
            why = f"{self.dtypes.reason}; no room for a {need / 2**30:.1f} GiB bf16 copy, so fp32 throughout"
            self.dtypes = dtypes.PhaseDtypes(self.dtypes.decode, self.dtypes.decode, why)
            return self.model
        # Each weight converted straight to bf16 (deepcopy's memo hands the copy the converted tensor): a deepcopy of
        # the fp32 model first held a third full copy, and loading the 1.5 B reader peaked at 14.8 GB for 9.3 GB of
        # weights as run (fp32 + bf16); tied weights stay tied (one object, one entry in the memo).
        memo: dict[int, object] = {}
        for p in self.model.parameters():
            memo[id(p)] = torch.nn.Parameter(p.detach().to(self.dtypes.prefill), requires_grad=False)
        for b in self.model.buffers():
            if b.is_floating_point():
                memo[id(b)] = b.to(self.dtypes.prefill)
        low = copy.deepcopy(self.model, memo).to(self.dtypes.prefill).eval()
        # Logits come from the fp32 head: a bf16 LM head rounds logits of ~15 to steps of 1/16, so near-ties in the
        # first answer token (the letter of a multiple-choice answer, a refusal's probability) were decided by
        # rounding. One position per prompt costs a 576 × 49 k matmul; the fp32 model's head is shared, not copied.
        head = self.model.get_output_embeddings()
        if head is not None:
            head.register_forward_pre_hook(lambda mod, args: (args[0].to(mod.weight.dtype), *args[1:]))
            low.set_output_embeddings(head)
        return low

    def _runner(self, tokens: int):
        """(model, body) for a forward of ``tokens`` tokens: prefill-sized ones in the prefill dtype."""
        if tokens > PREFILL_MIN_TOKENS and self._prefill_model is not self.model:
            return self._prefill_model, self._prefill_model.base_model
        return self.model, self._body

    def _find_rotaries(self) -> list:
        models = [self.model] if self._prefill_model is self.model else [self.model, self._prefill_model]
        return rope_install.find_rotaries(models, self._rope_model, self.spec)

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for source in (getattr(self.tokenizer, "eos_token_id", None),
                       getattr(self.model.generation_config, "eos_token_id", None)):
            if isinstance(source, int):
                ids.add(source)
            elif isinstance(source, (list, tuple)):
                ids.update(int(i) for i in source)
        return ids

    # ------------------------------------------------------------------------------------------------ text
    def ending_ids(self) -> list[int]:
        if self._ending is None:
            self._ending = decoding.ending_ids(self.tokenizer, self.eos_ids)
        return self._ending

    def rope_model(self) -> RopeModel:
        return self._rope_model

    def encode(self, text: str) -> list[int]:
        if self.tokenizer is None:
            raise ConfigError(f"Generator '{self.spec}' was given no tokenizer: pass token ids, not text.")
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        if self.tokenizer is None:  # a model wrapped without a tokenizer (from_model): the ids, space-separated
            return " ".join(map(str, ids))
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def count_tokens(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        return [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]

    def chat(self, system: str, user: str) -> str:
        return render_chat(self.tokenizer, system, user)

    # ------------------------------------------------------------------------------------------------ rope
    def _apply_rope(self, plan: RopePlan) -> None:
        """Install ``plan``'s frequencies in the model (see :mod:`.rope_install`), once per change of plan."""
        if plan == self._plan:
            return
        rope_install.install(self._rotaries, self._rope_model, plan)
        self._plan = plan

    def plain_plan(self, seq_len: int) -> RopePlan:
        return plan_for("none", self._rope_model, seq_len)

    # ------------------------------------------------------------------------------------------------ model calls
    def _prefill(self, ids: list[int], cache, progress: ProgressFn | None, logits: bool = True):
        """Run ``ids`` through the model into ``cache`` in chunks; return the logits of the last position only
        (None with ``logits=False``, for a prefix that only fills the cache).

        Intermediate chunks go through the decoder body without the LM head (a 49 k-vocabulary projection per
        position would cost more than a layer); the last chunk asks for one position of logits.
        """
        import torch

        step = self.prefill_step(len(ids))
        t = torch.tensor([ids], device=self.device)
        last = None
        for start in range(0, len(ids), step):
            chunk = t[:, start : start + step]
            model, body = self._runner(chunk.shape[1])
            with _layer_progress(body, progress, start, chunk.shape[1], len(ids)):
                if start + step < len(ids) or not logits:
                    body(input_ids=chunk, use_cache=True, **{self._cache_kw: cache})
                else:
                    out = model(input_ids=chunk, use_cache=True, **{self._cache_kw: cache}, logits_to_keep=1)
                    last = out.logits[0, -1].float()
            if progress:
                progress(min(start + step, len(ids)), len(ids))
        return last

    def prefill_step(self, tokens: int) -> int:
        """Tokens per prefill forward for a prompt of ``tokens`` (see :func:`.memory.prefill_step`)."""
        return memory.prefill_step(self, tokens)

    def kv_bytes_per_token(self) -> int:
        """Bytes of keys and values one more token adds to the cache: full layers × 2 × KV heads × head dim × dtype
        size (sliding-window layers hold a fixed window, see :meth:`kv_bytes`)."""
        return memory.kv_bytes_per_token(self.model)

    def kv_bytes(self, tokens: int) -> int:
        """Bytes of a cache holding ``tokens`` tokens (see :func:`.memory.kv_bytes`)."""
        return memory.kv_bytes(self.model, tokens)

    def _oom_guard(self, tokens: int):
        """Out-of-memory errors during a request of ``tokens`` become :class:`~docqa.errors.OutOfMemory`."""
        return memory.oom_guard(self, tokens)

    def prefill_prefix(self, ids: list[int], plan: RopePlan, progress: ProgressFn | None = None) -> PrefixState:
        """Prefill ``ids`` under ``plan`` once; :meth:`generate` with ``prefix=`` then only processes the rest."""
        import torch

        from ..kv_cache import new_cache

        with self._lock, torch.inference_mode(), self._oom_guard(len(ids) + 512):
            self._apply_rope(plan)
            # Room for a question and its answer after the prefix, so answering never regrows the buffer.
            cache = new_cache(self.model.config, expected=len(ids) + 512, reserve=512, dtype=self.model.dtype)
            t0 = time.perf_counter()
            self._prefill(ids, cache, progress, logits=False)
            return PrefixState(list(ids), plan, cache, time.perf_counter() - t0)

    def generate(
        self,
        prompt: str | list[int],
        max_new_tokens: int = 128,
        *,
        rope: RopePlan | None = None,
        prefix: PrefixState | None = None,
        progress: ProgressFn | None = None,
        stop: tuple[str, ...] = (),
        score: str | None = None,
        on_text: TextFn | None = None,
        floor: Floor | None = None,
    ) -> Generation:
        """Greedy decoding until an end-of-sequence token, a ``stop`` string, or ``max_new_tokens``.

        ``prompt`` is text (tokenized without extra special tokens: chat templates carry their own) or token ids.
        With ``prefix``, ``prompt`` is the continuation after ``prefix.ids`` and the prefix's plan is used; the
        cache is cropped back to the prefix afterwards, so the prefix stays reusable. With ``score``, the answer's
        :attr:`~Generation.score_logprob` is the log-probability the model gives ``score`` as the whole start of its
        answer (e.g. "I don't know."), read from the prompt's cache in one short forward. ``on_text`` sees the answer as
        it is decoded (:mod:`docqa.generators.streaming`). ``floor``: not before it lets the answer end.
        """
        import torch

        from ..kv_cache import checkpoint, new_cache

        ids = self.encode(prompt) if isinstance(prompt, str) else list(prompt)
        if not ids:
            raise ConfigError("Empty prompt: nothing to generate from.")
        n_prefix = len(prefix.ids) if prefix else 0
        plan = prefix.plan if prefix else (rope or self.plain_plan(len(ids) + max_new_tokens))
        with self._lock, torch.inference_mode(), self._oom_guard(n_prefix + len(ids) + max_new_tokens):
            self._apply_rope(plan)
            cache = prefix.cache if prefix else new_cache(self.model.config, expected=len(ids) + max_new_tokens,
                                                          dtype=self.model.dtype)
            restore = checkpoint(cache) if prefix else None
            try:
                t0 = time.perf_counter()
                logits = self._prefill(ids, cache, progress)
                score_lp = decoding.score_after(self, cache, logits, score) if score else None
                prefill_s = time.perf_counter() - t0
                shown = AnswerStream(on_text, stop)
                out, finish, ttft, decode_s = decoding.greedy(self, logits, cache, max_new_tokens, stop, prefill_s,
                                                              shown, floor)
            finally:
                if restore is not None:  # the prefix stays reusable: back to exactly what it held
                    restore()
        text = cut_at_stop(self.decode(out), stop)
        shown.done(text)
        return Generation(
            text=text,
            prompt_tokens=n_prefix + len(ids),
            completion_tokens=len(out),
            prefill_s=prefill_s,
            decode_s=decode_s,
            ttft_s=ttft,
            finish_reason=finish,
            cached_tokens=n_prefix,
            rope=plan,
            score_logprob=score_lp,
        )

    def generate_batch(self, prompts: list[str | list[int]], max_new_tokens: int = 128, *,
                       stop: tuple[str, ...] = (), slots: int | None = None,
                       score: str | None = None, floors: list[Floor | None] | None = None) -> list[Generation]:
        """Greedy answers to several prompts, ``slots`` of them (default: all) decoding together with continuous
        batching (:mod:`docqa.generators.batching`); each answer is the one :meth:`generate` gives the prompt alone.

        Rows whose rope plans differ (a longrope checkpoint across its original window) run in separate groups. A
        row's prefill time is its own; its decode time runs from its prefill to its last token, shared with the
        rows decoding beside it.
        """
        from .batching import generate_continuous

        all_ids = [self.encode(p) if isinstance(p, str) else list(p) for p in prompts]
        if any(not ids for ids in all_ids):
            raise ConfigError("Empty prompt: nothing to generate from.")
        out: list[Generation | None] = [None] * len(all_ids)
        groups: dict[tuple, tuple[RopePlan, list[int]]] = {}
        batch_plan = self.plain_plan(max(len(x) for x in all_ids) + max_new_tokens)
        batch_key = self._rope_model.rotation(batch_plan)
        for i, ids in enumerate(all_ids):
            own = self.plain_plan(len(ids) + max_new_tokens)
            # Rows share a forward when their own plan rotates exactly as the batch's does (always within a plain
            # model's window, whatever the lengths); a longrope row below its original window does not.
            key = self._rope_model.rotation(own)
            groups.setdefault(key, (batch_plan if key == batch_key else own, []))[1].append(i)
        for plan, rows in groups.values():
            if len(rows) == 1 or self._sliding:
                out[rows[0]] = self.generate(all_ids[rows[0]], max_new_tokens, rope=plan, stop=stop, score=score,
                                             floor=floors[rows[0]] if floors else None)
                continue
            gens = generate_continuous(self, [all_ids[i] for i in rows], max_new_tokens, plan, stop,
                                       slots or len(rows), score, [floors[i] for i in rows] if floors else None)
            for i, g in zip(rows, gens, strict=True):
                out[i] = g
        return [g for g in out if g is not None]

    def save_prefix(self, state: PrefixState, path: Path) -> None:
        """Save a prefilled prefix as safetensors (see :mod:`docqa.prefix_cache`)."""
        from .. import prefix_cache

        prefix_cache.save(path, state.cache, {"tokens": str(len(state.ids)), "model": self.spec})

    def load_prefix(self, path: Path, ids: list[int], plan: RopePlan) -> PrefixState | None:
        """The prefix saved at ``path`` if it holds exactly ``len(ids)`` positions, else None."""
        from .. import prefix_cache

        loaded = prefix_cache.load(path, self.model.config, self.device)
        if loaded is None:
            return None
        cache, meta = loaded
        if cache.get_seq_length() != len(ids):
            return None
        return PrefixState(list(ids), plan, cache, 0.0, {"loaded_from": str(path)})

    def tail_logprobs(self, ids: list[int], plan: RopePlan, tail: int,
                      progress: ProgressFn | None = None) -> torch.Tensor:
        """Log-probabilities of the last ``tail`` tokens of ``ids``, each given everything before it (perplexity);
        see :func:`docqa.generators.decoding.tail_logprobs`."""
        return decoding.tail_logprobs(self, ids, plan, tail, progress)
