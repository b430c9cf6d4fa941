"""The public façade: ``ingest``, ``open_index`` and :class:`Index`, ``evaluate``, and the ``bench`` functions.

Everything the CLI does goes through these functions, so a pipeline that ``import docqa`` gets the same behaviour
as a terminal user. Nothing here imports torch or faiss at import time.
"""

from ..paths import index_root
from .bench import bench_needle, bench_rope
from .evaluation import evaluate, verdict
from .indexes import (
    Index,
    check,
    disk_bytes,
    ingest,
    list_indexes,
    make_config,
    manifests,
    open_index,
    remove,
    strategies,
)

__all__ = ["Index", "bench_needle", "bench_rope", "check", "disk_bytes", "evaluate", "index_root", "ingest",
           "list_indexes", "make_config", "manifests", "open_index", "remove", "strategies", "verdict"]
