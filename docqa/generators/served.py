"""A model behind an OpenAI-compatible server as a generator: vLLM, SGLang, llama.cpp's server, llama-cpp-python's.

``--model openai:NAME --base-url URL`` (or ``DOCQA_BASE_URL``; ``DOCQA_API_KEY`` when the server wants a key). The
official ``openai`` client sends every request, streamed, so time to first token is measured; greedy (temperature
0, a fixed seed), so answers are as reproducible as the server allows; each request bounded by ``request_timeout``.
Every answer is judged by how its stream ended and retried when it was cut, rate-limited, timed out or dropped
(:mod:`.served_calls`: ``Retry-After`` honoured, retries counted, parallel requests lowered to one where the server
interrupts them); what still fails is an error, never an answer.

What docqa needs beyond completions it asks the server for (:mod:`.served_endpoints`), and falls back where a server
has no answer:

- **window**: vLLM's ``/v1/models`` reports ``max_model_len``; llama.cpp's server reports ``n_ctx`` in ``/props``;
  otherwise ``--context-window`` (llama-cpp-python's server reports nothing: give the ``--n_ctx`` it was started
  with). ``--context-window`` always wins.
- **tokens**: the server's tokenize/detokenize endpoints (vLLM and SGLang ``/tokenize``, llama.cpp ``/tokenize``,
  llama-cpp-python ``/extras/tokenize``), so counts and the exact packing of summarize groups are the server's;
  else the local HF tokenizer named with ``--tokenizer``.
- **chat template**: docqa sends raw completions of chat-templated text, so that every strategy can split a prompt
  into a cacheable prefix and a question (the server's own prefix cache then reuses the prefix across questions).
  The template comes from ``--tokenizer`` when given, else from the server (vLLM's ``/tokenize`` with messages,
  llama.cpp's ``/apply-template``).

The rope is the server's, fixed at launch: long-context never stretches it and refuses a corpus over the server's
window with the commands that relaunch the server with a longer, YaRN-scaled window (:meth:`relaunch_hint`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ..errors import (
    AnswerCut,
    ConfigError,
    DocQAError,
    ModelLoadError,
    ServerError,
    ServerUnreachable,
    first_line,
)
from ..rope import RopeModel, RopePlan, plan_for
from .base import Floor, Generation, GeneratorConfig, PrefixState, ProgressFn, TextFn, cut_at_stop, hits_stop
from .served_calls import CutAnswer, Gate, Retrier, judge_finish, retry_after_s
from .served_endpoints import ServerEndpoints
from .streaming import AnswerStream

SAMPLING = {"temperature": 0.0}  # greedy; the seed is GeneratorConfig.seed (recorded with every run)


class OpenAIGenerator:
    """A served model. Thread-safe: the eval runs several requests at once through one instance."""

    fixed_rope = True  # the server's rope is set at launch; strategies must not plan their own

    def __init__(self, spec: str, model: str, config: GeneratorConfig):
        from openai import OpenAI

        self.spec, self.model_name, self.config = spec, model, config
        base = config.base_url or os.environ.get("DOCQA_BASE_URL")
        if not base:
            raise ConfigError(f"--model {spec} needs the server's address: --base-url http://HOST:PORT/v1 (or set "
                              f"DOCQA_BASE_URL).")
        self.base_url = base.rstrip("/")
        key = os.environ.get("DOCQA_API_KEY", "not-needed")
        # Retries are docqa's (served_calls.Retrier), not the client's, so that each is counted and shown.
        self.client = OpenAI(base_url=self.base_url, api_key=key, timeout=config.request_timeout, max_retries=0)
        self.retrier = Retrier(config.max_retries, self.base_url)
        self.gate = Gate()
        self.window, self.window_source = 0, "not asked yet"  # for _error until the server has said
        self.server = ServerEndpoints(self.base_url, model, self._find_model(), config, key, self.gate)
        self.root = self.server.root
        self.device = f"server {self.root}"
        self.max_parallel = self.server.parallel()
        if self.max_parallel:
            self.gate.lower(self.max_parallel)
        self.window, self.window_source = self.server.window()
        self.trained_window = self.window
        self.rope_info = self.server.rope_info()
        self._rope_model = RopeModel(2, 1.0, self.window)

    # --------------------------------------------------------------------------------------------- discovery
    def _error(self, e: Exception, what: str) -> DocQAError:
        import openai

        if isinstance(e, openai.APIConnectionError):  # includes timeouts
            return ServerUnreachable(f"Cannot reach the server at {self.base_url} while {what} ({type(e).__name__}: "
                               f"{str(e)[:120]}). Start it, or fix --base-url / DOCQA_BASE_URL.")
        if isinstance(e, openai.AuthenticationError):
            return ServerError(f"The server at {self.base_url} rejected the API key while {what}. Set DOCQA_API_KEY.")
        if isinstance(e, openai.APIStatusError):
            message = first_line(e.message, 200)
            fix = ""
            if e.status_code == 400 and any(w in message.lower() for w in ("context", "too long", "maximum")):
                # The window docqa planned with is larger than the server's: the server, not docqa, is right.
                fix = (f" docqa planned for a window of {self.window:,} tokens ({self.window_source}); pass "
                       f"--context-window with the window the server was started with.")
            return ServerError(f"The server at {self.base_url} answered {e.status_code} while {what}: {message}."
                               f"{fix}")
        return ServerError(f"The server at {self.base_url} failed while {what}: {type(e).__name__}: {str(e)[:200]}")

    def _find_model(self) -> dict[str, Any]:
        import openai

        try:
            models = self._attempts(self.client.models.list, "listing its models")
        except openai.OpenAIError as e:
            raise ModelLoadError(str(self._error(e, "listing its models"))) from e
        except ServerError as e:
            raise ModelLoadError(str(e)) from e
        entries = [m.model_dump() for m in models.data]
        names = [m["id"] for m in entries]
        for m in entries:
            if m["id"] == self.model_name:
                return m
        raise ModelLoadError(f"The server at {self.base_url} serves {', '.join(names) or 'no model'}, not "
                             f"'{self.model_name}'. Use --model openai:{names[0] if names else 'NAME'}.")

    def server_info(self) -> dict[str, Any]:
        """What a rerun needs to tell whether it is comparable: the server's model id and owner, its build or
        version where it reports one (:meth:`ServerEndpoints.build`), its window and parallel slots, and the
        sampling parameters docqa sends (the same for every request: greedy, one seed)."""
        entry = self.server.entry
        return {"base_url": self.base_url, "model_id": entry.get("id"), "owned_by": entry.get("owned_by"),
                "build": self.server.build(), "window": self.window, "window_source": self.window_source,
                "max_parallel": self.max_parallel, "sampling": {**SAMPLING, "seed": self.config.seed}}

    # --------------------------------------------------------------------------------------------- text
    def rope_model(self) -> RopeModel:
        return self._rope_model

    def encode(self, text: str) -> list[int]:
        return self.server.encode(text)

    def decode(self, ids: list[int]) -> str:
        return self.server.decode(ids)

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(self.server.encode(t)) for t in texts]

    def chat(self, system: str, user: str) -> str:
        """The chat-templated prompt, ending where the assistant's answer begins."""
        return self.server.chat(system, user)

    # --------------------------------------------------------------------------------------------- calls
    def kv_bytes_per_token(self) -> int:
        """0: the server holds the KV cache; docqa keeps only the prefix text."""
        return 0

    def kv_bytes(self, tokens: int) -> int:
        return 0

    def generate_batch(self, prompts: list[str | list[int]], max_new_tokens: int = 128, *,
                       stop: tuple[str, ...] = (), slots: int | None = None,
                       score: str | None = None, floors: list[Floor | None] | None = None) -> list[Generation]:
        """The prompts as concurrent requests, ``slots`` in flight: the server batches them (vLLM and SGLang
        continuously; llama.cpp across its parallel slots, serially with one). ``floors`` are not applied (see
        :meth:`generate`)."""
        from concurrent.futures import ThreadPoolExecutor

        if len(prompts) <= 1:
            return [self.generate(p, max_new_tokens, stop=stop, score=score) for p in prompts]
        with ThreadPoolExecutor(max_workers=slots or len(prompts)) as pool:
            return list(pool.map(lambda p: self.generate(p, max_new_tokens, stop=stop, score=score), prompts))

    def generate(self, prompt: str | list[int], max_new_tokens: int = 128, *, rope: RopePlan | None = None,
                 prefix: PrefixState | None = None, progress: ProgressFn | None = None,
                 stop: tuple[str, ...] = (), score: str | None = None, on_text: TextFn | None = None,
                 floor: Floor | None = None) -> Generation:
        """One streamed completion of ``prompt`` (after ``prefix``'s text, when given). The server applies the stop
        strings; when a line break ended a lead-in ("… are:"), the answer goes on to what it announces
        (generators/base.py): a second request continues after the line break with the rule applied here, the stream
        closed once the answer is complete. Stops stay on the server in the common case because a server keeps
        decoding a request whose stream the client closed (llama-cpp-python does, serially), which cost the rest of
        the token budget on every answer. ``on_text`` sees the answer grow as the server streams it. ``floor`` is not
        applied: servers share no setting for it (vLLM's and llama.cpp's ``min_tokens`` hold back the end token but
        not the stop strings every answer style ends at, and OpenAI's own API refuses the field), so a served answer
        ends where the model ends it."""
        import openai

        text = prompt if isinstance(prompt, str) else self.decode(list(prompt))
        if prefix is not None:
            text = prefix.meta["text"] + text
        if not text:
            raise ConfigError("Empty prompt: nothing to generate from.")
        t0 = time.perf_counter()
        what = f"answering a {len(text):,}-character prompt"
        shown = AnswerStream(on_text, stop)
        try:
            out, finish, usage, ttft, cached = self._attempts(
                lambda: self._stream(text, max_new_tokens, list(stop), None, t0, shown), what,
                unstreamed=lambda: self._complete(text, max_new_tokens, list(stop)))
            if "\n" in stop and finish == "stop" and out.rstrip().endswith(":"):
                used = int(getattr(usage, "completion_tokens", 0) or len(self.encode(out)))
                rest = max(1, max_new_tokens - used)
                more, finish, usage2, _, _ = self._attempts(
                    lambda: self._stream(text + out + "\n", rest, [x for x in stop if x != "\n"],
                                         (out + "\n", stop), t0, shown), what)
                out = out + "\n" + more
                if usage is not None and usage2 is not None:
                    usage.completion_tokens = int(usage.completion_tokens or 0) + int(usage2.completion_tokens or 0)
        except openai.OpenAIError as e:
            raise self._error(e, what) from e
        total = time.perf_counter() - t0
        ttft = total if ttft is None else ttft
        prompt_tokens = getattr(usage, "prompt_tokens", None) or len(self.encode(text))
        completion_tokens = getattr(usage, "completion_tokens", None)
        if completion_tokens is None:
            completion_tokens = len(self.encode(out)) if out else 0
        answer = cut_at_stop(out, stop)
        shown.done(answer)
        return Generation(text=answer, prompt_tokens=int(prompt_tokens),
                          completion_tokens=int(completion_tokens), prefill_s=ttft, decode_s=total - ttft,
                          ttft_s=ttft, finish_reason="stop" if finish == "stop" else finish, cached_tokens=cached,
                          rope=None, score_logprob=self._score(text, score) if score else None)

    def _stream(self, text: str, max_tokens: int, server_stop: list[str], client: tuple[str, tuple] | None,
                t0: float, shown: AnswerStream | None = None):
        """One streamed request: (text, finish reason, usage, seconds to its first text, cached prompt tokens).
        With ``client`` = (text already answered, stop strings), the stop rule is applied here to that text plus
        this one's. A stream that did not end whole raises :class:`CutAnswer` (:func:`judge_finish`); ``shown``
        sees the answer grow (a retried request starts over, and shows only what goes past what was shown)."""
        ttft, parts, finish, usage, cached = None, [], None, None, 0
        extra = self._extra_body()
        stream = self.client.completions.create(
            model=self.model_name, prompt=text, max_tokens=max_tokens, seed=self.config.seed, **SAMPLING,
            stop=server_stop or None, stream=True, stream_options={"include_usage": True}, extra_body=extra)
        for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            cached = max(cached, cached_tokens(chunk))
            for choice in chunk.choices or []:
                if choice.text:
                    if ttft is None:
                        ttft = time.perf_counter() - t0
                    parts.append(choice.text)
                if choice.finish_reason:
                    finish = choice.finish_reason
            if client is not None and hits_stop(client[0] + "".join(parts), client[1]):
                stream.close()
                return "".join(parts), "stop", usage, ttft, cached
            if shown is not None:
                shown.update((client[0] if client else "") + "".join(parts))
        judge_finish(finish, max_tokens, getattr(usage, "completion_tokens", None), self.window,
                     getattr(usage, "prompt_tokens", None), received=bool(parts))
        return "".join(parts), finish, usage, ttft, cached

    def _extra_body(self) -> dict | None:
        """llama.cpp's own server keeps a slot's prompt KV for the next request only when asked (cache_prompt); the
        others cache by themselves (vLLM's automatic prefix caching, llama-cpp-python's last prompt)."""
        return {"cache_prompt": True} if self.server.tok_route == "llamacpp" else None

    def _unstreamed(self, unstreamed):
        """``unstreamed()``'s answer, or None when it too came back cut; the server's error is raised as it is. One
        retry on a dropped connection: llama-cpp-python closes the kept-alive connection of a stream that failed, and
        the next request on it fails to connect."""
        import openai

        for attempt in range(2):
            ticket = self.gate.enter()
            try:
                return unstreamed()
            except CutAnswer:
                return None
            except openai.APIConnectionError:
                if attempt:
                    raise
            finally:
                self.gate.leave(ticket)
        return None

    def _complete(self, text: str, max_tokens: int, server_stop: list[str]):
        """The same request unstreamed, in :meth:`_stream`'s shape. A server whose stream failed before its first
        token (llama-cpp-python's, for a prompt over its window, closes the stream with no word) answers this one
        with its error, or with the answer."""
        extra = self._extra_body()
        r = self.client.completions.create(model=self.model_name, prompt=text, max_tokens=max_tokens,
                                           seed=self.config.seed, **SAMPLING, stop=server_stop or None,
                                           extra_body=extra)
        choice = r.choices[0] if r.choices else None
        finish = choice.finish_reason if choice is not None else None
        judge_finish(finish, max_tokens, getattr(r.usage, "completion_tokens", None), self.window,
                     getattr(r.usage, "prompt_tokens", None))
        return (choice.text if choice else ""), finish, r.usage, None, cached_tokens(r)

    def _attempts(self, call, what: str, unstreamed=None):
        """``call()`` with up to ``max_retries`` retries: cut answers, 429 / 503 (waiting what Retry-After says),
        other 5xx, timeouts and dropped connections. A cut while another request of this process was at the server
        lowers the requests in flight to one (:class:`Gate`), once, with a notice. When the last try's stream ended
        before any text, ``unstreamed()`` asks once more without streaming, to hear the server's error."""
        import httpx
        import openai

        tries = self.config.max_retries + 1
        for attempt in range(tries):
            ticket = self.gate.enter()
            overlapped = False
            try:
                try:
                    return call()
                finally:
                    overlapped = self.gate.leave(ticket)
            except CutAnswer as e:
                if not e.retry:
                    raise AnswerCut(f"The server at {self.base_url} cut the answer short: {e.why}. Give the server a "
                                    f"longer window (llama.cpp --ctx-size / --n_ctx, vLLM --max-model-len) or ask "
                                    f"for fewer tokens (--max-new-tokens).") from None
                if attempt + 1 == tries:
                    if not e.received and unstreamed is not None:
                        heard = self._unstreamed(unstreamed)
                        if heard is not None:
                            return heard
                    times = "once" if tries == 1 else f"{tries} times"
                    raise AnswerCut(f"The server at {self.base_url} cut the answer short {times}: {e.why}. "
                                    f"Check its log; start llama-cpp-python's server with --interrupt_requests False "
                                    f"and run docqa eval --resume to ask these questions again.") from None
                reason, asked = "cut", None
                if overlapped and self.gate.lower(1):
                    asked = 0.0  # the other request finishes first (the gate), then this one is asked again
                    self.retrier.say(f"The server at {self.base_url} cut an answer short when a second request "
                                     f"arrived ({e.why}); asking one question at a time from now on. To run "
                                     f"requests in parallel, restart it with --interrupt_requests False "
                                     f"(llama-cpp-python) or --parallel N (llama-server).")
            except openai.APIStatusError as e:
                status = e.status_code
                if status not in (408, 409, 429) and status < 500 or attempt + 1 == tries:
                    raise
                reason, asked = str(status), retry_after_s(getattr(e.response, "headers", None))
                if status == 503 and overlapped and self.gate.lower(1):  # busy with the other request: one at a time
                    self.retrier.say(f"The server at {self.base_url} answered 503 (unavailable) while another "
                                     f"request of this run was at it; asking one question at a time from now on.")
            except (openai.APITimeoutError, openai.APIConnectionError, httpx.TransportError) as e:
                if attempt + 1 == tries:
                    if isinstance(e, httpx.TransportError):
                        raise ServerUnreachable(
                            f"The server at {self.base_url} dropped the connection while {what} "
                            f"({type(e).__name__}: {first_line(e, 120)}). Restart it; docqa eval --resume completes "
                            f"a run.") from e
                    raise
                reason = "timeout" if isinstance(e, (openai.APITimeoutError, httpx.TimeoutException)) else \
                    "connection"
                asked = None
            self.retrier.count(reason)
            self.retrier.wait(attempt, asked)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _score(self, prompt: str, continuation: str) -> float | None:
        """log P(continuation | prompt) from the server's prompt log-probabilities (``echo`` with ``logprobs``, which
        vLLM and llama.cpp's server return); None where the server does not (the caller falls back to reading the
        answer). It costs a second request that evaluates the whole prompt with log-probabilities, which
        llama-cpp-python does token by token (minutes for a 4 k-token map prompt on 2 cores), so strategies ask for it
        only when a threshold uses it. The continuation's tokens are the last ones echoed before the one generated
        token (offsets cannot be used: servers report them in detokenized text, where a chat template's special tokens
        are empty)."""
        import openai

        try:
            n = len(self.encode(prompt + continuation)) - len(self.encode(prompt))
            r = self.client.completions.create(model=self.model_name, prompt=prompt + continuation, max_tokens=1,
                                               temperature=0.0, echo=True, logprobs=1)
            values = list(r.choices[0].logprobs.token_logprobs or [])
            generated = int(getattr(r.usage, "completion_tokens", 1) or 0) if r.usage else 1
            part = values[len(values) - generated - n: len(values) - generated]
            if n < 1 or len(part) != n or any(v is None for v in part):
                return None
            return float(sum(part))
        except (openai.OpenAIError, AttributeError, IndexError, TypeError, ValueError):
            return None

    def prefill_prefix(self, ids: list[int], plan: RopePlan, progress: ProgressFn | None = None) -> PrefixState:
        """Nothing to prefill here: the prefix's text travels with each request, and the server's prefix cache
        (vLLM's automatic prefix caching, llama.cpp's slot cache) reuses its KV across questions."""
        return PrefixState(list(ids), plan, None, 0.0, {"text": self.decode(list(ids))})

    def save_prefix(self, state: PrefixState, path: Path) -> None:  # the server keeps its own cache
        return None

    def load_prefix(self, path: Path, ids: list[int], plan: RopePlan) -> PrefixState | None:
        return None

    def plain_plan(self, seq_len: int) -> RopePlan:
        return plan_for("none", self._rope_model, seq_len)

    def relaunch_hint(self, tokens: int) -> str:
        """How to serve this model with a window that holds ``tokens``, YaRN-scaled from its current window."""
        need = 1 << max(12, (int(tokens) - 1).bit_length())
        factor = max(2.0, need / self.window)
        rope = json.dumps({"rope_parameters": {"rope_type": "yarn", "factor": factor,
                                               "original_max_position_embeddings": self.window,
                                               "rope_theta": "THETA"}}).replace('"THETA"', "THETA")
        return (f"Relaunch the server with a longer window, e.g. vLLM: vllm serve MODEL --max-model-len {need} "
                f"--hf-overrides '{rope}' (THETA: the model's own rope_theta, from its config.json); llama.cpp: "
                f"llama-server -m MODEL.gguf --ctx-size {need} --rope-scaling yarn --rope-scale {factor:g} "
                f"--yarn-orig-ctx {self.window}.")


def cached_tokens(chunk) -> int:
    """Prompt tokens a server says it took from its cache, in one stream chunk: ``usage.prompt_tokens_details
    .cached_tokens`` (vLLM, SGLang, OpenAI) or llama.cpp's ``timings.cache_n``; 0 where it says nothing
    (llama-cpp-python)."""
    usage = getattr(chunk, "usage", None)
    details = getattr(usage, "prompt_tokens_details", None) if usage is not None else None
    n = getattr(details, "cached_tokens", None) if details is not None else None
    if n:
        return int(n)
    extra = getattr(chunk, "model_extra", None) or {}
    timings = extra.get("timings") if isinstance(extra, dict) else None
    if isinstance(timings, dict) and isinstance(timings.get("cache_n"), int):
        return int(timings["cache_n"])
    return 0

