"""FAISS index kinds by size: exact, IVF (incremental add/remove, tuned nprobe) and HNSW, through the real store."""

import numpy as np
import pytest

import docqa
from docqa.errors import ConfigError
from docqa.index import vectors as vx
from docqa.index.store import IndexStore
from tests.conftest import FAKE_EMBEDDER, FAKE_MODEL

faiss = pytest.importorskip("faiss")


def _clustered(n, d=32, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((20, d))
    v = centers[rng.integers(0, 20, n)] + 0.3 * rng.standard_normal((n, d))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_every_kind_keeps_chunk_ids_and_reaches_the_recall_target(kind):
    v = _clustered(3000)
    ids = np.arange(100, 3100, dtype=np.int64)
    index, params = vx.build(kind, 32, v, ids)
    params = vx.tune(index, params)
    assert vx.kind_of(index) == kind and index.ntotal == 3000
    assert sorted(vx.ids_of(index)) == list(ids)
    _, got = index.search(v[:50], 10)
    exact = faiss.IndexFlatIP(32)
    exact.add(v)
    _, truth = exact.search(v[:50], 10)
    recall = np.mean([len(set(a) & set(b + 100)) / 10 for a, b in zip(got, truth, strict=True)])
    assert recall >= 0.95, (kind, params)
    if kind != "flat":
        assert params["recall_at_10"] >= vx.TARGET_RECALL or params.get("nprobe") == params.get("nlist")
    vecs, back = vx.all_vectors(index)
    assert sorted(back) == list(ids) and np.allclose(vecs[np.argsort(back)], v, atol=1e-6)


def test_auto_is_exact_below_the_threshold_and_ivf_above():
    assert vx.wanted("auto", vx.AUTO_IVF_AT - 1) == "flat" and vx.wanted("auto", vx.AUTO_IVF_AT) == "ivf"
    assert vx.wanted("hnsw", 10) == "hnsw"
    with pytest.raises(ConfigError, match="Unknown --index-type 'annoy'"):
        vx.check_type("annoy")


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_an_index_of_each_kind_is_ingested_updated_checked_and_asked(small_docs, kind):
    docqa.ingest(small_docs, "t", embedder=FAKE_EMBEDDER, model=FAKE_MODEL, index_type=kind)
    store = IndexStore("t", docqa.api.index_root())
    (index,) = store.vectors.vectors_of()  # one ingest, one segment
    assert store.manifest["vector_index"]["type"] == kind and vx.kind_of(index) == kind
    if kind == "ivf":
        assert faiss.downcast_index(index).nprobe == store.manifest["vector_index"]["nprobe"]
    store.close()
    docqa.ingest(small_docs, "exact", embedder=FAKE_EMBEDDER, model=FAKE_MODEL, index_type="flat")
    idx, exact = docqa.open_index("t", model=FAKE_MODEL), docqa.open_index("exact", model=FAKE_MODEL)
    questions = ["What is the nightly hotel cap?", "How long is the probation period?", "What was the gross margin?",
                 "How many weeks of parental leave?", "What is the per diem?"]
    for q in questions:  # the approximate index finds what exact search finds
        a = [c.id for c, _ in idx.corpus.retrieve(q, 4).chunks]
        b = [c.id for c, _ in exact.corpus.retrieve(q, 4).chunks]
        assert a[0] == b[0] and len(set(a) & set(b)) >= 3, q
    assert idx.ask(questions[0], "rag").text == exact.ask(questions[0], "rag").text
    # update: remove one file (incremental for IVF, a rebuild for HNSW), then add it back
    moved = small_docs / "employee_handbook.md"
    keep = moved.read_bytes()
    moved.unlink()
    docqa.ingest(small_docs, "t", embedder=FAKE_EMBEDDER, model=FAKE_MODEL, sync=True, index_type=kind)
    assert docqa.api.check("t").ok
    moved.write_bytes(keep)
    docqa.ingest(small_docs, "t", embedder=FAKE_EMBEDDER, model=FAKE_MODEL, index_type=kind)
    assert docqa.api.check("t").ok
    idx = docqa.open_index("t", model=FAKE_MODEL)
    for q in questions:  # after the round trip the re-added file is found as exact search finds it
        a = [(c.file, c.start_char) for c, _ in idx.corpus.retrieve(q, 4).chunks]
        b = [(c.file, c.start_char) for c, _ in exact.corpus.retrieve(q, 4).chunks]
        assert a[0] == b[0] and len(set(a) & set(b)) >= 3, q


def test_auto_keeps_small_indexes_exact(small_docs):
    docqa.ingest(small_docs, "t", embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    store = IndexStore("t", docqa.api.index_root())
    (index,) = store.vectors.vectors_of()
    assert store.manifest["vector_index"] == {"type": "flat"} and vx.kind_of(index) == "flat"
    store.close()


def test_a_missing_faiss_build_is_one_line_naming_the_extra(small_docs, monkeypatch):
    import sys

    docqa.ingest(small_docs, "t", embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    monkeypatch.setitem(sys.modules, "faiss", None)  # as if neither faiss-cpu nor faiss-gpu were installed
    with pytest.raises(ConfigError, match=r"FAISS is not installed.*docqa\[cpu\].*docqa\[gpu\]"):
        IndexStore("t", docqa.api.index_root())
    with pytest.raises(ConfigError, match=r"docqa\[cpu\]"):
        docqa.ingest(small_docs, "u", embedder=FAKE_EMBEDDER, model=FAKE_MODEL)


def test_segments_move_to_the_gpu_only_where_faiss_has_one(monkeypatch):
    """Without a GPU build (here) every segment stays on the CPU; with one (simulated) exact and IVF segments move,
    and a segment with deletions stays (GPU indexes take no id selector)."""
    from docqa.index.vector_stores import faiss_store as vs

    v = _clustered(12_000)
    big, _ = vx.build("flat", 32, v, np.arange(1, 12_001, dtype=np.int64))
    assert vs.faiss_gpus() == 0 or faiss.get_num_gpus() > 0
    moved = []
    monkeypatch.setattr(vs, "faiss_gpus", lambda: 1)
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", lambda index: moved.append(index) or index, raising=False)
    s = vs.FaissSearcher([(big, np.zeros(0, dtype=np.int64))])
    assert moved == [big] and s.search(v[0], 3)[0][0] == 1
    moved.clear()
    s = vs.FaissSearcher([(big, np.array([1], dtype=np.int64))])
    assert moved == [] and s.search(v[0], 3)[0][0] != 1
