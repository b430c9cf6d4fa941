"""docqa: question answering over your own documents — long-context, summarization chains or RAG, side by side.

    import docqa
    docqa.ingest("examples/docs", index="examples")
    idx = docqa.open_index("examples")
    ans = idx.ask("How many vacation days do employees get?", strategy="rag")
    print(ans.text, ans.sources, ans.timings)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import DocQAError
from .records import Answer, Evidence, IngestReport, Source

if TYPE_CHECKING:
    from .api import Index, evaluate, ingest, list_indexes, open_index, strategies

_API = {"Index", "evaluate", "ingest", "list_indexes", "open_index", "strategies"}


def __getattr__(name: str):
    # The API is imported on first use, not with the package: `import docqa.generators` alone (the GPU benchmark, on a
    # machine without pydantic, faiss or llama-index) must not pull in the index store and its schemas.
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'docqa' has no attribute {name!r}")


def __dir__() -> list[str]:  # the lazy names too, for completion in a REPL
    return sorted(set(globals()) | _API)

__all__ = [
    "Answer",
    "Evidence",
    "DocQAError",
    "Index",
    "IngestReport",
    "Source",
    "evaluate",
    "ingest",
    "list_indexes",
    "open_index",
    "strategies",
]
__version__ = "0.1.0"
