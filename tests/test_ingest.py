from pathlib import Path

import numpy as np
import pytest

import docqa
from docqa.errors import EmbedderMismatch, IngestError
from docqa.index.store import IndexStore
from tests.conftest import FAKE_EMBEDDER, FAKE_MODEL


def _ingest(path, **kw):
    kw.setdefault("embedder", FAKE_EMBEDDER)
    kw.setdefault("model", FAKE_MODEL)
    return docqa.ingest(path, "t", **kw)


def _store(tmp_path) -> IndexStore:
    return IndexStore("t", tmp_path / "indexes")


def test_ingest_reads_every_format_and_spans_point_into_the_text(docs, tmp_path):
    report = _ingest(docs)
    assert report.count("added") == 15 and report.count("failed") == 0
    store = _store(tmp_path)
    assert {Path(f).suffix for f in store.file_names()} == {".md", ".txt", ".pdf", ".html", ".docx"}
    parts = {(d.file, d.page): d.text for d in store.documents()}
    chunks = store.chunks()
    assert len(chunks) == report.chunks_total == store.vectors.ntotal
    for c in chunks:
        assert parts[(c.file, c.page)][c.start_char : c.end_char] == c.text
        assert 0 < c.tokens <= 160
    html = parts[("information_security_policy.html", None)]
    assert "<section" not in html and "Restricted" in html
    assert any(d.page for d in store.documents() if d.file.endswith(".pdf"))
    assert store.manifest["embedder"] == FAKE_EMBEDDER and store.manifest["chunk_tokens"] == 160


def test_chunks_cover_each_document(small_docs, tmp_path):
    _ingest(small_docs, chunk_tokens=64, overlap=8)
    store = _store(tmp_path)
    for part in store.documents():
        spans = sorted((c.start_char, c.end_char) for c in store.chunks() if (c.file, c.page) == (part.file, part.page))
        covered = np.zeros(len(part.text), bool)
        for s, e in spans:
            covered[s:e] = True
        gaps = "".join(ch for ch, ok in zip(part.text, covered) if not ok)
        assert gaps.strip() == "", f"{part.file}: text not in any chunk: {gaps[:80]!r}"


def test_incremental_skip_update_and_sync(small_docs, tmp_path):
    first = _ingest(small_docs)
    again = _ingest(small_docs)
    assert again.count("skipped") == 3 and all(f.reason == "unchanged" for f in again.files)
    assert again.version == first.version  # nothing changed: no new version
    (small_docs / "employee_handbook.md").write_text("# Handbook\n\nEmployees get 30 days of vacation.\n")
    (small_docs / "q3_2026_quarterly_report.pdf").unlink()
    third = _ingest(small_docs, sync=True)
    status = {f.file: f.status for f in third.files}
    assert status == {"employee_handbook.md": "updated", "travel_and_expense_policy.docx": "skipped",
                      "q3_2026_quarterly_report.pdf": "removed"}
    store = _store(tmp_path)
    assert store.file_names() == ["employee_handbook.md", "travel_and_expense_policy.docx"]
    assert store.vectors.ntotal == store.chunk_count()
    handbook = [c.text for c in store.chunks() if c.file == "employee_handbook.md"]
    assert handbook == ["# Handbook\n\nEmployees get 30 days of vacation."]


def test_failed_ingest_leaves_previous_index_usable(small_docs, tmp_path, monkeypatch):
    _ingest(small_docs)
    before = _store(tmp_path)
    current = (tmp_path / "indexes" / "t" / "CURRENT").read_text()
    (small_docs / "employee_handbook.md").write_text("# New\n\nA changed handbook " * 50)
    from tests.fakes import HashEmbedder

    monkeypatch.setattr("docqa.api.indexes.load_embedder", lambda spec: HashEmbedder(FAKE_EMBEDDER, fail_after=1))
    with pytest.raises(RuntimeError, match="injected"):
        _ingest(small_docs)
    assert (tmp_path / "indexes" / "t" / "CURRENT").read_text() == current
    assert not list((tmp_path / "indexes" / "t").glob(".tmp-*"))
    after = _store(tmp_path)
    assert after.version == before.version and after.chunk_count() == before.chunk_count()
    answer = docqa.open_index("t", model=FAKE_MODEL).ask("How many days of paid vacation per calendar year?", "rag")
    assert any("24 days of paid vacation" in s.text for s in answer.sources)  # the old handbook is still served


