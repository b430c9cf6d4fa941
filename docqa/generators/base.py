"""What every generator backend shares: its options, its result records, and the protocol strategies call.

A backend is a class or factory registered in :data:`docqa.generators.GENERATORS` under a name (``transformers``,
…), called as ``factory(spec, model, config)``; a ``--model backend:name`` spec picks it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..paths import DEFAULT_GENERATOR
from ..rope import RopeModel, RopePlan

ProgressFn = Callable[[int, int], None]  # (tokens done, tokens total) during prefill
TextFn = Callable[[str], None]  # the answer so far, as it is decoded (generators/streaming.py says what "so far" is)

# The no-repeat n-gram ban of a model docqa has not measured (SmolLM2-era default: it cut its loops on financial QA).
DEFAULT_NO_REPEAT_NGRAM = 4
# GeneratorConfig.prefill's values (what each means: generators/prefill_assist.py).
PREFILL_CHOICES = ("auto", "llama.cpp", "transformers")

# Where a model's one-time preparation (a GGUF converted for transformers: a minute or two for 1.5 B parameters)
# reports (steps done, steps total, what the steps are). The CLI sets it around model loading to draw its own bar on
# a terminal; unset (library use, piped or --json output) nothing is drawn.
LOAD_PROGRESS: ContextVar[Callable[[int, int, str], None] | None] = ContextVar("docqa_load_progress", default=None)


@dataclass
class GeneratorConfig:
    model: str = DEFAULT_GENERATOR  # alias, HF id, local folder or .gguf file; "backend:model" for other backends
    # None: CUDA when present, else CPU; "cuda:N" one GPU; "auto": spread the layers over every GPU (accelerate's
    # device_map="auto"), for a model larger than one GPU.
    device: str | None = None
    dtype: str = "auto"  # auto: bf16 on GPUs that have it else fp16; on CPU by a measured probe (generators/dtypes.py)
    # Greedy decoding's repetition control: never emit a token that would repeat an n-gram of this many tokens already
    # in the answer (the prompt is free to be copied); 0 turns it off. None: the model's own, measured per embedded
    # model (docqa/models.py: 0 for the 1.5 B reader, whose copied figures it garbled; 4 for SmolLM2, which loops
    # without it), DEFAULT_NO_REPEAT_NGRAM for any other model.
    no_repeat_ngram: int | None = None
    attn: str | None = None  # attention kernel: sdpa (default), flash_attention_2 (when installed) or eager
    # On CUDA, replay each decode step as a captured graph (generators/cuda_graphs.py): measured on an H200 with an
    # 8 B model, eager steps spent ~75 ms launching kernels for ~4 ms of GPU work. Falls back to eager where capture
    # does not apply or fails.
    cuda_graphs: bool = True
    threads: int | None = None  # torch CPU threads (None: $DOCQA_THREADS, else cores minus current load; threads.py)
    # Tokens per prefill forward (None: one pass where the activations fit a share of the memory, see
    # generators/memory.py). Only a forward with no cache to attend to runs the causal flash kernel; measured: one pass
    # 9–13 % faster than 2048-token chunks on 2 CPU cores at 4 k / 8 k / 16 k tokens, 58 % of bf16 peak against 39 % on
    # an H200 at 32 k.
    prefill_chunk: int | None = None
    # Who prefills a llama.cpp model's long prompts (generators/prefill_assist.py): None ($DOCQA_PREFILL, else "auto":
    # transformers in bf16 where this CPU's measured bf16 matmuls are fast, llama.cpp decoding from the handed-over
    # cache), "transformers" or "llama.cpp".
    prefill: str | None = None
    # The process answers one question (a one-question `docqa ask`): a prefill handover must then also earn back
    # loading its transformers side (torch and a bf16 copy, 3.6 s here), prompt by prompt (prefill_assist.py).
    one_shot: bool = False
    trust_remote_code: bool = False  # never run a model repository's own code unless the user asks
    # Override the trained window L₀ that rope scaling starts from (None: the model's own). For experiments, and for
    # tests that exercise scaling on short inputs.
    trained_window: int | None = None
    # Served models (backend "openai"): the server's address (else $DOCQA_BASE_URL; the key is $DOCQA_API_KEY), its
    # window where it does not report one, a local HF tokenizer where it has no tokenize endpoint or chat template,
    # the per-request timeout in seconds, retries with backoff on 429/5xx/timeouts, and the sampling seed.
    base_url: str | None = None
    context_window: int | None = None
    tokenizer: str | None = None
    request_timeout: float = 600.0
    max_retries: int = 3
    seed: int = 0

    def key(self) -> tuple:
        """What makes two configs load different generators."""
        return tuple(getattr(self, f) for f in self.__dataclass_fields__)


@dataclass
class Generation:
    """The result of one model call."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    prefill_s: float
    decode_s: float
    ttft_s: float  # time to first token: prefill + the first decode step
    finish_reason: str  # "eos", "stop" (a stop string) or "length"
    cached_tokens: int = 0  # prompt tokens served from a prefix cache
    rope: RopePlan | None = None
    score_logprob: float | None = None  # log P(the `score` text as the answer's start), when asked and available


