"""Arguments of the public API checked against its type hints, as the CLI's options are by typer.

``docqa.ingest(123, "x")`` or ``Index.ask(q, strategies="rag")`` failed deep inside with a TypeError or an
AttributeError ("'int' object has no attribute 'startswith'"); a caller from a pipeline gets one
:class:`~docqa.errors.ConfigError` naming the function, the argument, what it got and what it takes. pydantic's
``validate_call`` does the checking (lax mode: ``"8"`` for an int is read as 8, as on the command line).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import ConfigDict, ValidationError, validate_call

from ..errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])


def checked(fn: F) -> F:
    """``fn`` with its arguments validated against its annotations; a bad one is a ConfigError."""
    validated = validate_call(fn, config=ConfigDict(arbitrary_types_allowed=True))
    params = inspect.signature(fn).parameters
    names = list(params)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return validated(*args, **kwargs)
        except ValidationError as e:
            if e.title not in (fn.__name__, fn.__qualname__):  # a schema error from inside the call, not ours
                raise
            err = e.errors()[0]
            if err["type"] in ("missing_argument", "missing_keyword_only_argument", "missing_positional_only_argument"):
                raise ConfigError(f"{fn.__qualname__}() needs the argument '{err['loc'][-1]}'.") from None
            if err["type"] == "unexpected_keyword_argument":
                raise ConfigError(f"{fn.__qualname__}() takes no argument '{err['loc'][-1]}'; it takes "
                                  f"{', '.join(names)}.") from None
            loc = err["loc"][0] if err["loc"] else "?"
            arg = names[loc] if isinstance(loc, int) and loc < len(names) else str(loc)
            takes = params[arg].annotation if arg in params else None
            got = err.get("input")
            raise ConfigError(f"{fn.__qualname__}(): argument '{arg}' got {got!r:.60} ({type(got).__name__})"
                              + (f"; it takes {takes}." if isinstance(takes, str) else
                                 f": {err['msg'][0].lower() + err['msg'][1:]}.")) from None

    return wrapper  # type: ignore[return-value]
