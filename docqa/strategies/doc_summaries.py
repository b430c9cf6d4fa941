"""Per-document summaries, written once at ingest (``docqa ingest --summaries``) and read by the ``summaries`` chain.

Not a question-time strategy: a document is summarized without any question, in window-sized parts whose summaries
are summarized again until one remains.
"""

from __future__ import annotations

import re

from ..errors import ConfigError, ContextTooLong

_SAFETY = 8  # tokens of slack per prompt for tokenizer merges at the seams of packed blocks (as in summarize.py)


SUMMARY_SYSTEM = "You are a careful assistant who summarizes company documents."


def summarize_text(gen, name: str, text: str, window: int, max_new_tokens: int = 160) -> tuple[str, int]:
    """A summary of one document in window-sized parts, combined when there are several. Returns (summary, calls).

    Used by ``ingest --summaries``: the document is split on paragraphs into parts that fit the window, each part
    summarized, and the part summaries summarized again until one remains.
    """
    calls = 0

    def call(user: str) -> str:
        nonlocal calls
        calls += 1
        return gen.generate(gen.chat(SUMMARY_SYSTEM, user), max_new_tokens).text.strip()

    def template(body: str) -> str:
        return (f"Document: {name}\n\n{body}\n\nSummarize this document in three to five sentences. Keep names, "
                f"numbers and dates.")

    room = window - len(gen.encode(gen.chat(SUMMARY_SYSTEM, template("")))) - max_new_tokens - _SAFETY
    if room < 2 * (max_new_tokens + 2):  # two summaries must fit one call, or combining them never ends
        raise ConfigError(f"Summaries need a window that holds two summaries of {max_new_tokens} tokens with the "
                          f"prompt; {window} tokens leave room for {max(room, 0)}. Use a model with a larger window.")
    pieces = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    stalled = 0
    while True:
        parts, current, used = [], [], 0
        for piece, n in zip(pieces, gen.count_tokens(pieces)):
            if n > room:  # a paragraph longer than the window: cut it by tokens
                ids = gen.encode(piece)
                sub = [gen.decode(ids[i:i + room]) for i in range(0, len(ids), room)]
                parts.extend([[x] for x in sub])
                continue
            if current and used + n + 2 > room:
                parts.append(current)
                current, used = [], 0
            current.append(piece)
            used += n + 2
        if current:
            parts.append(current)
        summaries = [call(template("\n\n".join(p))) for p in parts]
        if len(summaries) == 1:
            return summaries[0], calls
        stalled = stalled + 1 if len(summaries) >= len(pieces) else 0
        if stalled >= 2:  # cannot happen with the room check above; a guard against a tokenizer that disagrees
            raise ContextTooLong(f"Summarizing {name} stopped making progress ({len(summaries)} parts).",
                                 len(summaries), room)
        pieces = summaries