def test_first_ingest_failure_leaves_nothing(small_docs, tmp_path, monkeypatch):
    from tests.fakes import HashEmbedder

    monkeypatch.setattr("docqa.api.indexes.load_embedder", lambda spec: HashEmbedder(FAKE_EMBEDDER, fail_after=0))
    with pytest.raises(RuntimeError):
        _ingest(small_docs)
    assert docqa.list_indexes() == []


def test_unsupported_and_unreadable_files_are_reported_not_fatal(small_docs):
    (small_docs / "photo.xyz").write_bytes(b"\x00\x01")
    (small_docs / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (small_docs / "empty.txt").write_text("   \n")
    report = _ingest(small_docs)
    outcome = {f.file: (f.status, f.reason) for f in report.files}
    assert outcome["photo.xyz"][0] == "skipped" and "unsupported" in outcome["photo.xyz"][1]
    assert outcome["broken.pdf"][0] == "failed"
    assert outcome["empty.txt"][0] == "failed" and "no extractable text" in outcome["empty.txt"][1]
    assert report.count("added") == 3


def test_empty_folder_and_missing_path(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(IngestError, match="No supported documents"):
        _ingest(tmp_path / "empty")
    with pytest.raises(IngestError, match="does not exist"):
        _ingest(tmp_path / "nope")


def test_other_embedder_is_refused(small_docs):
    _ingest(small_docs)
    with pytest.raises(EmbedderMismatch, match="fake:hash"):
        docqa.open_index("t", embedder="fake:other")
    with pytest.raises(EmbedderMismatch):
        _ingest(small_docs, embedder="fake:other")


def test_an_unchanged_folder_loads_no_model(small_docs, monkeypatch):
    # A periodic `docqa ingest --sync` of a folder that has not changed must not pay for models it does not use:
    # importing and loading the embedder and the tokenizer were 5.6 + 3.3 s of a 6.2 s no-op run of 2 000 files.
    from docqa.generators import load_tokenizer
    from tests.fakes import HashEmbedder

    loads: list[str] = []

    def embedder(spec):
        loads.append("embedder")
        return HashEmbedder(FAKE_EMBEDDER)

    def tokenizer(spec):
        loads.append("tokenizer")
        return load_tokenizer(spec)

    monkeypatch.setattr("docqa.api.indexes.load_embedder", embedder)
    monkeypatch.setattr("docqa.api.indexes.load_tokenizer", tokenizer)
    _ingest(small_docs)
    assert loads == ["embedder", "tokenizer"]
    loads.clear()
    assert _ingest(small_docs).count("skipped") == 3 and loads == []
    (small_docs / "employee_handbook.md").unlink()
    report = _ingest(small_docs, sync=True)
    assert report.count("removed") == 1 and report.version == 2 and loads == []  # a removal needs no model either
    assert docqa.api.check("t").ok and _store(small_docs.parent).manifest["dim"] == 64
    (small_docs / "notes.txt").write_text("The cafeteria opens at eight.")
    assert _ingest(small_docs).count("added") == 1 and sorted(loads) == ["embedder", "tokenizer"]
    loads.clear()
    monkeypatch.setattr("docqa.api.indexes.load_embedder", lambda spec: HashEmbedder(FAKE_EMBEDDER, dim=32))
    (small_docs / "notes.txt").write_text("The cafeteria opens at nine.")
    with pytest.raises(docqa.DocQAError, match="holds 64-d vectors; embedder 'fake:hash' now makes 32-d"):
        _ingest(small_docs)  # a model that changed under the index's embedder name is caught before it embeds
    assert _ingest(small_docs, rebuild=True).chunks_total > 0 and _store(small_docs.parent).manifest["dim"] == 32
