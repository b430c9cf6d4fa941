"""Name → implementation registries for every swappable part of docqa.

A registry maps a short name to an implementation, or to a lazy ``"module:attr"`` string that is imported on first
use, so that listing names (``docqa --help``) never imports torch or faiss. Unknown names raise
:class:`~docqa.errors.UnknownComponent` with a "did you mean …?" suggestion.

To add an implementation: write it with the registry's shared signature, give it a one-paragraph docstring, and call
``REGISTRY.register("name", obj)`` (or add a lazy entry where the registry is defined). Tests loop over
``REGISTRY.names()``, so the new entry is tested without writing a test for it.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator
from typing import Generic, TypeVar

from .errors import ConfigError, UnknownComponent

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of interchangeable implementations of one kind (e.g. ``"strategy"``)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T | str] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, obj: T | str, *, aliases: tuple[str, ...] = (), replace: bool = False) -> None:
        """Add ``obj`` (or a lazy ``"module:attr"`` path) under ``name`` and its aliases."""
        if not replace and (name in self._entries or name in self._aliases):
            raise ConfigError(f"{self.kind} '{name}' is already registered; pass replace=True to override it.")
        self._entries[name] = obj
        for alias in aliases:
            self._aliases[alias] = name

    def unregister(self, name: str) -> None:
        """Remove ``name`` and its aliases (tests use this to clean up fakes)."""
        self._entries.pop(name, None)
        self._aliases = {a: n for a, n in self._aliases.items() if n != name}

    def canonical(self, name: str) -> str:
        """The registered name behind ``name`` (resolving aliases), or raise UnknownComponent."""
        key = name.strip().lower()
        if key in self._entries:
            return key
        if key in self._aliases:
            return self._aliases[key]
        candidates = list(self._entries) + list(self._aliases)
        close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.5)
        raise UnknownComponent(self.kind, name, self.names(), close[0] if close else None)

    def get(self, name: str) -> T:
        """The implementation registered under ``name``; lazy entries are imported here, once."""
        key = self.canonical(name)
        obj = self._entries[key]
        if isinstance(obj, str):
            module, _, attr = obj.partition(":")
            obj = getattr(importlib.import_module(module), attr)
            self._entries[key] = obj
        return obj  # type: ignore[return-value]

    def names(self) -> list[str]:
        """Registered names, in registration order (aliases excluded)."""
        return list(self._entries)

    def __contains__(self, name: str) -> bool:
        key = name.strip().lower()
        return key in self._entries or key in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
