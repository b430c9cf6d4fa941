"""Segments: versions share unchanged data by hard link, an update writes only what changed, deletions are
tombstones, merges keep the segment count bounded — and through any sequence of updates the index answers exactly
what a brute-force search over the live files answers."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from docqa.index import segments as sg
from docqa.index.segments import DocumentPart
from docqa.index.store import IndexStore, check_index, writing
from docqa.records import Chunk

DIM = 16


def _vectors(name: str, n: int, salt: int = 0) -> np.ndarray:
    rng = np.random.default_rng(abs(hash((name, salt))) % 2**32)
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _file(name: str, n: int, salt: int = 0):
    chunks = [Chunk(0, name, i, f"{name} chunk {i} v{salt}", i * 10, i * 10 + 9, None, 5) for i in range(n)]
    return (name, f"{salt:064x}", 100, [DocumentPart(name, 0, None, f"text of {name} v{salt}")], chunks,
            _vectors(name, n, salt))


def _commit(root, adds=(), removes=(), summaries=()):
    with writing("t", root, dim=DIM) as w:
        for name in removes:
            w.remove_file(name)
        for args in adds:
            w.add_file(*args)
        for name, text in summaries:
            w.set_summary(name, text, "m", 1)
        w.commit({"embedder": "x", "dim": DIM})
    return root / "t" / (root / "t" / "CURRENT").read_text()


def _manifest(version_dir):
    return json.loads((version_dir / "manifest.json").read_text())


def _brute(live: dict[str, tuple[int, int]], q: np.ndarray, k: int) -> list[tuple[str, int]]:
    rows = [(name, i, float(v @ q)) for name, (n, salt) in live.items() for i, v in enumerate(_vectors(name, n, salt))]
    rows.sort(key=lambda r: -r[2])
    return [(n, i) for n, i, _ in rows[:k]]


def test_an_update_shares_every_unchanged_segment_and_writes_only_the_new_file(tmp_path):
    v1 = _commit(tmp_path, adds=[_file(f"f{i}.txt", 300) for i in range(5)])
    v2 = _commit(tmp_path, adds=[_file("new.txt", 3)])
    m1, m2 = _manifest(v1), _manifest(v2)
    (old,) = m1["segments"]
    assert [s["name"] for s in m2["segments"]] == [old["name"], "s000002"]
    for f in (old["sqlite"], old["faiss"]):  # the same bytes on disk: one inode, two links
        assert os.stat(v1 / f).st_ino == os.stat(v2 / f).st_ino
    new = m2["segments"][1]
    assert new["rows"] == 3 and m2["chunks"] == 1503
    written = sum((v2 / f).stat().st_size for f in (new["sqlite"], new["faiss"]))
    shared = sum((v1 / f).stat().st_size for f in (old["sqlite"], old["faiss"]))
    assert written < shared / 4
    assert check_index("t", tmp_path).ok


def test_a_removal_is_a_tombstone_and_the_file_is_gone_for_readers(tmp_path):
    _commit(tmp_path, adds=[_file("a.txt", 20), _file("b.txt", 20)])
    v2 = _commit(tmp_path, removes=["a.txt"])
    (seg,) = _manifest(v2)["segments"]
    assert seg["dead"] == ["a.txt"] and seg["dead_rows"] == 20
    store = IndexStore("t", tmp_path)
    assert store.file_names() == ["b.txt"] and {c.file for c in store.chunks()} == {"b.txt"}
    assert {d.file for d in store.documents()} == {"b.txt"} and store.vectors.ntotal == 20
    for q in _vectors("a.txt", 20):  # a's own vectors find only b's chunks now
        assert {c.file for c in store.chunks([i for i, _ in store.search(q, 5)])} == {"b.txt"}
    store.close()
    assert check_index("t", tmp_path).ok


def test_more_than_half_deleted_compacts_the_segment(tmp_path):
    _commit(tmp_path, adds=[_file("a.txt", 30), _file("b.txt", 10)])
    v2 = _commit(tmp_path, removes=["a.txt"])
    (seg,) = _manifest(v2)["segments"]
    assert seg["name"] == "s000003" and seg["rows"] == 10 and seg["dead"] == []  # rewritten without a.txt
    store = IndexStore("t", tmp_path)
    assert store.file_names() == ["b.txt"] and store.chunk_count() == 10
    store.close()


def test_merges_keep_the_segment_count_bounded_and_chunk_ids_stable(tmp_path):
    _commit(tmp_path, adds=[_file("f0.txt", 4)])
    ids_before = {c.text: c.id for c in IndexStore("t", tmp_path).chunks()}
    for i in range(1, 3 * sg.MERGE_FACTOR):
        v = _commit(tmp_path, adds=[_file(f"f{i}.txt", 4)])
        assert len(_manifest(v)["segments"]) < sg.MERGE_FACTOR + 2
    store = IndexStore("t", tmp_path)
    assert store.chunk_count() == 4 * 3 * sg.MERGE_FACTOR
    assert all(ids_before[c.text] == c.id for c in store.chunks() if c.text in ids_before)
    store.close()
    assert check_index("t", tmp_path).ok


def test_summaries_follow_their_file_version_through_merges(tmp_path):
    _commit(tmp_path, adds=[_file("a.txt", 3), _file("b.txt", 3)])
    _commit(tmp_path, summaries=[("a.txt", "summary of a"), ("b.txt", "summary of b")])
    _commit(tmp_path, adds=[_file("b.txt", 3, salt=1)])  # b changed: its summary no longer applies
    for i in range(sg.MERGE_FACTOR):  # enough small segments to merge the summaries' segment away
        _commit(tmp_path, adds=[_file(f"x{i}.txt", 1)])
    store = IndexStore("t", tmp_path)
    assert store.summaries() == {"a.txt": "summary of a"}
    store.close()


def test_a_rewritten_summary_wins_even_after_compaction_moves_the_old_one(tmp_path):
    """Found by the property test below: the old summary's segment was compacted into a segment with a newer name."""
    _commit(tmp_path, adds=[_file("f1.txt", 1)])
    _commit(tmp_path, adds=[_file("f0.txt", 1)], summaries=[("f1.txt", "old summary")])
    _commit(tmp_path, adds=[_file("f0.txt", 1, salt=1)], summaries=[("f1.txt", "new summary")])  # compacts s2
    store = IndexStore("t", tmp_path)
    assert store.summaries() == {"f1.txt": "new summary"}
    store.close()


