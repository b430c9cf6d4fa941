"""Strategy variants: one strategy with some of its options set, so that one eval compares configurations.

``docqa eval --strategies rag,rag:top_k=16,long-context:rope=ntk`` answers every question three ways and reports
each as its own row. Why: the best setting is a property of the corpus and the model, not of the strategy — on the
embedded model, 16 retrieved chunks instead of 4 raised rag's token F1 on L-Eval financial QA (20.1 → 23.4) and
lowered it on examples/ (benchmarks/RESULTS.md); "every strategy at its best" is only known by measuring on the
user's own questions.

Syntax: ``NAME[:FIELD=VALUE]...`` where NAME is a strategy (or alias) and FIELD an :class:`AskConfig` field; values
are parsed to the field's type (``none`` clears an optional one: ``max_calls=none``); ``FIELD=A|B|C`` sweeps, one
variant per value (``rag:top_k=4|8|16``). A variant's options override the run's options.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..lists import split_list
from .base import AskConfig

# Fields a variant cannot set: callbacks, not options.
_NOT_SETTABLE = {"progress", "on_text"}


@dataclass(frozen=True)
class Variant:
    """A strategy and the options it overrides. ``label`` names it in records and tables (``rag:top_k=16``)."""

    strategy: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return ":".join([self.strategy, *(f"{k}={_show(v)}" for k, v in self.options.items())])


def _show(value: Any) -> str:
    return "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


@functools.cache
def _field_types() -> dict[str, Any]:
    hints = typing.get_type_hints(AskConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(AskConfig) if f.name not in _NOT_SETTABLE}


@functools.cache
def _adapter(kind: Any):
    from pydantic import TypeAdapter

    return TypeAdapter(kind)


def coerce_options(options: dict[str, Any]) -> dict[str, Any]:
    """Options given in Python (``Index.ask(q, top_k=8)``) checked against :class:`AskConfig`'s field types, the way
    a variant's text is: ``"8"`` becomes 8, and 2.5 for ``max_new_tokens`` is one ConfigError naming the option,
    not a TypeError from inside torch. Unknown names and None values are left to the caller."""
    from pydantic import ValidationError

    types = _field_types()
    out = dict(options)
    for name, value in options.items():
        if name in types and value is not None:
            kind = types[name]
            if isinstance(value, bool) and bool not in (kind, *typing.get_args(kind)):
                raise ConfigError(f"Option {name}={value!r} is not valid (a number is expected, not True/False).")
            try:
                out[name] = _adapter(kind).validate_python(value)
            except ValidationError as e:
                why = e.errors()[0]["msg"]
                raise ConfigError(f"Option {name}={value!r} is not valid ({why}).") from None
    return out


def _parse_value(name: str, text: str, kind: Any, spec: str) -> Any:
    from pydantic import ValidationError

    # "none" clears an optional field; in a field that cannot be None it is a value like any other (rope=none).
    if text.lower() in ("none", "null") and type(None) in typing.get_args(kind):
        return None
    try:
        # Lax mode turns "8" into 8 and "true" into True; a str field keeps the text as written.
        return _adapter(kind).validate_python(text)
    except ValidationError as e:
        why = e.errors()[0]["msg"]
        raise ConfigError(f"Strategy variant '{spec}': {name}={text} is not valid ({why}).") from None


def parse_variant(spec: str) -> Variant:
    """``"rag:top_k=8"`` → ``Variant("rag", {"top_k": 8})``; a bare name has no options. Raises ConfigError naming the
    bad part and what is allowed."""
    from . import STRATEGIES

    name, *assignments = [part.strip() for part in spec.strip().split(":")]
    if not name:
        raise ConfigError(f"Strategy variant '{spec}' names no strategy. Use NAME[:FIELD=VALUE]..., e.g. rag:top_k=8.")
    strategy = STRATEGIES.canonical(name)  # raises on an unknown strategy, listing the known ones
    types = _field_types()
    options: dict[str, Any] = {}
    for assignment in assignments:
        key, eq, text = assignment.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or not key:
            raise ConfigError(f"Strategy variant '{spec}': '{assignment}' is not FIELD=VALUE, e.g. rag:top_k=8.")
        if key not in types:
            raise ConfigError(f"Strategy variant '{spec}': unknown option '{key}'. Options: "
                              f"{', '.join(sorted(types))}.")
        if key in options:
            raise ConfigError(f"Strategy variant '{spec}' sets {key} twice.")
        options[key] = _parse_value(key, text.strip(), types[key], spec)
    return Variant(strategy, options)


def expand(spec: str) -> list[str]:
    """A sweep spec as the variants it stands for: ``rag:top_k=4|8|16`` → ``rag:top_k=4``, ``rag:top_k=8``,
    ``rag:top_k=16``; several swept fields give every combination, in order."""
    name, *assignments = spec.strip().split(":")
    out = [name]
    for assignment in assignments:
        key, eq, values = assignment.partition("=")
        choices = split_list(values, f"The values of {key.strip()} in sweep '{spec}'", sep="|",
                                 example=f"{key.strip()}=4|8", quote=False) \
            if eq and "|" in values else [values]
        out = [f"{head}:{key}{eq}{v}" for head in out for v in choices]
    return out


def parse_variants(specs: list[str]) -> list[Variant]:
    """Every spec parsed (sweeps such as ``rag:top_k=4|8`` expanded); two specs that name the same variant (``rag``
    and ``rag``) are refused."""
    variants = [parse_variant(one) for s in specs for one in expand(s)]
    labels = [v.label for v in variants]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise ConfigError(f"--strategies names {', '.join(twice)} twice; give each variant once.")
    return variants
