"""Every error docqa raises on purpose, in one tree.

    DocQAError                      base: the CLI catches this, prints one red line, exits 1
    ├── ConfigError                 a bad option value (empty question, negative top-k, …)
    │   └── UnknownComponent        a registry name that does not exist ("did you mean …?")
    ├── IndexError_                 something about an index on disk
    │   ├── IndexNotFound           no index of that name
    │   ├── EmbedderMismatch        the index was built with another embedder
    │   │   └── DimensionMismatch   its embedder's name now loads a model of another vector size
    │   ├── IndexCorrupt            files of the index are missing, unreadable or fail their checksums
    │   └── IndexWriteError         a new version cannot be written (disk full, permissions)
    ├── IngestError                 nothing usable to ingest (empty folder, no supported file)
    ├── ModelLoadError              a generator or embedder could not be loaded
    ├── ServerError                 a model server failed a request (an error status after retries)
    │   └── ServerUnreachable       no answer at all: connection refused, reset or timed out
    ├── ContextTooLong              a prompt does not fit the allowed context
    ├── OutOfMemory                 the device ran out of memory for a request (names the KV size and the fixes)
    ├── BudgetExceeded              a strategy needed more model calls than allowed
    └── BadQuestionFile             a questions file that cannot be read

Each message names the bad value and says how to fix it. Errors carry the offending value as an attribute
so that library callers can react without parsing text.
"""

from __future__ import annotations

__all__ = [
    "DocQAError",
    "ConfigError",
    "UnknownComponent",
    "IndexError_",
    "IndexNotFound",
    "EmbedderMismatch",
    "LexicalMissing",
    "DimensionMismatch",
    "IndexCorrupt",
    "IndexWriteError",
    "IngestError",
    "ModelLoadError",
    "ServerError",
    "AnswerCut",
    "ServerUnreachable",
    "ContextTooLong",
    "OutOfMemory",
    "BudgetExceeded",
    "BadQuestionFile",
]


class DocQAError(Exception):
    """Base of every error docqa raises for a user's mistake or an unusable input."""


class ConfigError(DocQAError):
    """An option has a value docqa cannot use."""


class UnknownComponent(ConfigError):
    """A name that is not in a registry (strategy, rope method, embedder, …)."""

    def __init__(self, kind: str, name: str, available: list[str], suggestion: str | None = None):
        self.kind, self.name, self.available, self.suggestion = kind, name, available, suggestion
        hint = f" Did you mean '{suggestion}'?" if suggestion else ""
        super().__init__(f"Unknown {kind} '{name}'.{hint} Available: {', '.join(available) or '(none)'}.")


class IndexError_(DocQAError):  # trailing underscore: do not shadow the builtin IndexError
    """Something is wrong with an index on disk."""


class IndexNotFound(IndexError_):
    def __init__(self, name: str, root: str, existing: list[str]):
        self.name, self.root, self.existing = name, root, existing
        have = f" Existing indexes: {', '.join(existing)}." if existing else " There are no indexes yet."
        super().__init__(
            f"No index named '{name}' under {root}.{have} Create it with: docqa ingest PATH --index {name}"
        )


class EmbedderMismatch(IndexError_):
    def __init__(self, index: str, built_with: str, requested: str):
        self.index, self.built_with, self.requested = index, built_with, requested
        super().__init__(
            f"Index '{index}' was built with embedder '{built_with}', not '{requested}'. "
            f"Query it with --embedder {built_with}, or rebuild it with: docqa ingest PATH --index {index} "
            f"--embedder {requested} --rebuild"
        )


class DimensionMismatch(EmbedderMismatch):
    """The embedder an index names now makes vectors of another size than the index holds (its model changed under
    the same name, or the manifest names another model)."""

    def __init__(self, index: str, built_with: str, index_dim: int, embedder_dim: int):
        IndexError_.__init__(
            self,
            f"Index '{index}' holds {index_dim}-d vectors, but its embedder '{built_with}' now makes {embedder_dim}-d "
            f"(the model behind that name is not the one the index was built with). Restore the {index_dim}-d model "
            f"it was built with under that name, or rebuild the index with this one: docqa ingest PATH --index "
            f"{index} --embedder {built_with} --rebuild",
        )
        self.index, self.built_with, self.requested = index, built_with, built_with
        self.index_dim, self.embedder_dim = index_dim, embedder_dim


class IndexCorrupt(IndexError_):
    """Files of an index are missing or unreadable."""


class LexicalMissing(IndexError_):
    """BM25 was asked of an index written before docqa kept lexical postings in its segments."""

    def __init__(self, index: str):
        self.index = index
        super().__init__(
            f"Index '{index}' has no lexical (BM25) index: it was written by an older docqa. Run docqa ingest PATH "
            f"--index {index} once (it adds the BM25 index in place, without re-embedding), or ask with --retriever "
            f"dense."
        )


class IndexWriteError(IndexError_):
    """A new version of an index could not be written; the previous version stays live."""


class IngestError(DocQAError):
    """Nothing usable could be ingested."""


class ModelLoadError(DocQAError):
    """A model (generator or embedder) could not be loaded."""


class ServerError(DocQAError):
    """A model server did not answer a request (after the client's retries)."""


class ServerUnreachable(ServerError):
    """A model server could not be reached, or did not answer in time (after the client's retries)."""


class AnswerCut(ServerError):
    """A served answer kept ending some other way than the model's stop or docqa's token budget (a stream the server
    interrupted, a window that ran out): recorded as an error, never scored as an answer."""


class ContextTooLong(DocQAError):
    def __init__(self, message: str, tokens: int, limit: int):
        self.tokens, self.limit = tokens, limit
        super().__init__(message)


class OutOfMemory(DocQAError):
    def __init__(self, message: str, tokens: int, bytes_per_token: int):
        self.tokens, self.bytes_per_token = tokens, bytes_per_token
        super().__init__(message)


class BudgetExceeded(DocQAError):
    """A strategy needed more model calls than --max-calls allows."""


class BadQuestionFile(DocQAError):
    """A questions file is missing, malformed or empty."""


def first_line(error: BaseException | str, limit: int = 200) -> str:
    """The first meaningful line of a library's message, for wrapping it in one of docqa's one-line errors.

    Libraries write several lines (the Hugging Face hub: what failed, then where to read about offline mode; a
    traceback pasted into an exception), and end with a period that a wrapping sentence would double. This keeps the
    first line that says something (not blank, not a bare "Traceback"/"File …" frame), without its closing period,
    cut to ``limit`` characters; the exception's type where the message is empty."""
    text = str(error)
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("Traceback (most recent call last)", 'File "', "During handling")):
            line = line.rstrip(" .:;")
            return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
    return type(error).__name__ if isinstance(error, BaseException) else ""


def one_line(message: str) -> str:
    """``message`` as one line: what the CLI prints for any :class:`DocQAError`. A message that still holds line
    breaks (a wrapped library message that escaped :func:`first_line`) is joined with " · " rather than spilt over
    several lines of a terminal or a log that greps for "error:"."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return " · ".join(lines)
