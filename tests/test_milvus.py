"""The Milvus vector store, for real: Milvus Lite (the Milvus engine embedded, ``milvus-lite``) behind ``pymilvus``,
through docqa's ingest, ask, update, remove, check, crashes and damage — with the same chunk ids and citations as
the FAISS store."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import docqa
from docqa.cli.main import app
from docqa.errors import ConfigError, DocQAError, IndexCorrupt
from docqa.index.store import IndexStore, check_index
from docqa.strategies import STRATEGIES
from tests.conftest import FAKE_EMBEDDER, FAKE_MODEL
from tests.faults import REPO, live

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

QUESTIONS = ["What is the nightly hotel cap?", "How long is the probation period?", "What was the gross margin?"]


def _ingest(docs, root, name="m", **kw):
    return docqa.ingest(docs, name, root=root, embedder=FAKE_EMBEDDER, model=FAKE_MODEL, **kw)


def _rows(store: IndexStore) -> int:
    opened = store._open
    return opened.store.count(opened.manifest.next_chunk_id)


def test_milvus_answers_and_cites_exactly_as_faiss_does(small_docs, tmp_path):
    root = tmp_path / "idx"
    _ingest(small_docs, root, vector_store="milvus")
    _ingest(small_docs, root, name="f")
    store = IndexStore("m", root)
    assert store.manifest["vector_store"]["type"] == "milvus"
    assert store.manifest["vector_store"]["uri"] == str(root / "m" / "milvus.db")
    assert not list(store.path.glob("*.faiss")) and _rows(store) == store.chunk_count()
    store.close()
    m, f = docqa.open_index("m", root=root, model=FAKE_MODEL), docqa.open_index("f", root=root, model=FAKE_MODEL)
    for q in QUESTIONS:
        a = [(c.id, c.file, c.start_char) for c, _ in m.corpus.retrieve(q, 4).chunks]
        b = [(c.id, c.file, c.start_char) for c, _ in f.corpus.retrieve(q, 4).chunks]
        assert a == b, q  # same chunk ids, files and spans: exact search on both sides
    for strategy in STRATEGIES.names():
        x, y = m.ask(QUESTIONS[0], strategy), f.ask(QUESTIONS[0], strategy)
        assert x.text == y.text and [s.file for s in x.sources] == [s.file for s in y.sources], strategy
    assert check_index("m", root).ok


def test_updates_and_removals_reach_the_collection(small_docs, tmp_path):
    root = tmp_path / "idx"
    _ingest(small_docs, root, vector_store="milvus")
    (small_docs / "notes.md").write_text("# Notes\n\nThe nightly hotel cap in Oslo is 240 euros.\n")
    (small_docs / "employee_handbook.md").unlink()
    report = _ingest(small_docs, root, sync=True)  # the index keeps its store: no option needed
    assert report.count("removed") == 1 and report.count("added") == 1
    store = IndexStore("m", root)
    assert "employee_handbook.md" not in store.file_names()
    assert _rows(store) == store.chunk_count()  # the removed file's rows were deleted once the version was live
    store.close()
    idx = docqa.open_index("m", root=root, model=FAKE_MODEL)
    for q in QUESTIONS + ["What is the hotel cap in Oslo?"]:
        files = {c.file for c, _ in idx.corpus.retrieve(q, 8).chunks}
        assert "employee_handbook.md" not in files
    assert "notes.md" in {c.file for c, _ in idx.corpus.retrieve("hotel cap in Oslo", 4).chunks}
    assert check_index("m", root).ok


KILLED = """
import sys
sys.path.insert(0, {repo!r})
from docqa import embedder as em, generators as gm
import tests.conftest as c
em.EMBEDDERS.register("fake", c.fake_embedder, replace=True)
gm.GENERATORS.register("fake", c.fake_generator, replace=True)
import docqa
docqa.ingest(sys.argv[1], "m", root=sys.argv[2], embedder=c.FAKE_EMBEDDER, model=c.FAKE_MODEL, sync=True)
"""


@pytest.mark.parametrize("point", ["after-vectors", "after-current"])
def test_a_killed_writer_leaves_nothing_a_reader_sees_and_the_next_writer_finishes(small_docs, tmp_path, point):
    root = tmp_path / "idx"
    _ingest(small_docs, root, vector_store="milvus")
    before = IndexStore("m", root)
    before_chunks = before.chunk_count()
    before.close()
    (small_docs / "employee_handbook.md").unlink()
    (small_docs / "notes.md").write_text("# Notes\n\nThe nightly hotel cap in Oslo is 240 euros.\n")
    p = subprocess.run([sys.executable, "-c", KILLED.format(repo=str(REPO)), str(small_docs), str(root)],
                       env={**os.environ, "DOCQA_FAULT": point}, capture_output=True, text=True, timeout=300)
    assert p.returncode == -9, p.stderr
    store = IndexStore("m", root)
    if point == "after-vectors":  # upserted, never live: the old version answers as before
        assert store.chunk_count() == before_chunks and "notes.md" not in store.file_names()
    else:  # live, but the removed file's rows are still in the collection: readers drop them
        assert "employee_handbook.md" not in store.file_names() and store.manifest["pending_deletes"]
        assert _rows(store) > store.chunk_count()
    idx = docqa.open_index("m", root=root, model=FAKE_MODEL)
    for q in QUESTIONS:
        hits = idx.corpus.retrieve(q, 6).chunks
        assert {c.file for c, _ in hits} <= set(store.file_names())
    store.close()
    _ingest(small_docs, root, sync=True)
    store = IndexStore("m", root)
    assert _rows(store) == store.chunk_count() and "notes.md" in store.file_names()
    store.close()
    assert check_index("m", root).ok


def test_a_dropped_collection_is_damage_named_in_one_line(small_docs, tmp_path):
    root = tmp_path / "idx"
    _ingest(small_docs, root, vector_store="milvus")
    store = IndexStore("m", root)
    store._open.store.drop()
    store.close()
    with pytest.raises(IndexCorrupt, match=r"Milvus collection .* does not exist.*--rebuild"):
        IndexStore("m", root)
    assert not check_index("m", root).ok
    r = CliRunner().invoke(app, ["ask", "hotel cap?", "--index", "m", "--root", str(root), "--model", FAKE_MODEL])
    assert r.exit_code == 1 and "Traceback" not in r.output and "--rebuild" in r.output
    _ingest(small_docs, root, rebuild=True, vector_store="milvus")  # the fix the message names works
    assert check_index("m", root).ok


def test_moving_between_stores_needs_rebuild_and_drops_the_old_collection(small_docs, tmp_path):
    from pymilvus import MilvusClient

    root = tmp_path / "idx"
    _ingest(small_docs, root, vector_store="milvus")
    old = json.loads((live(root / "m") / "manifest.json").read_text())["vector_store"]
    with pytest.raises(ConfigError, match="keeps its vectors in milvus.*--rebuild"):
        _ingest(small_docs, root, vector_store="faiss")
    _ingest(small_docs, root, rebuild=True, vector_store="faiss")
    assert IndexStore("m", root).manifest["vector_store"] == {"type": "faiss"}
    client = MilvusClient(old["uri"])
    try:
        assert old["collection"] not in client.list_collections()
    finally:
        client.close()
    assert check_index("m", root).ok


def test_bad_milvus_settings_are_one_line_errors(small_docs, tmp_path):
    root = tmp_path / "idx"
    with pytest.raises(ConfigError, match="neither a server address"):
        _ingest(small_docs, root, vector_store="milvus", uri=str(tmp_path / "folder"))
    with pytest.raises(ConfigError, match="--uri and --collection are for --vector-store milvus"):
        _ingest(small_docs, root, uri="x.db")
    with pytest.raises(DocQAError, match="Unknown vector store 'chroma'|vector store 'chroma'"):
        _ingest(small_docs, root, vector_store="chroma")
    r = CliRunner().invoke(app, ["ingest", str(small_docs), "--index", "m", "--root", str(root),
                                 "--vector-store", "milvus", "--uri", "http://127.0.0.1:9", "--embedder",
                                 FAKE_EMBEDDER, "--model", FAKE_MODEL])
    assert r.exit_code == 1 and "Traceback" not in r.output and "Milvus" in r.output, r.output
    assert not (root / "m").exists()  # a first ingest that failed leaves nothing behind


def test_a_collection_left_by_a_killed_rebuild_is_swept_by_the_next_commit(small_docs, tmp_path):
    """A --rebuild killed before its version went live leaves docqa_<index>_v<N> behind; the next successful
    commit drops it, and never a collection a user named or one a kept version still references."""
    from pymilvus import MilvusClient

    root = tmp_path / "idx"
    _ingest(small_docs, root, vector_store="milvus")
    spec = json.loads((live(root / "m") / "manifest.json").read_text())["vector_store"]
    client = MilvusClient(spec["uri"])
    try:
        for name in ("docqa_m_v41", "mine", "docqa_other_v3"):  # an orphan; a user's; another index's
            client.create_collection(name, dimension=8)
    finally:
        client.close()
    (small_docs / "notes.md").write_text("# Notes\n\nThe nightly hotel cap in Oslo is 240 euros.\n")
    _ingest(small_docs, root)
    client = MilvusClient(spec["uri"])
    try:
        names = set(client.list_collections())
    finally:
        client.close()
    assert "docqa_m_v41" not in names and {"mine", "docqa_other_v3", spec["collection"]} <= names
    assert check_index("m", root).ok


def test_no_sweep_in_a_milvus_file_other_indexes_may_share(small_docs, tmp_path):
    from pymilvus import MilvusClient

    root, shared = tmp_path / "idx", str(tmp_path / "shared.db")
    _ingest(small_docs, root, vector_store="milvus", uri=shared)
    client = MilvusClient(shared)
    try:
        client.create_collection("docqa_m_v41", dimension=8)
    finally:
        client.close()
    (small_docs / "notes.md").write_text("# Notes\n\nThe nightly hotel cap in Oslo is 240 euros.\n")
    _ingest(small_docs, root)
    client = MilvusClient(shared)
    try:
        assert "docqa_m_v41" in client.list_collections()  # not this index's own file: left alone
    finally:
        client.close()


def test_removing_an_index_drops_its_collection_outside_the_folder(small_docs, tmp_path):
    from pymilvus import MilvusClient

    root, shared = tmp_path / "idx", str(tmp_path / "shared.db")
    _ingest(small_docs, root, vector_store="milvus", uri=shared)
    _ingest(small_docs, root, name="other", vector_store="milvus", uri=shared)
    removed = docqa.api.remove("m", root=root)
    assert removed.collections == [f"docqa_m_v1 at {shared}"] and not (root / "m").exists()
    client = MilvusClient(shared)
    try:
        assert client.list_collections() == ["docqa_other_v1"]  # the other index's collection stays
    finally:
        client.close()
    assert docqa.open_index("other", root=root, model=FAKE_MODEL).ask(QUESTIONS[0], "rag").sources


def test_a_collection_that_cannot_be_dropped_is_named_not_fatal(small_docs, tmp_path, monkeypatch):
    from docqa.index.vector_stores.milvus_store import MilvusVectors

    root, shared = tmp_path / "idx", str(tmp_path / "shared.db")
    _ingest(small_docs, root, vector_store="milvus", uri=shared)

    def unreachable(self):
        raise DocQAError("Milvus at http://gone:19530 does not answer")

    monkeypatch.setattr(MilvusVectors, "drop", unreachable)
    removed = docqa.api.remove("m", root=root)
    assert removed.collections == [] and removed.left == [f"docqa_m_v1 at {shared}"]
    assert docqa.list_indexes(root) == [] and not list(root.glob(".removing-*"))  # the index itself is gone


def test_bm25_and_hybrid_work_the_same_with_milvus_vectors(small_docs, tmp_path):
    """Lexical search stays in docqa's SQLite segments whatever holds the vectors: with Milvus Lite the rankings
    of every retriever equal FAISS's, and a deleted file's chunks are never returned."""
    from docqa.retrieval import RETRIEVERS, RetrievalOptions, retrieve_many

    root = tmp_path / "idx"
    _ingest(small_docs, root, vector_store="milvus")
    _ingest(small_docs, root, name="f")
    (small_docs / "employee_handbook.md").unlink()
    _ingest(small_docs, root, sync=True)
    _ingest(small_docs, root, name="f", sync=True)
    m, f = docqa.open_index("m", root=root, model=FAKE_MODEL), docqa.open_index("f", root=root, model=FAKE_MODEL)
    for retriever in RETRIEVERS.names():
        options = RetrievalOptions(retriever=retriever)
        for q in QUESTIONS:
            (a,) = retrieve_many(m.corpus, [q], 4, options)
            (b,) = retrieve_many(f.corpus, [q], 4, options)
            assert [c.id for c, _ in a.chunks] == [c.id for c, _ in b.chunks], (retriever, q)
            assert all(c.file != "employee_handbook.md" for c, _ in a.chunks)
    assert check_index("m", root).ok