OPS = st.lists(st.tuples(st.sampled_from(["add", "remove", "summarize"]), st.integers(0, 5), st.integers(1, 12)),
               min_size=1, max_size=4)


@pytest.mark.parametrize("factor", [2, sg.MERGE_FACTOR])  # 2: merges and compactions in almost every sequence
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(commits=st.lists(OPS, min_size=1, max_size=7))
def test_any_update_sequence_answers_like_brute_force_over_the_live_files(tmp_path_factory, factor, commits):
    default = sg.MERGE_FACTOR
    sg.MERGE_FACTOR = factor
    try:
        _sequence(tmp_path_factory.mktemp("seq"), commits)
    finally:
        sg.MERGE_FACTOR = default


def _sequence(root, commits):
    live: dict[str, tuple[int, int]] = {}  # file → (chunks, salt)
    summarized: dict[str, str] = {}
    salt = 0
    for ops in commits:
        adds, removes, sums = {}, set(), []
        for op, f, n in ops:
            name = f"f{f}.txt"
            if op == "add":
                salt += 1
                adds[name] = _file(name, n, salt)
                removes.discard(name)
                sums = [x for x in sums if x[0] != name]
            elif op == "remove" and (name in live or name in adds):
                adds.pop(name, None)
                removes.add(name)
                sums = [x for x in sums if x[0] != name]
            elif op == "summarize" and name in live and name not in adds and name not in removes:
                sums.append((name, f"about {name} {salt}"))
        if not (adds or removes or sums) and live:
            continue
        _commit(root, adds=list(adds.values()), removes=[r for r in removes if r in live], summaries=sums)
        for r in removes:
            live.pop(r, None)
            summarized.pop(r, None)
        for name, args in adds.items():
            live[name] = (len(args[4]), int(args[1], 16))
            summarized.pop(name, None)
        summarized.update(sums)
        store = IndexStore("t", root)
        assert store.file_names() == sorted(live)
        assert store.chunk_count() == sum(n for n, _ in live.values()) == len(store.chunks())
        assert store.summaries() == dict(sorted(summarized.items()))
        for q in _vectors("query", 3, salt):
            got = [(c.file, c.ordinal) for c in store.chunks([i for i, _ in store.search(q, 5)])]
            assert got == _brute(live, q, 5)
        store.close()
        assert check_index("t", root).ok