@dataclass(frozen=True)
class Floor:
    """The least an answer says before it may end: ``words`` words of its text, unless what it says so far is
    ``exempt`` (strategies pass docqa.prompts.is_refusal: "I don't know." ends when the model ends it). Until then a
    backend never picks a token that would end the answer: end-of-generation and control tokens, and any token holding
    a line break, which every answer style's stop begins with. It is vLLM's ``min_tokens`` and transformers'
    ``min_new_tokens`` counted in words, so that it can follow the words a question asks for (strategies/base.py
    ``AskConfig.length_floor``; measured in benchmarks/RESULTS.md, "A floor under the asked length")."""

    words: int
    exempt: Callable[[str], bool] | None = None

    def binds(self, text: str) -> bool:
        """True while an answer reading ``text`` may not end yet."""
        return len(text.split()) < self.words and not (self.exempt is not None and self.exempt(text))


def ends_answer(piece: str) -> bool:
    """A token piece that :class:`Floor` keeps out of a short answer (besides end-of-generation and control tokens)."""
    return "\n" in piece


@dataclass
class PrefixState:
    """A KV cache prefilled over a fixed token prefix, reusable by every prompt that starts with it."""

    ids: list[int]
    plan: RopePlan
    cache: Any  # transformers DynamicCache
    prefill_s: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)


class Generator(Protocol):
    """What strategies need from a generator."""

    spec: str
    trained_window: int

    def rope_model(self) -> RopeModel: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def count_tokens(self, texts: list[str]) -> list[int]: ...

    def chat(self, system: str, user: str) -> str:
        """The chat-templated prompt text (ends where the assistant's answer begins)."""
        ...

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
        """``score``: also return log P(score text as the start of the answer) in ``score_logprob`` (None where the
        backend cannot tell). ``on_text``: called with the answer so far while it is decoded, each time its settled
        part grows (:class:`~docqa.generators.streaming.AnswerStream`), so a terminal can show it as it is written.
        ``floor``: the least the answer says before it may end (:class:`Floor`; a served model cannot apply it)."""
        ...

    def generate_batch(self, prompts: list[str | list[int]], max_new_tokens: int = 128, *,
                       stop: tuple[str, ...] = (), slots: int | None = None,
                       score: str | None = None, floors: list[Floor | None] | None = None) -> list[Generation]:
        """Answers to several prompts, ``slots`` at a time (default all), each the same as :meth:`generate` would give
        it alone (with its own entry of ``floors``)."""
        ...

    def prefill_prefix(self, ids: list[int], plan: RopePlan, progress: ProgressFn | None = None) -> PrefixState: ...

    def kv_bytes_per_token(self) -> int:
        """Bytes one more token adds to this process's KV cache (0 where a server holds the cache)."""
        ...

    def kv_bytes(self, tokens: int) -> int:
        """Bytes of a cache holding ``tokens`` tokens: what a kept prefix costs (sliding-window layers of a hybrid
        model hold only their window)."""
        ...

    def save_prefix(self, state: PrefixState, path: Path) -> None: ...

    def load_prefix(self, path: Path, ids: list[int], plan: RopePlan) -> PrefixState | None: ...



class TorchBackend(Protocol):
    """What the in-process torch helpers (:mod:`.decoding`, :mod:`.batching`, :mod:`.cuda_graphs`, :mod:`.memory`)
    need from the backend that drives them. They depend on this contract, not on the class that implements it
    (:class:`~docqa.generators.hf.TransformersGenerator`), so a backend imports its helpers and no helper imports a
    backend back."""

    config: GeneratorConfig
    model: Any  # a transformers causal LM
    device: str  # where inputs go (the embedding's device)
    eos_ids: set[int]
    _cache_kw: str  # the forward's name for the cache argument ("cache" or "past_key_values")
    _lock: Any  # one request at a time
    _graphs_failed: bool  # a CUDA-graph capture failed once: eager steps from then on

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def _prefill(self, ids: list[int], cache: Any, progress: ProgressFn | None, logits: bool = True) -> Any: ...

    def _runner(self, tokens: int) -> tuple[Any, Any]: ...

    def _apply_rope(self, plan: RopePlan) -> None: ...

    def _oom_guard(self, tokens: int) -> Any: ...

    def prefill_step(self, tokens: int) -> int: ...

    def ending_ids(self) -> list[int]:
        """The tokens a :class:`Floor` bans while it binds."""
        ...


