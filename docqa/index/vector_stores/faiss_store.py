"""The ``faiss`` vector store: one FAISS file per segment (exact, IVF or HNSW by the segment's size), immutable like
the segment and shared between versions by hard link; deletes are tombstones excluded at search time. See the
package's docstring for the interface."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError
from ..integrity import Segment, load_vectors
from ..vectors import apply_search, build, kind_of, tune, wanted


def import_faiss():
    """faiss, or one line naming the extra to install (it is an extra so that ``[gpu]`` can replace ``[cpu]``)."""
    try:
        import faiss
    except ImportError as e:
        raise ConfigError("FAISS is not installed. Install docqa with one of its FAISS builds: "
                          "pip install 'docqa[cpu]' (or 'docqa[gpu]' on a CUDA machine).") from e
    return faiss


def faiss_gpus() -> int:
    """GPUs FAISS can use: 0 unless a GPU build of faiss is installed and CUDA devices are visible."""
    faiss = import_faiss()
    get = getattr(faiss, "get_num_gpus", None)
    try:
        return int(get()) if get else 0
    except RuntimeError:
        return 0


class FaissSearcher:
    """Top-k over a version's FAISS segments, excluding deleted chunks."""

    def __init__(self, indexes: list[tuple[Any, np.ndarray]]):
        faiss = import_faiss()
        self.indexes = []
        for index, dead in indexes:
            if index is None:
                continue
            params = None
            if len(dead):
                # The selector object must outlive the searches: keep it with its parameters.
                sel = faiss.IDSelectorNot(faiss.IDSelectorBatch(np.ascontiguousarray(dead, dtype=np.int64)))
                kind = kind_of(index)
                inner = faiss.downcast_index(index if kind == "ivf" else faiss.downcast_index(index).index)
                if kind == "ivf":
                    params = faiss.SearchParametersIVF(sel=sel, nprobe=int(inner.nprobe))
                elif kind == "hnsw":
                    params = faiss.SearchParametersHNSW(sel=sel, efSearch=int(inner.hnsw.efSearch))
                else:
                    params = faiss.SearchParameters(sel=sel)
                params._keep = sel  # noqa: SLF001 - SWIG does not keep the selector alive by itself
            # GPU indexes take no id selector: a segment with deletions searches on the CPU
            self.indexes.append((index if params is not None else self._maybe_gpu(index), params,
                                 index.ntotal - len(dead)))
        self.ntotal = sum(n for *_, n in self.indexes)

    @staticmethod
    def _maybe_gpu(index):
        """Exact and IVF segments go to the GPUs when a GPU build of faiss sees any (the ``[gpu]`` extra); a
        segment FAISS cannot move stays on the CPU."""
        if os.environ.get("DOCQA_FAISS_GPU", "1") == "0" or index.ntotal < 10_000 or not faiss_gpus():
            return index
        faiss = import_faiss()
        try:
            return faiss.index_cpu_to_all_gpus(index)
        except (RuntimeError, AttributeError):
            return index

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        hits: list[tuple[int, float]] = []
        for index, params, live in self.indexes:
            n = min(k, live)
            if n <= 0:
                continue
            scores, ids = index.search(q, n, params=params) if params is not None else index.search(q, n)
            hits += [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i != -1]
        hits.sort(key=lambda h: (-h[1], h[0]))
        return hits[:k]

    def vectors_of(self) -> list[Any]:
        return [index for index, *_ in self.indexes]


class FaissVectors:
    """Vectors in one FAISS file per segment (default). Embedded: no server; the index kind follows the segment's
    size (exact below 50 000 vectors, IVF above; ``--index-type`` overrides)."""

    name = "faiss"
    external = False

    def __init__(self, spec: dict[str, Any] | None = None, *, home: Path | None = None, index: str = ""):
        import_faiss()  # the first use of FAISS anywhere: a missing build is one line naming the extra
        self.index = index
        self.spec = {"type": "faiss"}

    def write_segment(self, folder: Path, seg: str, vectors: np.ndarray, ids: np.ndarray, files: list[str],
                      index_type: str) -> tuple[str | None, dict[str, Any]]:
        faiss = import_faiss()
        dim = vectors.shape[1]
        index, params = build(wanted(index_type, len(ids)), dim, np.ascontiguousarray(vectors, dtype=np.float32),
                              np.ascontiguousarray(ids, dtype=np.int64))
        if params["type"] != "flat":
            params = {**tune(index, params), "tuned_at": int(index.ntotal)}
        name = f"{seg}.faiss"
        faiss.write_index(index, str(folder / name))
        return name, params

    def segment_vectors(self, path: Path, seg: Segment) -> tuple[np.ndarray, np.ndarray]:
        from ..vectors import all_vectors

        return all_vectors(load_vectors(path, self.index, seg))

    def load(self, path: Path, seg: Segment):
        if seg.faiss is None:  # a segment with summaries only
            return None
        index = load_vectors(path, self.index, seg)
        apply_search(index, seg.vector_index)
        return index

    def searcher(self, loaded: list[tuple[Any, np.ndarray]], *, next_chunk_id: int, live: int = 0,
                 exclude: int = 0) -> FaissSearcher:
        return FaissSearcher(loaded)  # deleted chunks are excluded per segment by the selectors

    def commit_deletes(self, ids: list[int]) -> None:  # FAISS segments are immutable: deletes are tombstones
        return None

    def close(self) -> None:
        return None
