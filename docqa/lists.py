"""Strict parsing of the lists users type: ``--strategies rag,long-context``, a sweep ``rag:top_k=4|8``, bench methods.

Why strict: ``rag,,`` silently read as ``rag`` hides a typo (a strategy the user meant to name and did not), and an
empty sweep value (``top_k=4||8``) would otherwise surface as an unrelated type error. An empty item is one
:class:`ConfigError` naming the option, the item's position and the fix; nothing is dropped without a word.
"""

from __future__ import annotations

from .errors import ConfigError


def split_list(text: str, what: str, sep: str = ",", example: str = "", quote: bool = True) -> list[str]:
    """``text`` split on ``sep`` with each item stripped; an empty item (``a,,b``, a leading or trailing ``sep``, an
    empty or blank ``text``) raises :class:`ConfigError` naming ``what`` (e.g. ``--strategies``) and the position."""
    items = [part.strip() for part in text.split(sep)]
    if not text.strip():
        raise ConfigError(f"{what} is empty. Give one or more items separated by '{sep}'{_eg(example)}.")
    for n, item in enumerate(items, 1):
        if not item:
            where = " (the first)" if n == 1 else " (the last)" if n == len(items) else ""
            shown = f"{what} '{text}'" if quote else what
            raise ConfigError(f"{shown}: item {n} of {len(items)}{where} is empty. Remove the extra "
                              f"'{sep}'{_eg(example)}.")
    return items


def _eg(example: str) -> str:
    return f"; a list looks like {example}" if example else ""
