import fcntl

import numpy as np
import pytest
from typer.testing import CliRunner

import docqa
from docqa.cli.main import app
from docqa.errors import ConfigError, IndexNotFound
from docqa.index.store import IndexStore, writing
from docqa.records import Chunk
from tests.conftest import FAKE_EMBEDDER, FAKE_MODEL


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


def test_remove_deletes_an_index_unless_it_is_being_written_or_read(small_docs, tmp_path):
    root = tmp_path / "idx"
    for name in ("a", "b"):
        docqa.ingest(small_docs, name, root=root, embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    (small_docs / "notes.md").write_text("# Notes\n\nThe cafeteria opens at eight.\n")
    docqa.ingest(small_docs, "a", root=root, embedder=FAKE_EMBEDDER, model=FAKE_MODEL)  # two versions, shared links
    idx = docqa.open_index("a", root=root, model=FAKE_MODEL)
    idx.ask("When does the cafeteria open?", "rag")  # a reader holds the live version
    with pytest.raises(ConfigError, match="Index 'a' is open .* pass --force"):
        docqa.api.remove("a", root=root)
    with open(root / "a" / ".lock", "w") as lock:  # an ingest in progress
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ConfigError, match="being written by an ingest"):
            docqa.api.remove("a", root=root, force=True)
    removed = docqa.api.remove("a", root=root, force=True)
    assert removed.index == "a" and removed.bytes > 0 and removed.collections == []
    assert docqa.list_indexes(root) == ["b"] and not list(root.glob(".removing-*"))
    assert docqa.open_index("b", root=root, model=FAKE_MODEL).ask("How long is probation?", "rag").sources
    (root / ".removing-c-123").mkdir()  # what a remove killed before it finished leaves: the next one sweeps it
    with pytest.raises(IndexNotFound, match="No index named 'a'"):
        docqa.api.remove("a", root=root)
    assert not (root / ".removing-c-123").exists()


def test_remove_from_the_command_line_asks_or_needs_yes(small_docs, tmp_path):
    root = tmp_path / "idx"
    docqa.ingest(small_docs, "a", root=root, embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    r = CliRunner().invoke(app, ["remove", "a", "--root", str(root)])
    assert r.exit_code == 1 and "pass --yes" in r.output and docqa.list_indexes(root) == ["a"]
    r = CliRunner().invoke(app, ["remove", "a", "--root", str(root), "--yes"])
    assert r.exit_code == 0 and "Removed index 'a'" in r.output and docqa.list_indexes(root) == []


def test_disk_bytes_count_shared_segments_once_and_list_shows_them(small_docs, tmp_path):
    root = tmp_path / "idx"
    docqa.ingest(small_docs, "a", root=root, embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    (small_docs / "notes.md").write_text("# Notes\n\nThe cafeteria opens at eight.\n")
    docqa.ingest(small_docs, "a", root=root, embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    files = [f for f in (root / "a").rglob("*") if f.is_file()]
    assert any(f.stat().st_nlink > 1 for f in files)  # the second version links the first one's segment
    unique = {(f.stat().st_dev, f.stat().st_ino): f.stat().st_size for f in files}
    assert docqa.api.disk_bytes("a", root=root) == sum(unique.values()) < sum(f.stat().st_size for f in files)
    r = CliRunner().invoke(app, ["list", "--root", str(root)], terminal_width=200)
    assert r.exit_code == 0 and "on disk" in r.output and f"{sum(unique.values()) / 2**20:,.1f} MB" in r.output
