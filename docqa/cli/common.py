"""Shared pieces of the CLI: consoles, the error boundary, option types."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import TypeVar

import typer
from rich.console import Console

from ..errors import DocQAError

out = Console()
err = Console(stderr=True)

F = TypeVar("F", bound=Callable)


def friendly(fn: F) -> F:
    """Turn a :class:`DocQAError` into one red line on stderr and exit code 1; never a traceback.

    Set DOCQA_DEBUG=1 to see the traceback anyway.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DocQAError as e:
            if os.environ.get("DOCQA_DEBUG"):
                raise
            err.print(f"[bold red]error:[/] {e}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(code=1) from None
        except KeyboardInterrupt:
            err.print("[red]interrupted[/]")
            raise typer.Exit(code=130) from None

    return wrapper  # type: ignore[return-value]