@pytest.mark.parametrize("linkable", [True, False])
def test_a_filesystem_without_hard_links_gets_copies(tmp_path, monkeypatch, linkable):
    if not linkable:
        def no_link(src, dst):
            raise OSError(1, "Operation not permitted")  # EPERM, as on filesystems without hard links

        monkeypatch.setattr(os, "link", no_link)
    v1 = _commit(tmp_path, adds=[_file("a.txt", 5)])
    v2 = _commit(tmp_path, adds=[_file("b.txt", 5)])
    seg = _manifest(v1)["segments"][0]["sqlite"]
    assert (os.stat(v1 / seg).st_ino == os.stat(v2 / seg).st_ino) == linkable
    assert check_index("t", tmp_path).ok and IndexStore("t", tmp_path).chunk_count() == 10


def test_an_index_written_before_segments_is_read_checked_and_updated_in_place(tmp_path, small_docs):
    """tests/data/format2: an index written by the previous docqa (one index.sqlite + vectors.faiss per version,
    summaries without file hashes), through the real ingest with the test fakes."""
    import shutil
    from pathlib import Path

    import docqa
    from tests.conftest import FAKE_EMBEDDER, FAKE_MODEL

    root = tmp_path / "idx"
    shutil.copytree(Path(__file__).parent / "data" / "format2", root)
    before = IndexStore("legacy", root)
    assert before.manifest["format"] == 2 and len(before.segments) == 1 and before.chunk_count() == 48
    assert set(before.summaries()) == set(before.file_names())
    rng = np.random.default_rng(0)
    q = rng.standard_normal(before.manifest["dim"]).astype(np.float32)
    q /= np.linalg.norm(q)
    kept = {c.id for c in before.chunks() if c.file != "employee_handbook.md"}
    before.close()
    assert check_index("legacy", root).ok
    (small_docs / "notes.md").write_text("# Notes\n\nThe nightly hotel cap in Oslo is 240 euros.\n")
    (small_docs / "employee_handbook.md").unlink()
    docqa.ingest(small_docs, "legacy", root=root, embedder=FAKE_EMBEDDER, model=FAKE_MODEL, sync=True)
    after = IndexStore("legacy", root)
    legacy, new = after.segments
    assert legacy.sqlite == "index.sqlite" and legacy.dead == ["employee_handbook.md"] and new.rows >= 1
    old = root / "legacy" / "v000001" / "index.sqlite"
    # Copied once, with BM25 postings added in place (its vectors shared); shared by every later version.
    assert legacy.lexical and os.stat(old).st_ino != os.stat(after.path / "index.sqlite").st_ino
    assert os.stat(old.with_name("vectors.faiss")).st_ino == os.stat(after.path / "vectors.faiss").st_ino
    hit = after.search_lexical("hotel cap", 100)
    assert len(hit.ids) and set(hit.ids.tolist()) <= {c.id for c in after.chunks()}  # deleted file's chunks: never
    assert "notes.md" in after.file_names() and "employee_handbook.md" not in after.file_names()
    assert set(after.summaries()) == set(after.file_names()) - {"notes.md"}  # kept for the unchanged files
    assert kept <= {i for i, _ in after.search(q, 100)}  # the legacy vectors still answer, the deleted ones not
    after.close()
    assert check_index("legacy", root).ok
    (small_docs / "more.md").write_text("# More\n\nThe per diem in Bergen is 90 euros.\n")
    docqa.ingest(small_docs, "legacy", root=root, embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    later = IndexStore("legacy", root)
    assert os.stat(later.path / "index.sqlite").st_ino == os.stat(after.path / "index.sqlite").st_ino
    later.close()
