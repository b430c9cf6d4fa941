"""The llama.cpp backend: a GGUF model run quantized, in process, through llama-cpp-python.

Why it exists (measured, benchmarks/RESULTS.md "A reader that reads"): on a 2-core CPU, Qwen2.5-Coder-1.5B as Q4_K_M
under llama.cpp loads in about a second into ~1.1 GB of mapped weights and decodes ~10x faster than the same model
dequantized to fp32 under transformers (6 GB, ~100 s to convert and load). Decoding on a CPU is memory-bound, so a
4.5-bit model reads a seventh of the bytes an fp32 one does at every step.

What it keeps from docqa's contract (:class:`~docqa.generators.base.Generator`): greedy answers with the same stop
rules and no-repeat-n-gram ban as the transformers backend; one rope plan per request, realised with llama.cpp's own
context settings (plain, linear, NTK/dynamic as a fixed base, YaRN); prefix reuse — a prefilled document prefix is
kept in the context and, when another prefix has taken the context since, restored from a snapshot of its sequence
state (``llama_state_seq_get_data``), which is also what :meth:`save_prefix` writes to disk
(:mod:`.llamacpp_prefix`). Long fresh prompts may be prefilled by transformers in bf16 and handed over as such a
state, where that is faster on this CPU (:mod:`.prefill_assist`); llama.cpp decodes either way.

It uses llama-cpp-python's thin wrappers (``_internals``: model, context, batch) rather than its ``Llama`` class:
``Llama`` keeps an n_batch x vocabulary logits array (311 MB for Qwen's 152 k vocabulary) and copies it into every
``save_state``, and it cannot change the context's rope settings without reloading the model. The pinned
llama-cpp-python version (Makefile) is the one these wrappers were written against.

Not done here: several sequences decoding together (``generate_batch`` answers one prompt after another; each answer is
the one the prompt gets alone: measured on a 2-core AMD EPYC, eight sequences a step decoded only 1.29x faster and
changed 2 of 16 greedy answers, benchmarks/RESULTS.md "rag's top-k and llama.cpp's batched decode"), perplexity
(``tail_logprobs``: the transformers backend has it), and models with sliding-window or per-layer-type attention
(refused in one line naming the transformers backend, which runs them: its sliding-window caches keep the prefix docqa
reuses; llama.cpp's own sliding-window cache cannot roll back to a prefix unless it keeps every position, which undoes
its saving).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from ..errors import ConfigError, ModelLoadError
from ..rope import RopeModel, RopePlan, plan_for
from .base import (
    Floor,
    Generation,
    GeneratorConfig,
    PrefixState,
    ProgressFn,
    TextFn,
    banned_next,
    cut_at_stop,
    ends_answer,
)
from .llamacpp_context import KVSlot, Snapshot
from .llamacpp_gguf import ChatTemplate, Silence, gguf_facts, gguf_path
from .llamacpp_prefix import PrefixHeader, read_prefix, write_prefix
from .streaming import AnswerStream

__all__ = ["LlamaCppGenerator", "PrefixHeader"]


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
        self.threads = threads.count(config.threads)  # torch's too, where a prefill is handed over
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
        bos, eos = self._model.token_bos(), self._model.token_eos()
        self._template = ChatTemplate(self.facts["template"], self._piece(bos), self._piece(eos))
        window = self.facts["window"]
        self.trained_window = config.trained_window or window
        self._rope_model = RopeModel(self.facts["rope_dims"], self.facts["rope_theta"], self.trained_window)
        self._kv = KVSlot(llama_cpp, _internals, self._model, self.threads, self.kv_bytes_per_token())
        self._lock = threading.RLock()
        self._ending: list[int] | None = None
        self._setup_prefill(model, config)

    def _setup_prefill(self, model: str, config: GeneratorConfig) -> None:
        """Who prefills long prompts (:mod:`.prefill_assist`), decided once per generator."""
        from .prefill_assist import Handover

        n_params = int(self._llama_cpp.llama_model_n_params(self._model.model))
        self._handover = Handover.for_model(model, self.path, config, n_params, self.facts["arch"], self.threads)

    @property
    def dtypes_reason(self) -> str:
        return f"llama.cpp: Q4_K_M weights, f16 KV cache; {self._handover.reason}"

    # ------------------------------------------------------------------------------------------------ text
    def _piece(self, token: int) -> str:
        return self._model.token_to_piece(token, special=True).decode("utf-8", errors="ignore") if token >= 0 else ""

    def ending_ids(self) -> list[int]:
        """End-of-generation and control tokens and every piece with a line break (:class:`~.base.Floor`'s ban);
        computed once, on the first answer a floor holds (~0.5 s for a 152 k vocabulary)."""
        if self._ending is None:
            lc, vocab = self._llama_cpp, self._vocab
            self._ending = [t for t in range(self._model.n_vocab()) if lc.llama_vocab_is_eog(vocab, t)
                            or lc.llama_vocab_is_control(vocab, t) or ends_answer(self._piece(t))]
        return self._ending

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

    def _prefill_handed(self, ids: list[int], plan: RopePlan, progress: ProgressFn | None, total: int) -> bool:
        """Fill the empty cache with ``ids`` prefilled by transformers (:mod:`.prefill_assist`); False, with the
        cache empty, where the handover does not apply or fails its checks: llama.cpp prefills then."""
        if self._kv.tokens:
            return False
        return self._handover.fill(self._kv, ids, plan, self._kv.key, self.kv_bytes(len(ids)),
                                   progress and (lambda done, _n: progress(done, total)))

    # ------------------------------------------------------------------------------------------------ calls
    def prefill_prefix(self, ids: list[int], plan: RopePlan, progress: ProgressFn | None = None) -> PrefixState:
        """Prefill ``ids`` under ``plan`` once; :meth:`generate` with ``prefix=`` then only processes the rest."""
        with self._lock:
            # Room for the questions that follow: up to 512 tokens, but never past what the plan was sized for (the
            # caller's reserve for question and answer; a plan stretched past the window holds no more). A fixed
            # +512 refused every prefix whose plan reserved less: past the window, every question errored.
            self._kv.fresh(max(len(ids) + 1, min(len(ids) + 512, self._limit(plan))), self._rope_settings(plan),
                           self._limit(plan))
            t0 = time.perf_counter()
            if not self._prefill_handed(list(ids), plan, progress, len(ids)):
                self._kv.eval(list(ids), progress, len(ids))
            state = PrefixState(list(ids), plan, Snapshot(self._kv.key), time.perf_counter() - t0)
            self._kv.adopt(state)
            return state

    def _score(self, logits, text: str) -> float:
        """log P(``text`` as the answer's start), token by token after the prompt; the cache is put back after."""
        import numpy as np

        ids = self.encode(text)
        n = len(self._kv.tokens)
        total = 0.0
        row = np.asarray(logits, dtype=np.float64)
        for i, tok in enumerate(ids):
            m = row.max()
            total += float(row[tok] - m - np.log(np.exp(row - m).sum()))
            if i + 1 < len(ids):
                row = np.asarray(self._kv.eval([tok]), dtype=np.float64)
        self._kv.truncate(n)
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
        on_text: TextFn | None = None,
        floor: Floor | None = None,
    ) -> Generation:
        """Greedy decoding until an end-of-generation token, a ``stop`` string, or ``max_new_tokens``, not before
        ``floor`` lets it end; the same contract as the transformers backend's
        :meth:`~docqa.generators.hf.TransformersGenerator.generate`."""
        import numpy as np

        ids = self.encode(prompt) if isinstance(prompt, str) else list(prompt)
        if not ids:
            raise ConfigError("Empty prompt: nothing to generate from.")
        n_prefix = len(prefix.ids) if prefix else 0
        plan = prefix.plan if prefix else (rope or self.plain_plan(len(ids) + max_new_tokens))
        with self._lock:
            if prefix is not None:
                self._kv.use_prefix(prefix)
                need = n_prefix + len(ids) + max_new_tokens
                if need > self._kv.key[1]:
                    raise ConfigError(f"The question and answer budget need {need:,} tokens after the cached prefix; "
                                      f"its context holds {self._kv.key[1]:,}.")
            else:
                # A fresh cache for every prompt without a prefix: answers never depend on what was asked before.
                self._kv.fresh(len(ids) + max_new_tokens, self._rope_settings(plan), self._limit(plan))
            t0 = time.perf_counter()
            # The prompt but its last token may be prefilled by transformers; llama.cpp evaluates the last one, whose
            # logits start the answer. A copy: the view's buffer is overwritten by the next evaluation.
            rest = ids[-1:] if prefix is None and self._prefill_handed(ids[:-1], plan, progress, len(ids)) else ids
            logits = np.array(self._kv.eval(rest, progress, len(ids)), dtype=np.float32)
            score_lp = self._score(logits, score) if score else None
            prefill_s = time.perf_counter() - t0
            out: list[int] = []
            finish, ttft = "length", prefill_s
            shown = AnswerStream(on_text, stop)
            t1 = time.perf_counter()
            for step in range(max_new_tokens):
                row = np.array(logits, dtype=np.float32)
                ban = banned_next(out, self.config.no_repeat_ngram)
                if floor is not None and floor.binds(self.decode(out)):
                    ban = [*ban, *self.ending_ids()]
                if ban:
                    row[ban] = -np.inf
                nxt = int(row.argmax())
                if step == 0:
                    ttft = prefill_s + (time.perf_counter() - t1)
                if self._llama_cpp.llama_vocab_is_eog(self._vocab, nxt):
                    finish = "eos"
                    break
                out.append(nxt)
                if shown.ends(lambda: self.decode(out)):
                    finish = "stop"
                    break
                if step + 1 < max_new_tokens:
                    logits = self._kv.eval([nxt])
            decode_s = time.perf_counter() - t1
            if prefix is not None:
                self._kv.truncate(n_prefix)  # the prefix stays live for the next question
        text = cut_at_stop(self.decode(out), stop)
        shown.done(text)
        return Generation(text=text, prompt_tokens=n_prefix + len(ids),
                          completion_tokens=len(out), prefill_s=prefill_s, decode_s=decode_s, ttft_s=ttft,
                          finish_reason=finish, cached_tokens=n_prefix, rope=plan, score_logprob=score_lp)

    def generate_batch(self, prompts: list[str | list[int]], max_new_tokens: int = 128, *,
                       stop: tuple[str, ...] = (), slots: int | None = None,
                       score: str | None = None, floors: list[Floor | None] | None = None) -> list[Generation]:
        """One prompt after another (each the answer it gets alone); ``slots`` is accepted and ignored. llama.cpp can
        decode several sequences in one batch, but on a CPU that gained 1.29x at eight and changed answers (the module
        docstring), so it is not done."""
        floors = floors or [None] * len(prompts)
        return [self.generate(p, max_new_tokens, stop=stop, score=score, floor=f)
                for p, f in zip(prompts, floors, strict=True)]

    # ------------------------------------------------------------------------------------------------ persistence
    def save_prefix(self, state: PrefixState, path: Path) -> None:
        """Write the prefix's sequence state to ``path`` atomically (:mod:`.llamacpp_prefix`)."""
        snap: Snapshot = state.cache
        with self._lock:
            if snap.data is None:
                self._kv.use_prefix(state)
            data = snap.data if snap.data is not None else self._kv.state()
        write_prefix(path, self.spec, len(state.ids), snap.ctx_key, data)

    def load_prefix(self, path: Path, ids: list[int], plan: RopePlan) -> PrefixState | None:
        """The prefix saved at ``path`` if it is this model's, under ``plan``'s rope, holding exactly ``len(ids)``
        positions; else None."""
        found = read_prefix(path, self.spec, len(ids))
        if found is None or found[0][0] != tuple(self._rope_settings(plan)):
            return None
        return PrefixState(list(ids), plan, Snapshot(*found), 0.0, {"loaded_from": str(path)})
