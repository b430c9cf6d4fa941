"""The store under crashes and damage: kill -9 of a real ingest at every commit step, a corruption matrix over every
index file, readers that outlive writers, and the CLI's one-line answers to all of it."""

from __future__ import annotations

import random
import shutil

import pytest
from typer.testing import CliRunner

import docqa
from docqa.cli.main import app
from docqa.errors import ConfigError, IndexCorrupt, IndexNotFound
from docqa.index.store import FAULT_POINTS, MERGE_FAULT_POINTS, IndexStore, check_index
from tests.conftest import FAKE_EMBEDDER, FAKE_MODEL
from tests.faults import CORRUPTIONS, kill_at_random, live, run_ingest


def _ingest(path, root, **kw):
    return docqa.ingest(path, "t", root=root, embedder=FAKE_EMBEDDER, model=FAKE_MODEL, **kw)


def _ask(root):
    idx = docqa.open_index("t", root=root, model=FAKE_MODEL)
    return idx.ask("What is the nightly hotel cap?", "rag")


def _assert_clean(home):
    assert not list(home.glob(".tmp-*")), "a dead writer's temp folder was left"
    assert check_index("t", home.parent).ok


@pytest.mark.parametrize("point", FAULT_POINTS)
def test_kill_9_at_every_commit_step_of_a_first_ingest(small_docs, tmp_path, point):
    root = tmp_path / "idx"
    rc, out, err = run_ingest(small_docs, root, fault=point)
    assert rc == -9, (out, err)
    try:  # either no index at all, or a complete one: never a half-written one
        _ask(root)
    except IndexNotFound:
        assert point in ("begin", "before-lexical", "after-vectors", "after-manifest", "after-rename")
    rc, out, err = run_ingest(small_docs, root)
    assert rc == 0 and "DONE" in out, err
    assert _ask(root).sources
    _assert_clean(root / "t")


@pytest.mark.parametrize("point", FAULT_POINTS)
def test_kill_9_at_every_commit_step_of_a_re_ingest(two_versions, point):
    docs, root = two_versions
    before = live(root / "t").name
    (docs / "notes.md").write_text("# Notes\n\nThe nightly hotel cap in Oslo is 240 euros.\n")
    rc, _, _ = run_ingest(docs, root, fault=point)
    assert rc == -9
    assert _ask(root).sources  # the previous version (or the new one, once CURRENT moved) answers
    assert (live(root / "t").name == before) == (point in ("begin", "before-lexical", "after-vectors", "after-manifest",
                                                           "after-rename"))
    rc, out, err = run_ingest(docs, root)  # recovers by itself: no "Directory not empty", no manual clean-up
    assert rc == 0, err
    store = IndexStore("t", root)
    assert "notes.md" in store.file_names()
    hit = store.search_lexical("nightly hotel cap Oslo", 3)  # vectors and postings went live together
    assert "Oslo" in store.chunks([int(hit.ids[0])])[0].text
    store.close()
    _assert_clean(root / "t")


def _segments(home) -> int:
    import json

    return len(json.loads((live(home) / "manifest.json").read_text())["segments"])


@pytest.mark.parametrize("point", MERGE_FAULT_POINTS)
def test_kill_9_in_the_middle_of_a_merge(small_docs, tmp_path, point):
    from docqa.index import segments as sg

    root = tmp_path / "idx"
    _ingest(small_docs, root)
    for i in range(1, sg.MERGE_FACTOR):  # one small segment per ingest, up to the merge
        (small_docs / f"note{i}.md").write_text(f"# Note {i}\n\nThe hotel cap in city {i} is {100 + i} euros.\n")
        _ingest(small_docs, root)
    before, segments = live(root / "t").name, _segments(root / "t")
    (small_docs / "last.md").write_text("# Last\n\nThe nightly hotel cap in Oslo is 240 euros.\n")
    rc, out, err = run_ingest(small_docs, root, fault=point)
    assert rc == -9, (out, err)  # the kill happened: this commit was merging
    assert live(root / "t").name == before and _ask(root).sources  # the previous version answers
    rc, out, err = run_ingest(small_docs, root)
    assert rc == 0, err
    assert _segments(root / "t") < segments + 1  # the merge happened this time
    assert "last.md" in IndexStore("t", root).file_names()
    _assert_clean(root / "t")


