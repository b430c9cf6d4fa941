"""The llama.cpp backend: a GGUF model run quantized, in process, through llama-cpp-python.

Why it exists (measured, benchmarks/RESULTS.md "A reader that reads"): on a 2-core CPU, Qwen2.5-Coder-1.5B as Q4_K_M
under llama.cpp loads in about a second into ~1.1 GB of mapped weights and decodes ~10x faster than the same model
dequantized to fp32 under transformers (6 GB, ~100 s to convert and load). Decoding on a CPU is memory-bound, so a
4.5-bit model reads a seventh of the bytes an fp32 one does at every step.

What it keeps from docqa's contract (:class:`~docqa.generators.base.Generator`): greedy answers with the same stop
rules and no-repeat-n-gram ban as the transformers backend; one rope plan per request, realised with llama.cpp's own
context settings (plain, linear, NTK/dynamic as a fixed base, YaRN); prefix reuse — a prefilled document prefix is
kept in the context and, when another prefix has taken the context since, restored from a snapshot of its sequence
state (``llama_state_seq_get_data``), which is also what :meth:`save_prefix` writes to disk.

It uses llama-cpp-python's thin wrappers (``_internals``: model, context, batch) rather than its ``Llama`` class:
``Llama`` keeps an n_batch x vocabulary logits array (311 MB for Qwen's 152 k vocabulary) and copies it into every
``save_state``, and it cannot change the context's rope settings without reloading the model. The pinned
llama-cpp-python version (Makefile) is the one these wrappers were written against.

Not done here: several sequences decoding together (``generate_batch`` answers one prompt after another; each answer
is the one the prompt gets alone), perplexity (``tail_logprobs``: the transformers backend has it), and models with
sliding-window or per-layer-type attention (refused in one line naming the transformers backend, which runs them: its
sliding-window caches keep the prefix docqa reuses; llama.cpp's own sliding-window cache cannot roll back to a prefix
unless it keeps every position, which undoes its saving).
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ValidationError

from ..errors import ConfigError, ModelLoadError, first_line
from ..rope import RopeModel, RopePlan, plan_for
from .base import Generation, GeneratorConfig, PrefixState, ProgressFn, banned_next, cut_at_stop, hits_stop
from .llamacpp_gguf import ChatTemplate, Silence, gguf_facts, gguf_path

# Tokens per llama_decode call during prefill. 512 is llama.cpp's own default; the batch's logits buffer holds one row.
N_BATCH = 512
# The smallest context allocated; contexts grow to the next power of two a request needs (up to the window a plan
# allows), so a rag question does not pay for a 32 k-token KV cache and a long document does not re-create the
# context at every question.
MIN_CTX = 4096
PREFIX_FORMAT = "docqa-llamacpp-prefix/1"
# Flash attention: measured on the 1.5 B at 8 k tokens (benchmarks/RESULTS.md, "A reader that reads"), off decoded
# 25 % faster (13.6 against 10.9 tokens/s) and prefilled the same (58.0 / 58.7). Off, llama.cpp keeps a batch x context
# score buffer per head (~0.8 GB at 32 k for the 1.5 B), so it stays on for contexts past FLASH_ATTN_ABOVE tokens.
# None: by context size; True / False force it.
FLASH_ATTN: bool | None = None
FLASH_ATTN_ABOVE = 16384


@dataclass
class _Snapshot:
    """A prefix's KV: live in the context (``data`` None) until another request takes the context, then copied out.

    Copying only on eviction keeps one copy of a 30 k-token prefix's cache (860 MB for the 1.5 B model) in memory,
    not two, in the usual case of one document prefix answering many questions."""

    ctx_key: tuple
    data: bytes | None = None


class PrefixHeader(BaseModel):
    """The first line of a saved llama.cpp prefix file; the sequence state's bytes follow it."""

    format: str
    model: str
    tokens: int
    ctx_key: list
    nbytes: int


