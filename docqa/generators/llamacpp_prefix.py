"""Saved llama.cpp prefixes on disk: one JSON header line (pydantic-checked when read), then the sequence state's
bytes as llama.cpp wrote them. Written atomically (temp file, fsync, rename): a crash leaves the old file or none,
and a file that does not match what it is loaded for is ignored, so the prefix is prefilled again."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ValidationError

from ..paths import replaced_atomically

PREFIX_FORMAT = "docqa-llamacpp-prefix/1"


class PrefixHeader(BaseModel):
    """The first line of a saved llama.cpp prefix file; the sequence state's bytes follow it."""

    format: str
    model: str
    tokens: int
    ctx_key: list
    nbytes: int


def write_prefix(path: Path, model: str, tokens: int, ctx_key: tuple, data: bytes) -> None:
    header = PrefixHeader(format=PREFIX_FORMAT, model=model, tokens=tokens, ctx_key=list(ctx_key), nbytes=len(data))
    with replaced_atomically(path) as tmp, open(tmp, "wb") as f:
        f.write(header.model_dump_json().encode() + b"\n")
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def read_prefix(path: Path, model: str, tokens: int) -> tuple[tuple, bytes] | None:
    """(context key, state bytes) saved at ``path`` for ``model`` holding exactly ``tokens`` positions, else None."""
    try:
        with open(path, "rb") as f:
            header = PrefixHeader.model_validate_json(f.readline())
            data = f.read()
    except (OSError, ValidationError, ValueError):
        return None
    if (header.format != PREFIX_FORMAT or header.model != model or header.tokens != tokens
            or header.nbytes != len(data) or len(header.ctx_key) != 2):
        return None
    try:
        return (tuple(header.ctx_key[0]), int(header.ctx_key[1])), data
    except (TypeError, ValueError):
        return None
