"""How docqa sends requests to a model server and decides whether what came back is a whole answer.

A served answer can fail quietly: llama-cpp-python's server, at its defaults, ends a streaming answer as soon as a
second request arrives (the stream stops after a token or two with no finish reason, then ``[DONE]``), a proxy can
drop a stream, a server under load answers 429 or 503. Scoring such an answer gives a wrong number said as right, so
every completion is judged by how it ended (:func:`judge_finish`), and every failure is retried here, not in the
``openai`` client, so that each retry is counted and can be shown (:class:`Retrier`):

- 429 and 503 wait what ``Retry-After`` (or ``retry-after-ms``) says, capped; other 5xx, timeouts, dropped
  connections and cut streams back off exponentially;
- a cut answer while another request of this process was in flight at the server is taken as the server
  interrupting parallel requests: :class:`Gate` lowers the requests in flight to one for the rest of the run (one
  notice), and the answer is asked again;
- what still fails after ``max_retries`` is raised as one line: :class:`~docqa.errors.AnswerCut` for an answer that
  never ended whole, :class:`~docqa.errors.ServerUnreachable` for a server gone, ``ServerError`` otherwise.

Depends only on the error tree: the served backend (:mod:`.served`) uses it.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

# A stream may end in one of these ways and the answer still be whole: the model's own stop (end of sequence or a
# stop string) or the token budget docqa asked for. Anything else (None: no terminal event; "abort", "cancelled",
# "error", "content_filter", …) is a cut answer.
WHOLE = frozenset({"stop", "length", "eos", "eos_token"})
RETRY_AFTER_CAP_S = 120.0  # a server asking for longer is still waited for, at most this long per retry
BACKOFF_CAP_S = 30.0


class CutAnswer(Exception):
    """A completion that ended some other way than the model's stop or docqa's budget (internal: retried, then
    raised as :class:`~docqa.errors.AnswerCut`)."""

    def __init__(self, why: str, retry: bool = True, received: bool = True):
        super().__init__(why)
        self.why, self.retry, self.received = why, retry, received


def judge_finish(finish: str | None, max_tokens: int, completion_tokens: int | None, window: int | None,
                 prompt_tokens: int | None, received: bool = True) -> None:
    """Raise :class:`CutAnswer` unless a stream that ended with ``finish`` is a whole answer.

    ``length`` is whole only when it is docqa's budget that ended it: a server that reports fewer completion tokens
    than ``max_tokens`` stopped at its own window (not retried: it would stop there again)."""
    if finish is None:
        raise CutAnswer("the stream ended without a finish reason (the server stopped it; llama-cpp-python's "
                        "server does so when another request arrives)", received=received)
    if finish not in WHOLE:
        raise CutAnswer(f"the server ended it with finish_reason '{finish}'")
    if finish == "length" and completion_tokens is not None and completion_tokens < max_tokens:
        room = f" of {window:,}" if window else ""
        raise CutAnswer(f"the server stopped it after {completion_tokens} of the {max_tokens} tokens asked for, at "
                        f"the end of its window{room} (prompt {prompt_tokens or '?'} tokens)", retry=False)


def retry_after_s(headers: Any) -> float | None:
    """Seconds a ``Retry-After`` / ``retry-after-ms`` header asks to wait (delta-seconds or an HTTP date); None when
    absent or unreadable."""
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000)
        value = headers.get("retry-after")
    except AttributeError:
        return None
    if value is None:
        return None
    value = str(value).strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


class Gate:
    """How many requests this process has at the server at once: ``limit`` (None: as many as the caller sends),
    lowered for good by :meth:`lower`. Also tells a request whether another one overlapped it."""

    def __init__(self, limit: int | None = None):
        self.limit = limit
        self.active = 0
        self.entered = 0  # requests ever let in: a request that sees it change while it runs was overlapped
        self._cv = threading.Condition()

    def enter(self) -> tuple[int, int]:
        with self._cv:
            while self.limit is not None and self.active >= self.limit:
                self._cv.wait()
            self.active += 1
            self.entered += 1
            return self.entered, self.active

    def leave(self, ticket: tuple[int, int]) -> bool:
        """Let the next request in; True when another request was at the server during this one."""
        with self._cv:
            overlapped = ticket[1] > 1 or self.entered != ticket[0] or self.active > 1
            self.active -= 1
            self._cv.notify_all()
            return overlapped

    def lower(self, limit: int) -> bool:
        """Allow at most ``limit`` requests at once from now on; True when that lowered it."""
        with self._cv:
            if self.limit is not None and self.limit <= limit:
                return False
            self.limit = limit
            return True


@dataclass
class Retrier:
    """Runs one request with bounded retries, counting them by reason (``counts``, read by eval's progress) and saying
    the ones a person should know about through ``notice``."""

    max_retries: int
    where: str  # the server, for messages
    backoff_s: float = 1.0
    notice: Callable[[str], None] | None = None
    counts: Counter = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, reason: str) -> None:
        with self._lock:
            self.counts[reason] += 1

    def summary(self, since: dict[str, int] | None = None) -> str:
        """'3 retries (429 ×2, cut ×1)' since the counts were ``since`` (a copy of ``counts``; default: ever), or ''
        when there were none."""
        with self._lock:
            counts = self.counts - Counter(since or {})
        total = sum(counts.values())
        if not total:
            return ""
        parts = ", ".join(f"{k} ×{v}" for k, v in counts.most_common())
        return f"{total} {'retry' if total == 1 else 'retries'} ({parts})"

    def wait(self, attempt: int, asked: float | None) -> None:
        if asked is not None:
            delay = min(asked, RETRY_AFTER_CAP_S)
        else:  # exponential with jitter, so that parallel requests do not come back in step
            delay = min(BACKOFF_CAP_S, self.backoff_s * 2 ** attempt) * random.uniform(0.75, 1.25)
        time.sleep(delay)

    def say(self, text: str) -> None:
        if self.notice is not None:
            self.notice(text)
