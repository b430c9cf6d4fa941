import numpy as np
import pytest

from docqa.index.store import IndexStore, writing
from docqa.records import Chunk


@pytest.mark.parametrize("n,k", [(1, 1), (50, 5), (300, 20)])
def test_faiss_top_k_equals_brute_force(tmp_path, n, k):
    rng = np.random.default_rng(n)
    vecs = rng.normal(size=(n, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    chunks = [Chunk(0, "f.txt", i, f"c{i}", i, i + 1) for i in range(n)]
    with writing("v", tmp_path, dim=16) as w:
        w.add_file("f.txt", "h", 1, [], chunks, vecs)
        w.commit({"embedder": "x"})
    store = IndexStore("v", tmp_path)
    q = rng.normal(size=16).astype(np.float32)
    q /= np.linalg.norm(q)
    hits = store.search(q, k)
    expected = np.argsort(-(vecs @ q))[:k] + 1  # chunk ids start at 1
    assert [i for i, _ in hits] == expected.tolist()
    assert np.allclose([s for _, s in hits], np.sort(vecs @ q)[::-1][:k], atol=1e-5)
    assert [c.text for c in store.chunks([i for i, _ in hits])] == [f"c{i - 1}" for i in expected]


def test_bad_index_names_are_refused(tmp_path):
    from docqa.errors import ConfigError

    for bad in ("", "../x", ".hidden", "a/b"):
        with pytest.raises(ConfigError):
            IndexStore(bad, tmp_path)
