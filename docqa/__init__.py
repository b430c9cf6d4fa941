"""docqa: question answering over your own documents — long-context, summarization chains or RAG, side by side.

    import docqa
    docqa.ingest("examples/docs", index="examples")
    idx = docqa.open_index("examples")
    ans = idx.ask("How many vacation days do employees get?", strategy="rag")
    print(ans.text, ans.sources, ans.timings)
"""

from .api import Index, evaluate, ingest, list_indexes, open_index, strategies
from .errors import DocQAError
from .records import Answer, IngestReport, Source

__all__ = [
    "Answer",
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
