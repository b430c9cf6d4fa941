"""The llama.cpp backend's one context and what its KV cache holds: contexts sized and rotated per request, prompts
evaluated into the cache, prefixes kept live or snapshotted (``llama_state_seq_get_data``) when another request takes
the context, and sequence states loaded whole (a snapshot restored, or a prefill handed over by
:mod:`.prefill_assist`).

Kept apart from :mod:`docqa.generators.llamacpp`, which holds the generator's contract (text, rope plans, greedy
decoding, saved prefixes): this module is the cache's bookkeeping, position by position.
"""

from __future__ import annotations

import ctypes
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ConfigError, ModelLoadError, first_line
from .base import PrefixState, ProgressFn

if TYPE_CHECKING:
    import numpy as np

# Tokens per llama_decode call during prefill. 512 is llama.cpp's own default; the batch's logits buffer holds one row.
N_BATCH = 512
# The smallest context allocated; contexts grow to the next power of two a request needs (up to the window a plan
# allows), so a rag question does not pay for a 32 k-token KV cache and a long document does not re-create the
# context at every question.
MIN_CTX = 4096
# Flash attention: measured on the 1.5 B at 8 k tokens (benchmarks/RESULTS.md, "A reader that reads"), off decoded
# 25 % faster (13.6 against 10.9 tokens/s) and prefilled the same (58.0 / 58.7). Off, llama.cpp keeps a batch x context
# score buffer per head (~0.8 GB at 32 k for the 1.5 B), so it stays on for contexts past FLASH_ATTN_ABOVE tokens.
# None: by context size; True / False force it.
FLASH_ATTN: bool | None = None
FLASH_ATTN_ABOVE = 16384


@dataclass
class Snapshot:
    """A prefix's KV: live in the context (``data`` None) until another request takes the context, then copied out.

    Copying only on eviction keeps one copy of a 30 k-token prefix's cache (860 MB for the 1.5 B model) in memory,
    not two, in the usual case of one document prefix answering many questions."""

    ctx_key: tuple
    data: bytes | None = None