def test_kill_9_at_random_moments(two_versions):
    docs, root = two_versions
    rng = random.Random(7)
    for trial in range(4):
        (docs / "notes.md").write_text(f"# Notes\n\nTrial {trial}: the cap is {100 + trial} euros.\n")
        kill_at_random(docs, root, rng, span=2.5)
        assert _ask(root).sources
    rc, _, err = run_ingest(docs, root)
    assert rc == 0, err
    _assert_clean(root / "t")


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_every_corruption_is_detected_never_served(two_versions, case):
    docs, root = two_versions
    home = root / "t"
    versions = sorted(p for p in home.glob("v*"))
    CORRUPTIONS[case](home, versions[-1], versions[-2])
    with pytest.raises(IndexCorrupt, match=r"Index 't' is damaged: .*--rebuild"):
        _ask(root)
    report = check_index("t", root)
    assert not report.ok and any(not ok for _, ok, _ in report.checks)
    with pytest.raises(IndexCorrupt, match="--rebuild"):  # an ingest never builds on damage
        _ingest(docs, root)
    r = CliRunner().invoke(app, ["ask", "hotel cap?", "--index", "t", "--root", str(root), "--model", FAKE_MODEL])
    assert r.exit_code == 1 and "Traceback" not in r.output and "--rebuild" in r.output
    assert CliRunner().invoke(app, ["check", "t", "--root", str(root)]).exit_code == 1
    r = CliRunner().invoke(app, ["list", "--root", str(root)])
    assert r.exit_code == 0 and "Traceback" not in r.output
    _ingest(docs, root, rebuild=True)  # the fix the message names works
    assert _ask(root).sources
    _assert_clean(home)


def test_check_passes_on_a_good_index_and_the_cli_says_so(two_versions):
    _, root = two_versions
    r = CliRunner().invoke(app, ["check", "t", "--root", str(root)])
    assert r.exit_code == 0 and "intact" in r.output
    r = CliRunner().invoke(app, ["check", "t", "--root", str(root), "--json"])
    assert '"ok": true' in r.output


def test_a_reader_keeps_its_version_while_writers_move_on(two_versions):
    docs, root = two_versions
    idx = docqa.open_index("t", root=root, model=FAKE_MODEL)
    for i in range(3):  # more new versions than are kept: the reader's would be pruned, were it not held
        (docs / "notes.md").write_text(f"# Notes {i}\n\nThe cap is {200 + i} euros.\n")
        _ingest(docs, root)
    assert idx.ask("What is the nightly hotel cap?", "rag").sources
    held = idx.corpus.store.path
    assert held.is_dir()
    idx.corpus.store.close()
    (docs / "notes.md").write_text("# Notes\n\nThe cap is 300 euros.\n")
    _ingest(docs, root)
    assert not held.exists()  # released: the next writer prunes it


def test_a_dead_writers_leftovers_are_swept(two_versions):
    docs, root = two_versions
    home = root / "t"
    (home / ".tmp-v000009-99999").mkdir()
    (home / ".tmp-v000009-99999" / "index.sqlite").write_bytes(b"partial")
    orphan = home / "v000007"  # renamed by a writer killed before it moved CURRENT
    shutil.copytree(live(home), orphan)
    (home / ".CURRENT.tmp-4242").write_text("v000007")
    (docs / "notes.md").write_text("# Notes\n\nNew.\n")
    report = _ingest(docs, root)
    assert report.version == 3
    assert not orphan.exists() and not list(home.glob(".*tmp*"))
    _assert_clean(home)


def test_bad_names_and_roots_are_one_line_errors(small_docs, tmp_path):
    with pytest.raises(ConfigError, match="at most 100"):
        _ingest(small_docs, tmp_path / "idx") if False else docqa.ingest(small_docs, "x" * 250, root=tmp_path,
                                                                          embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        _ingest(small_docs, a_file)
    runner = CliRunner()
    for args in (["ingest", str(small_docs), "--index", "y" * 300], ["ask", "q?", "--index", "y" * 300],
                 ["ingest", str(small_docs), "--index", "t", "--root", str(a_file)],
                 ["ask", "q?", "--index", "t", "--root", str(a_file)], ["check", "t", "--root", str(a_file)],
                 ["ask", "q?", "--index", "../etc"], ["ingest", str(tmp_path / "missing"), "--index", "t"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 1 and "Traceback" not in r.output, (args, r.output)
        assert r.output.count("error:") == 1
