"""An answer shown while it is decoded: what of the text so far is sure to stay in the answer.

A backend calls :meth:`AnswerStream.update` with the whole decoded text after every token (or every chunk a server
streams); the stream calls ``on_text`` with the part of it that the finished answer will begin with — never text that
a stop string or the lead-in rule (:func:`~docqa.generators.base.cut_at_stop`) may take back — and only when that part
has grown; :meth:`AnswerStream.done` hands it the finished answer. So a terminal can draw the answer as it is
written, every text drawn is the start of the answer ``generate`` returns, and the last is that answer
(tests/test_streaming.py holds the first for any text and stop strings, the rest for every backend).
"""

from __future__ import annotations

from collections.abc import Callable

from .base import TextFn, cut_at_stop, hits_stop

# Byte-level BPE decodes half a multi-byte character as U+FFFD until its other bytes arrive.
_PARTIAL_CHAR = "\ufffd"


def settled(text: str, stop: tuple[str, ...]) -> str:
    """The start of ``text`` that the finished answer keeps whatever is decoded next: ``cut_at_stop`` of ``text``
    without its unsettled tail — a half-decoded character, the start of a stop string, and, once the answer has run
    past its first line under a line-break stop, the line being written (after a lead-in, a line that turns out not
    to be a list item ends the answer before it)."""
    text = text.rstrip(_PARTIAL_CHAR)
    for marker in stop:  # "abc\n\n" cut at "\n\n" shows as "abc" either way; a non-blank marker must not show half
        for n in range(min(len(marker) - 1, len(text)), 0, -1):
            if text.endswith(marker[:n]):
                text = text[:-n]
                break
    body = text.lstrip()
    if "\n" in stop and "\n" in body:
        text = text[: len(text) - len(body) + body.rfind("\n") + 1]
    return cut_at_stop(text, stop)


class AnswerStream:
    """Hands ``on_text`` the settled part of an answer (:func:`settled`) each time it grows."""

    def __init__(self, on_text: TextFn | None, stop: tuple[str, ...]) -> None:
        self.on_text = on_text
        self.stop = stop
        self.shown = ""

    def update(self, text: str) -> None:
        if self.on_text is None:
            return
        self._show(settled(text, self.stop))

    def ends(self, decoded: Callable[[], str]) -> bool:
        """After a token: True when the answer so far (``decoded()``, called only where a stop string or
        ``on_text`` needs it) holds a complete answer (a stop string, :func:`~docqa.generators.base.hits_stop`);
        otherwise its settled part is shown. The decode loop of every in-process backend."""
        if not (self.stop or self.on_text):
            return False
        text = decoded()
        if self.stop and hits_stop(text, self.stop):
            return True
        self.update(text)
        return False

    def done(self, answer: str) -> None:
        """The finished answer (``generate``'s text), shown unless it already was."""
        if self.on_text is not None:
            self._show(answer)

    def _show(self, now: str) -> None:
        if len(now) > len(self.shown) and now.startswith(self.shown):
            self.shown = now
            self.on_text(now)