class KVSlot:
    """One llama.cpp context: ``key`` = (rope settings, n_ctx) it was made for, ``tokens`` its cache holds."""

    def __init__(self, llama_cpp, internals, model, threads: int, kv_bytes_per_token: int):
        self._lc, self._internals, self._model = llama_cpp, internals, model
        self.threads, self._kv_bytes_per_token = threads, kv_bytes_per_token
        self._n_vocab = model.n_vocab()
        self._batch = internals.LlamaBatch(n_tokens=N_BATCH, embd=0, n_seq_max=1, verbose=False)
        self.ctx = None
        self.key: tuple | None = None
        self.tokens: list[int] = []  # what the context's KV cache holds, position by position
        self._owner: weakref.ref | None = None  # the prefix whose snapshot is live in the context

    def context(self, tokens: int, rope: tuple, limit: int):
        """A context rotating as ``rope`` says with room for ``tokens`` (at most ``limit``); reused while both hold."""
        if tokens > limit:
            raise ConfigError(f"{tokens:,} tokens do not fit this request's window of {limit:,}.")
        if self.ctx is not None and self.key[0] == rope and self.key[1] >= tokens:
            return self.ctx
        n_ctx = MIN_CTX
        while n_ctx < tokens:
            n_ctx *= 2
        return self.create((rope, min(n_ctx, limit)))

    def create(self, key: tuple):
        """A new context for ``key`` = (rope settings, n_ctx); the live prefix is copied out first."""
        rope, n_ctx = key
        self.evict()
        lc = self._lc
        params = lc.llama_context_default_params()
        params.n_ctx, params.n_batch, params.n_ubatch = n_ctx, N_BATCH, N_BATCH
        params.n_threads = params.n_threads_batch = self.threads
        params.rope_scaling_type, params.rope_freq_base, params.rope_freq_scale, params.yarn_orig_ctx = rope
        flash = FLASH_ATTN if FLASH_ATTN is not None else n_ctx > FLASH_ATTN_ABOVE
        params.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash else lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
        params.no_perf = True
        self.ctx = None  # free the old context (and its KV) before allocating the new one
        self.key = None
        try:
            self.ctx = self._internals.LlamaContext(model=self._model, params=params, verbose=False)
        except Exception as e:  # noqa: BLE001
            raise ModelLoadError(f"llama.cpp could not create a {n_ctx:,}-token context "
                                 f"({self._kv_bytes_per_token * n_ctx / 2**30:.1f} GiB of KV cache): "
                                 f"{first_line(e)}. Lower --max-context or use rag.") from None
        self.key = (tuple(rope), n_ctx)
        self.tokens = []
        return self.ctx

    def fresh(self, tokens: int, rope: tuple, limit: int) -> None:
        """An empty cache in a context fit for ``tokens``: the live prefix copied out first."""
        self.context(tokens, rope, limit)
        self.evict()
        self.truncate(0)

    def evict(self) -> None:
        """Before the context's cache is overwritten, copy out the live prefix's state (if one is still wanted)."""
        owner = self._owner() if self._owner else None
        if owner is not None and owner.cache.data is None:
            owner.cache.data = self.state()
        self._owner = None

    def adopt(self, prefix: PrefixState) -> None:
        """``prefix`` is what the cache holds now (its snapshot is live)."""
        self._owner = weakref.ref(prefix)

    def state(self) -> bytes:
        """The cache as llama.cpp's sequence state."""
        size = self._lc.llama_state_seq_get_size(self.ctx.ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        got = self._lc.llama_state_seq_get_data(self.ctx.ctx, buf, size, 0)
        return bytes(memoryview(buf)[:got])

    def truncate(self, n: int) -> None:
        """Keep the first ``n`` positions of the KV cache."""
        if len(self.tokens) > n:
            self.ctx.kv_cache_seq_rm(-1, n, -1)
            del self.tokens[n:]

    def clear(self) -> None:
        self.truncate(0)

    def eval(self, ids: list[int], progress: ProgressFn | None = None, total: int | None = None):
        """Append ``ids`` to the cache; return the last position's logits (a numpy view, valid until the next call)."""
        import numpy as np

        if not ids:
            raise ConfigError("Empty prompt: nothing to generate from.")
        done0 = len(self.tokens)
        for start in range(0, len(ids), N_BATCH):
            chunk = ids[start:start + N_BATCH]
            self._batch.set_batch(batch=chunk, n_past=len(self.tokens), logits_all=False)
            try:
                self.ctx.decode(self._batch)
            except Exception as e:  # noqa: BLE001 - llama_decode's failure codes (no room in the cache, …)
                raise ModelLoadError(f"llama.cpp failed to evaluate {len(chunk)} tokens at position "
                                     f"{len(self.tokens)}: {first_line(e)}") from None
            self.tokens.extend(chunk)
            if progress and total:
                progress(len(self.tokens) - done0 + (total - len(ids)), total)
        ptr = self._lc.llama_get_logits_ith(self.ctx.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self._n_vocab,))

    def append(self, ids: list[int]) -> None:
        """:meth:`eval` without the logits (the handover's cache port)."""
        self.eval(ids)

    def load(self, blob: bytes | bytearray | np.ndarray, ids: list[int]) -> bool:
        """Replace the cache by ``blob``, a state holding ``ids``; False (cache empty) where llama.cpp refuses it."""
        self.ctx.kv_cache_clear()
        self.tokens = []
        if not isinstance(blob, bytes):  # a writable buffer (bytearray, numpy array): no copy of 860 MB at 30 k tokens
            buf = (ctypes.c_uint8 * len(blob)).from_buffer(blob)
        else:
            buf = (ctypes.c_uint8 * len(blob)).from_buffer_copy(blob)
        ok = self._lc.llama_state_seq_set_data(self.ctx.ctx, buf, len(blob), 0) == len(blob)
        del buf  # a ctypes view pins its buffer
        if not ok:
            self.ctx.kv_cache_clear()
            return False
        self.tokens = list(ids)
        return True

    def use_prefix(self, prefix: PrefixState) -> None:
        """Make the context hold exactly ``prefix``: truncate when it is live, else restore its snapshot."""
        snap: Snapshot = prefix.cache
        n = len(prefix.ids)
        live = self._owner is not None and self._owner() is prefix and self.tokens[:n] == prefix.ids
        if live and self.key == snap.ctx_key:
            self.truncate(n)
            return
        if snap.data is None:
            raise ConfigError("This prefix's cache was dropped before it was saved; prefill it again.")
        if self.key != snap.ctx_key:  # a context of exactly the prefix's shape (its state is sized for it)
            self.create(snap.ctx_key)
        self.evict()
        if not self.load(snap.data, prefix.ids):
            raise ModelLoadError("llama.cpp could not restore a saved prefix (another model or build?); delete the "
                                 "index's prefix/ folder and ask again.")
        self.adopt(prefix)
        snap.data = None  # live again: one copy in memory; evicting it copies it out again