class LlamaCppGenerator:
    """A GGUF model run quantized by llama.cpp, in process, with greedy decoding and prefix reuse."""

    prefix_suffix = ".llamacpp"  # saved prefixes are llama.cpp sequence states, not safetensors

    def __init__(self, spec: str, model: str, config: GeneratorConfig):
        if config.device not in (None, "cpu"):
            raise ConfigError(f"The llama.cpp backend runs on the CPU here; --device {config.device} is for the "
                              f"transformers backend (--model transformers:{model}).")
        try:
            import llama_cpp
            from llama_cpp import _internals
        except ImportError:
            raise ModelLoadError("The llama.cpp backend needs llama-cpp-python: pip install "
                                 "'llama-cpp-python==0.3.36' (make install builds it), or run the model with "
                                 f"--model transformers:{model}.") from None
        from .. import threads

        self._llama_cpp, self._internals = llama_cpp, _internals
        self.spec = spec if spec.startswith("llama.cpp:") else f"llama.cpp:{model}"
        self.config = config
        self.threads = threads.apply(config.threads)
        self.path = gguf_path(model)
        Silence.install()
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = 0
        params.use_mmap = True  # the weights stay in the page cache, shared by every process that maps them
        t0 = time.perf_counter()
        try:
            self._model = _internals.LlamaModel(path_model=str(self.path), params=params, verbose=False)
        except Exception as e:  # noqa: BLE001 - any load failure is one line
            raise ModelLoadError(f"llama.cpp could not load {self.path}: {' '.join(str(e).split())[:300]}. Check "
                                 f"the file (docqa models --verify) or use --model transformers:{model}.") from None
        self.load_s = time.perf_counter() - t0
        self.facts = gguf_facts(self._model.metadata(), spec)
        self._vocab = llama_cpp.llama_model_get_vocab(self._model.model)
        self._n_vocab = self._model.n_vocab()
        bos, eos = self._model.token_bos(), self._model.token_eos()
        self._template = ChatTemplate(self.facts["template"], self._piece(bos), self._piece(eos))
        window = self.facts["window"]
        self.trained_window = config.trained_window or window
        self._rope_model = RopeModel(self.facts["rope_dims"], self.facts["rope_theta"], self.trained_window)
        self._ctx = None
        self._ctx_key: tuple | None = None
        self._batch = _internals.LlamaBatch(n_tokens=N_BATCH, embd=0, n_seq_max=1, verbose=False)
        self._tokens: list[int] = []  # what the context's KV cache holds, position by position
        self._owner: weakref.ref | None = None  # the prefix whose snapshot is live in the context
        self._lock = threading.RLock()
        self.dtypes_reason = "llama.cpp: Q4_K_M weights, f16 KV cache"

    # ------------------------------------------------------------------------------------------------ text
    def _piece(self, token: int) -> str:
        return self._model.token_to_piece(token, special=True).decode("utf-8", errors="ignore") if token >= 0 else ""

    def rope_model(self) -> RopeModel:
        return self._rope_model

    def encode(self, text: str) -> list[int]:
        # special=True: chat-template markers in the text (<|im_start|>) become their tokens, as transformers does.
        if not text:
            return []
        return list(self._model.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def decode(self, ids: list[int]) -> str:
        return self._model.detokenize(list(ids), special=False).decode("utf-8", errors="ignore")

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(self.encode(t)) for t in texts]

    def chat(self, system: str, user: str) -> str:
        from .base import render_chat

        return render_chat(self._template, system, user)

    def kv_bytes_per_token(self) -> int:
        """Bytes one token holds in the KV cache: layers x 2 x KV heads x head dim x 2 (f16, llama.cpp's default)."""
        f = self.facts
        return f["n_layer"] * 2 * f["n_head_kv"] * f["head_dim"] * 2

    def kv_bytes(self, tokens: int) -> int:
        """Every layer keeps every token (sliding-window models are refused by this backend)."""
        return tokens * self.kv_bytes_per_token()

    def plain_plan(self, seq_len: int) -> RopePlan:
        return plan_for("none", self._rope_model, seq_len)

    # ------------------------------------------------------------------------------------------------ contexts
    def _rope_settings(self, plan: RopePlan) -> tuple:
        """llama.cpp context settings that rotate as ``plan`` does: (scaling type, freq base, freq scale, yarn L0).
        Zero base / scale mean "the model's own"."""
        lc = self._llama_cpp
        if plan.factor == 1.0 and plan.method in ("none", "native", "yarn", "linear", "ntk", "dynamic"):
            return (lc.LLAMA_ROPE_SCALING_TYPE_NONE, 0.0, 0.0, 0)
        if plan.method in ("ntk", "dynamic"):  # a fixed, larger base for the whole request (docqa plans it so)
            return (lc.LLAMA_ROPE_SCALING_TYPE_NONE, float(plan.base), 1.0, 0)
        if plan.method == "linear":
            return (lc.LLAMA_ROPE_SCALING_TYPE_LINEAR, 0.0, 1.0 / plan.factor, 0)
        if plan.method == "yarn":  # llama.cpp multiplies attention by 0.1 ln(s) + 1 itself, as docqa's plan says
            return (lc.LLAMA_ROPE_SCALING_TYPE_YARN, 0.0, 1.0 / plan.factor, self.trained_window)
        raise ConfigError(f"Rope method '{plan.method}' has no llama.cpp equivalent. Use --rope yarn, linear, ntk or "
                          f"dynamic, or --model transformers:{self.spec.partition(':')[2]}.")

    def _limit(self, plan: RopePlan) -> int:
        """The most tokens a context under ``plan`` may hold: the length a stretched plan was sized for, else the
        trained window."""
        return max(plan.seq_len, self.trained_window) if plan.factor > 1.0 else self.trained_window

    def _context(self, tokens: int, plan: RopePlan):
        """A context whose rope realises ``plan`` with room for ``tokens``; reused while both hold."""
        rope = self._rope_settings(plan)
        limit = self._limit(plan)
        if tokens > limit:
            raise ConfigError(f"{tokens:,} tokens do not fit this request's window of {limit:,}.")
        if self._ctx is not None and self._ctx_key[0] == rope and self._ctx_key[1] >= tokens:
            return self._ctx
        n_ctx = MIN_CTX
        while n_ctx < tokens:
            n_ctx *= 2
        return self._create((rope, min(n_ctx, limit)))

    def _create(self, key: tuple):
        """A new context for ``key`` = (rope settings, n_ctx); the live prefix is copied out first."""
        rope, n_ctx = key
        self._evict()
        lc = self._llama_cpp
        params = lc.llama_context_default_params()
        params.n_ctx, params.n_batch, params.n_ubatch = n_ctx, N_BATCH, N_BATCH
        params.n_threads = params.n_threads_batch = self.threads
        params.rope_scaling_type, params.rope_freq_base, params.rope_freq_scale, params.yarn_orig_ctx = rope
        flash = FLASH_ATTN if FLASH_ATTN is not None else n_ctx > FLASH_ATTN_ABOVE
        params.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash else lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
        params.no_perf = True
        self._ctx = None  # free the old context (and its KV) before allocating the new one
        self._ctx_key = None
        try:
            self._ctx = self._internals.LlamaContext(model=self._model, params=params, verbose=False)
        except Exception as e:  # noqa: BLE001
            raise ModelLoadError(f"llama.cpp could not create a {n_ctx:,}-token context "
                                 f"({self.kv_bytes_per_token() * n_ctx / 2**30:.1f} GiB of KV cache): "
                                 f"{first_line(e)}. Lower --max-context or use rag.") from None
        self._ctx_key = (tuple(rope), n_ctx)
        self._tokens = []
        return self._ctx

    def _evict(self) -> None:
        """Before the context's cache is overwritten, copy out the live prefix's state (if one is still wanted)."""
        owner = self._owner() if self._owner else None
        if owner is not None and owner.cache.data is None:
            owner.cache.data = self._seq_state()
        self._owner = None

    def _seq_state(self) -> bytes:
        lc = self._llama_cpp
        size = lc.llama_state_seq_get_size(self._ctx.ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        got = lc.llama_state_seq_get_data(self._ctx.ctx, buf, size, 0)
        return bytes(memoryview(buf)[:got])

    def _truncate(self, n: int) -> None:
        """Keep the first ``n`` positions of the KV cache."""
        if len(self._tokens) > n:
            self._ctx.kv_cache_seq_rm(-1, n, -1)
            del self._tokens[n:]

    def _eval(self, ids: list[int], progress: ProgressFn | None = None, total: int | None = None):
        """Append ``ids`` to the cache; return the last position's logits (a numpy view, valid until the next call)."""
        import numpy as np

        if not ids:
            raise ConfigError("Empty prompt: nothing to generate from.")
        done0 = len(self._tokens)
        for start in range(0, len(ids), N_BATCH):
            chunk = ids[start:start + N_BATCH]
            self._batch.set_batch(batch=chunk, n_past=len(self._tokens), logits_all=False)
            try:
                self._ctx.decode(self._batch)
            except Exception as e:  # noqa: BLE001 - llama_decode's failure codes (no room in the cache, …)
                raise ModelLoadError(f"llama.cpp failed to evaluate {len(chunk)} tokens at position "
                                     f"{len(self._tokens)}: {first_line(e)}") from None
            self._tokens.extend(chunk)
            if progress and total:
                progress(len(self._tokens) - done0 + (total - len(ids)), total)
        ptr = self._llama_cpp.llama_get_logits_ith(self._ctx.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self._n_vocab,))

    def _use_prefix(self, prefix: PrefixState) -> None:
        """Make the context hold exactly ``prefix``: truncate when it is live, else restore its snapshot."""
        snap: _Snapshot = prefix.cache
        n = len(prefix.ids)
        live = self._owner is not None and self._owner() is prefix and self._tokens[:n] == prefix.ids
        if live and self._ctx_key == snap.ctx_key:
            self._truncate(n)
            return
        if snap.data is None:
            raise ConfigError("This prefix's cache was dropped before it was saved; prefill it again.")
        if self._ctx_key != snap.ctx_key:  # a context of exactly the prefix's shape (its state is sized for it)
            self._create(snap.ctx_key)
        self._evict()
        self._ctx.kv_cache_clear()
        lc = self._llama_cpp
        buf = (ctypes.c_uint8 * len(snap.data)).from_buffer_copy(snap.data)
        if lc.llama_state_seq_set_data(self._ctx.ctx, buf, len(snap.data), 0) != len(snap.data):
            raise ModelLoadError("llama.cpp could not restore a saved prefix (another model or build?); delete the "
                                 "index's prefix/ folder and ask again.")
        self._tokens = list(prefix.ids)
        self._owner = weakref.ref(prefix)
        snap.data = None  # live again: one copy in memory; evicting it copies it out again

    # ------------------------------------------------------------------------------------------------ calls
    def prefill_prefix(self, ids: list[int], plan: RopePlan, progress: ProgressFn | None = None) -> PrefixState:
        """Prefill ``ids`` under ``plan`` once; :meth:`generate` with ``prefix=`` then only processes the rest."""
        with self._lock:
            # Room for the questions that follow: up to 512 tokens, but never past what the plan was sized for (the
            # caller's reserve for question and answer; a plan stretched past the window holds no more). A fixed
            # +512 refused every prefix whose plan reserved less: past the window, every question errored.
            self._context(max(len(ids) + 1, min(len(ids) + 512, self._limit(plan))), plan)
            self._evict()
            self._truncate(0)
            t0 = time.perf_counter()
            self._eval(list(ids), progress, len(ids))
            state = PrefixState(list(ids), plan, _Snapshot(self._ctx_key), time.perf_counter() - t0)
            self._owner = weakref.ref(state)
            return state

    def _score(self, logits, text: str) -> float:
        """log P(``text`` as the answer's start), token by token after the prompt; the cache is put back after."""
        import numpy as np

        ids = self.encode(text)
        n = len(self._tokens)
        total = 0.0
        row = np.asarray(logits, dtype=np.float64)
        for i, tok in enumerate(ids):
            m = row.max()
            total += float(row[tok] - m - np.log(np.exp(row - m).sum()))
            if i + 1 < len(ids):
                row = np.asarray(self._eval([tok]), dtype=np.float64)
        self._truncate(n)
        return total

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
    ) -> Generation:
        """Greedy decoding until an end-of-generation token, a ``stop`` string, or ``max_new_tokens``; the same contract
        as the transformers backend's :meth:`~docqa.generators.hf.TransformersGenerator.generate`."""
        import numpy as np

        ids = self.encode(prompt) if isinstance(prompt, str) else list(prompt)
        if not ids:
            raise ConfigError("Empty prompt: nothing to generate from.")
        n_prefix = len(prefix.ids) if prefix else 0
        plan = prefix.plan if prefix else (rope or self.plain_plan(len(ids) + max_new_tokens))
        with self._lock:
            if prefix is not None:
                self._use_prefix(prefix)
                need = n_prefix + len(ids) + max_new_tokens
                if need > self._ctx_key[1]:
                    raise ConfigError(f"The question and answer budget need {need:,} tokens after the cached prefix; "
                                      f"its context holds {self._ctx_key[1]:,}.")
            else:
                # A fresh cache for every prompt without a prefix: answers never depend on what was asked before.
                self._context(len(ids) + max_new_tokens, plan)
                self._evict()
                self._truncate(0)
            t0 = time.perf_counter()
            # A copy: the buffer behind the view is overwritten by the next evaluation (scoring makes some).
            logits = np.array(self._eval(ids, progress, len(ids)), dtype=np.float32)
            score_lp = self._score(logits, score) if score else None
            prefill_s = time.perf_counter() - t0
            out: list[int] = []
            finish, ttft = "length", prefill_s
            t1 = time.perf_counter()
            for step in range(max_new_tokens):
                row = np.array(logits, dtype=np.float32)
                ban = banned_next(out, self.config.no_repeat_ngram)
                if ban:
                    row[ban] = -np.inf
                nxt = int(row.argmax())
                if step == 0:
                    ttft = prefill_s + (time.perf_counter() - t1)
                if self._llama_cpp.llama_vocab_is_eog(self._vocab, nxt):
                    finish = "eos"
                    break
                out.append(nxt)
                if stop and hits_stop(self.decode(out), stop):
                    finish = "stop"
                    break
                if step + 1 < max_new_tokens:
                    logits = self._eval([nxt])
            decode_s = time.perf_counter() - t1
            if prefix is not None:
                self._truncate(n_prefix)  # the prefix stays live for the next question
        return Generation(text=cut_at_stop(self.decode(out), stop), prompt_tokens=n_prefix + len(ids),
                          completion_tokens=len(out), prefill_s=prefill_s, decode_s=decode_s, ttft_s=ttft,
                          finish_reason=finish, cached_tokens=n_prefix, rope=plan, score_logprob=score_lp)

    def generate_batch(self, prompts: list[str | list[int]], max_new_tokens: int = 128, *,
                       stop: tuple[str, ...] = (), slots: int | None = None,
                       score: str | None = None) -> list[Generation]:
        """One prompt after another (each the answer it gets alone). llama.cpp can decode several sequences in one
        batch; not done yet, so ``slots`` is accepted and ignored."""
        return [self.generate(p, max_new_tokens, stop=stop, score=score) for p in prompts]

    # ------------------------------------------------------------------------------------------------ persistence
    def save_prefix(self, state: PrefixState, path: Path) -> None:
        """Write the prefix's sequence state to ``path`` atomically: one JSON header line, then llama.cpp's bytes."""
        snap: _Snapshot = state.cache
        with self._lock:
            data = snap.data if snap.data is not None else self._live_state(state)
        header = PrefixHeader(format=PREFIX_FORMAT, model=self.spec, tokens=len(state.ids),
                              ctx_key=list(snap.ctx_key), nbytes=len(data))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        with open(tmp, "wb") as f:
            f.write(header.model_dump_json().encode() + b"\n")
            f.write(data)
        os.replace(tmp, path)

    def _live_state(self, state: PrefixState) -> bytes:
        self._use_prefix(state)
        return self._seq_state()

    def load_prefix(self, path: Path, ids: list[int], plan: RopePlan) -> PrefixState | None:
        """The prefix saved at ``path`` if it is this model's and holds exactly ``len(ids)`` positions, else None."""
        try:
            with open(path, "rb") as f:
                header = PrefixHeader.model_validate_json(f.readline())
                data = f.read()
        except (OSError, ValidationError, ValueError):
            return None
        if (header.format != PREFIX_FORMAT or header.model != self.spec or header.tokens != len(ids)
                or header.nbytes != len(data)):
            return None
        key = (tuple(header.ctx_key[0]), int(header.ctx_key[1]))
        if key[0] != tuple(self._rope_settings(plan)):
            return None
        return PrefixState(list(ids), plan, _Snapshot(key, data), 0.0, {"loaded_from": str(path)})