def banned_next(out: list[int], n: int | None) -> list[int]:
    """Tokens that would complete an n-gram already in ``out`` (the answer so far): what no-repeat-n-gram decoding
    forbids next. Only the answer is looked at, so copying a phrase from the context stays possible. ``n`` None (a
    config :func:`docqa.generators.load_generator` did not resolve): :data:`DEFAULT_NO_REPEAT_NGRAM`."""
    n = DEFAULT_NO_REPEAT_NGRAM if n is None else n
    if n <= 0 or len(out) < n - 1:
        return []
    if n == 1:
        return sorted(set(out))
    tail = out[len(out) - (n - 1):]
    return sorted({out[i + n - 1] for i in range(len(out) - n + 1) if out[i:i + n - 1] == tail})


def render_chat(tokenizer, system: str, user: str) -> str:
    """A chat-templated prompt ending where the assistant's answer begins. A template that rejects a system role
    (Gemma's, older Mistral's) gets the system text merged into the user turn; a tokenizer without a template gets a
    plain prompt."""
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        try:
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except Exception:  # noqa: BLE001 - jinja raises TemplateError (or whatever the template raises) here
            merged = [{"role": "user", "content": f"{system}\n\n{user}"}]
            return tokenizer.apply_chat_template(merged, tokenize=False, add_generation_prompt=True)
    return f"{system}\n\n{user}\n\nAnswer:"


_ITEM = re.compile(r"^\s*(?:[-*\u2022]|\d{1,3}[.)]|\(?[a-z][.)])\s+\S")  # "- x", "* x", "1. x", "2) x", "a) x"


def _stop_at(text: str, stop: tuple[str, ...]) -> int | None:
    """Where the answer in ``text`` ends: the index of the first stop string that follows some content, or None.

    A line break is a stop except after a lead-in: a line ending in ":" ("The main risks are:") goes on to what it
    announces — the next line, or a list whose items ("- …", "1. …", "a) …") continue the answer until a blank line or
    a line that is not an item (which is not part of it). Without this rule lead-ins were whole answers: 3 of 25 rag
    and 6 of 16 long-context answers on two L-Eval sets (issue #11)."""
    start = len(text) - len(text.lstrip())
    best: int | None = None

    def keep(end: int) -> None:
        nonlocal best
        if best is None or end < best:
            best = end

    for marker in stop:
        if marker != "\n":
            # A blank-line stop (paragraphs, notes) does not end a lead-in either: "… include:\n\n- a\n- b\n\n".
            lead_in = not marker.strip()
            at = text.find(marker, start)
            while at != -1 and (not text[start:at].strip() or (lead_in and text[start:at].rstrip().endswith(":"))):
                at = text.find(marker, at + len(marker))
            if at != -1:
                keep(at)
            continue
        pos, state = start, "answer"  # answer → lead-in (after "…:") → list (after its first item)
        while True:
            at = text.find("\n", pos)
            line = text[pos:] if at == -1 else text[pos:at]
            if at == -1:  # the line being written: once it visibly is not an item, a list has ended before it
                if state == "list" and len(line.strip()) >= 4 and not _ITEM.match(line):
                    keep(pos - 1)
                break
            if not line.strip():
                if state == "list":
                    keep(pos - 1)
                    break
            elif state == "list" and not _ITEM.match(line):  # the list is over; this line is not part of it
                keep(pos - 1)
                break
            elif line.rstrip().endswith(":"):
                state = "lead-in"
            elif state in ("lead-in", "list") and _ITEM.match(line):
                state = "list"
            else:
                keep(at)
                break
            pos = at + 1
    return best


def hits_stop(text: str, stop: tuple[str, ...]) -> bool:
    """True once ``text`` holds a complete answer: a stop string after some content (see :func:`_stop_at`)."""
    return _stop_at(text, stop) is not None


def cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    """``text`` up to where the answer ends (:func:`_stop_at`), stripped."""
    at = _stop_at(text, stop)
    return (text if at is None else text[:at]).strip()
