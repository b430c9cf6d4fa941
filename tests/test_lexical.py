"""The lexical (BM25) index in the segment format, and the retrieval room above it: exact against bm25s across
segments, updates, deletes and merges; damage refused; fusion and analyzer properties; bad input in one line."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import docqa
from docqa.errors import ConfigError, DocQAError, IndexCorrupt, LexicalMissing, ModelLoadError, UnknownComponent
from docqa.index import lexical, lexical_search
from docqa.index.integrity import sha256_file
from docqa.index.store import IndexStore, check_index
from docqa.index.writer import writing
from docqa.records import Chunk
from docqa.retrieval import DEFAULT_RETRIEVER, FUSIONS, RETRIEVERS, STOP_WORDS_ONLY, RetrievalOptions, retrieve_many
from docqa.strategies import STRATEGIES
from tests.conftest import FAKE_EMBEDDER, FAKE_MODEL

TEXTS = {
    "a.txt": ["The cat sat on the mat and looked at the other cat.", "Revenue grew 12.5% in the third quarter.",
              "Operating margin was 31 percent, up from 28 percent."],
    "b.txt": ["Dogs chase cats in the garden all day.", "The board approved a dividend of 0.42 dollars per share.",
              "the of and"],
    "c.txt": ["Quarterly revenue reached 4.1 billion dollars; the margin held.", "Cats and dogs: a study of pets."],
}
QUERIES = ["cats and revenue", "operating margin percent", "dividend per share", "pets study dogs cat",
           "third quarter revenue growth"]


def _write(root, files: dict[str, list[str]], rebuild=False, remove=()):
    with writing("t", root, dim=4, rebuild=rebuild) as w:
        for name in remove:
            w.remove_file(name)
        for name, texts in files.items():
            chunks = [Chunk(0, name, i, t, 0, len(t), None, len(t.split())) for i, t in enumerate(texts)]
            w.add_file(name, f"sha-{name}-{hash(tuple(texts))}", 10, [], chunks,
                       np.random.default_rng(0).random((len(chunks), 4)).astype(np.float32))
        w.commit({"embedder": "e"})


def _bm25s_scores(texts: list[str], query: str) -> np.ndarray:
    bm25s = pytest.importorskip("bm25s")
    model = bm25s.BM25(method="lucene", k1=lexical.K1, b=lexical.B, dtype="float64")
    model.index([lexical.analyze(t) for t in texts], show_progress=False)
    terms = [t for t in lexical.query_terms(query) if t in model.vocab_dict]
    return model.get_scores(terms) if terms else np.zeros(len(texts))


def _assert_exact(root, live: dict[str, list[str]]):
    """docqa's BM25 over the index equals bm25s over the live chunks, score for score (within 1e-6)."""
    store = IndexStore("t", root)
    try:
        chunks = store.chunks()
        assert sorted({c.file for c in chunks}) == sorted(live)
        texts = [c.text for c in chunks]
        for q in QUERIES:
            hit = store.search_lexical(q, len(chunks))
            ref = _bm25s_scores(texts, q)
            got = dict(zip(hit.ids.tolist(), hit.scores.tolist(), strict=True))
            for c, s in zip(chunks, ref, strict=True):
                assert abs(got.get(c.id, 0.0) - s) < 1e-6, (q, c.text, got.get(c.id), s)
            assert all(i in {c.id for c in chunks} for i in got)  # deleted chunks are never returned
    finally:
        store.close()


def test_bm25_equals_bm25s_across_updates_deletes_and_merges(tmp_path):
    from docqa.index import segments as sg

    root = tmp_path / "idx"
    _write(root, {"a.txt": TEXTS["a.txt"]})
    _write(root, {"b.txt": TEXTS["b.txt"]})  # a second segment: corpus-wide statistics span both
    _assert_exact(root, {"a.txt", "b.txt"})
    _write(root, {"c.txt": TEXTS["c.txt"]}, remove=["b.txt"])  # a tombstone: b's chunks leave N, df and avglen
    _assert_exact(root, {"a.txt", "c.txt"})
    live = {"a.txt", "c.txt"}
    for i in range(sg.MERGE_FACTOR):  # enough segments for a merge, which concatenates postings
        name = f"n{i}.txt"
        _write(root, {name: [f"Note {i}: the cat counted revenue of {i} dollars.", "A margin note."]},
               remove=["a.txt"] if i == 3 else [])
        live.add(name)
        live.discard("a.txt") if i == 3 else None
    store = IndexStore("t", root)
    assert len(store.segments) < sg.MERGE_FACTOR + 2 and all(s.lexical for s in store.segments)
    store.close()
    _assert_exact(root, live)
    assert check_index("t", root).ok


def test_an_added_file_costs_its_own_chunks(tmp_path):
    root = tmp_path / "idx"
    _write(root, {"a.txt": TEXTS["a.txt"], "b.txt": TEXTS["b.txt"]})
    store = IndexStore("t", root)
    first = store.segments[0].sqlite
    store.close()
    _write(root, {"c.txt": TEXTS["c.txt"]})
    store = IndexStore("t", root)
    new = [s for s in store.segments if s.sqlite != first]
    assert len(new) == 1
    db = sqlite3.connect(store.path / new[0].sqlite)
    assert dict(db.execute("SELECT file, docs FROM lex_files")) == {"c.txt": 2}  # only the new file's postings
    db.close()
    store.close()


def test_damaged_postings_are_refused_and_check_finds_them(tmp_path):
    root = tmp_path / "idx"
    _write(root, {"a.txt": TEXTS["a.txt"]})
    store = IndexStore("t", root)
    path = store.path / store.segments[0].sqlite
    store.close()
    db = sqlite3.connect(path)
    (data,) = db.execute("SELECT data FROM lex_postings WHERE term = 'revenu'").fetchone()
    db.execute("UPDATE lex_postings SET data = ? WHERE term = 'revenu'", (bytes(8) + data[8:],))
    db.commit()
    db.close()
    report = check_index("t", root)
    assert not report.ok and any("lexical" in c and not ok for c, ok, _ in report.checks)
    with pytest.raises(IndexCorrupt, match="postings|checksum"):
        store = IndexStore("t", root)
        store.search_lexical("revenue", 3)


def _small_index(tmp_path):
    """(a folder of one short document, the index "t" built from it with the fakes)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("The nightly hotel cap is 220 dollars. Probation lasts 90 days.")
    docqa.ingest(docs, "t", embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    return docs, docqa.open_index("t", model=FAKE_MODEL)


def test_an_index_without_postings_says_rebuild_or_answers_dense_by_default(tmp_path):
    import json

    docs, idx = _small_index(tmp_path)
    manifest = idx.corpus.store.path / "manifest.json"
    data = json.loads(manifest.read_text())
    for seg in data["segments"]:  # as an older docqa wrote it: no lexical tables, no flag
        path = manifest.parent / seg["sqlite"]
        db = sqlite3.connect(path)
        db.executescript("DROP TABLE lex_postings; DROP TABLE lex_files; DROP TABLE lex_meta; VACUUM;")
        db.close()
        seg["lexical"] = False
        seg["sizes"][seg["sqlite"]] = path.stat().st_size
        seg["checksums"][seg["sqlite"]] = sha256_file(path)
    data["retriever"] = "hybrid"
    manifest.write_text(json.dumps(data))
    idx = docqa.open_index("t", model=FAKE_MODEL)
    with pytest.raises(LexicalMissing, match="docqa ingest PATH --index t once"):
        idx.ask("How long is probation?", "rag", retriever="bm25")
    a = idx.ask("How long is probation?", "rag")  # the index asks hybrid, but has no postings: dense, said
    assert a.details["retriever"] == "dense" and "no lexical index" in a.details["notes"][0]
    # The next ingest adds the postings in place (nothing re-embedded), and the index answers hybrid
    report = docqa.ingest(docs, "t", embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    assert report.lexical_added == report.chunks_total > 0 and report.chunks_added == 0
    idx = docqa.open_index("t", model=FAKE_MODEL)
    a = idx.ask("How long is probation?", "rag")
    assert a.details["retriever"] == "hybrid" and "notes" not in a.details
    assert check_index("t", tmp_path / "indexes").ok


def test_ingest_records_the_retriever_questions_use(tmp_path):
    docs, idx = _small_index(tmp_path)
    assert idx.corpus.store.manifest["retriever"] == DEFAULT_RETRIEVER  # a new index records the default
    assert idx.ask("How long is probation?", "rag").details["retriever"] == DEFAULT_RETRIEVER
    report = docqa.ingest(docs, "t", embedder=FAKE_EMBEDDER, model=FAKE_MODEL, retriever="bm25")
    assert report.version == 2  # a new version: only the setting changed
    idx = docqa.open_index("t", model=FAKE_MODEL)
    assert idx.ask("How long is probation?", "rag").details["retriever"] == "bm25"
    assert idx.ask("How long is probation?", "rag", retriever="dense").details["retriever"] == "dense"
    with pytest.raises(UnknownComponent):
        docqa.ingest(docs, "t", embedder=FAKE_EMBEDDER, model=FAKE_MODEL, retriever="bm52")


def test_every_retriever_feeds_every_strategy_that_retrieves(indexed):
    idx = docqa.open_index(indexed, model=FAKE_MODEL)
    for retriever in RETRIEVERS.names():
        for strategy in ("rag", "auto"):
            a = idx.ask("What is the nightly hotel cap?", strategy, retriever=retriever)
            assert a.sources and a.text, (retriever, strategy)
        a = idx.ask("What is the nightly hotel cap?", "summarize", retriever=retriever, map_top_k=2)
        assert a.details["retrieved"], retriever
    hybrid = idx.ask("What is the nightly hotel cap?", "rag", retriever="hybrid", fusion="weighted",
                     fusion_weight=0.3)
    assert {"embed", "search", "lexical", "fuse"} <= set(hybrid.timings)
    assert "hotel" in " ".join(s.text for s in hybrid.sources).lower()
    assert set(STRATEGIES.names()) >= {"rag", "auto", "summarize"}


def test_bm25_finds_the_exact_word_dense_misses(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("\n\n".join(f"Paragraph {i} talks about travel, hotels and meals in general terms."
                                           for i in range(30)) + "\n\nThe code name of the project is ZEPHYRINE.")
    docqa.ingest(docs, "t", embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    idx = docqa.open_index("t", model=FAKE_MODEL)
    (top,) = retrieve_many(idx.corpus, ["zephyrine"], 1, RetrievalOptions(retriever="bm25"))
    assert "ZEPHYRINE" in top.chunks[0][0].text


def test_a_query_of_stop_words_is_answered_by_dense_and_says_so(indexed):
    idx = docqa.open_index(indexed, model=FAKE_MODEL)
    for retriever in ("bm25", "hybrid"):
        (r,) = retrieve_many(idx.corpus, ["the of and is"], 3, RetrievalOptions(retriever=retriever))
        assert r.chunks and r.notes == [STOP_WORDS_ONLY]


def test_bad_retrieval_options_are_one_line_and_change_nothing(indexed):
    idx = docqa.open_index(indexed, model=FAKE_MODEL)
    bad = [dict(retriever="bm52"), dict(retriever="hybrid", fusion_weight=1.5), dict(retriever="hybrid", fusion="max"),
           dict(rerank="cross-encoder:/nonexistent/model"), dict(rerank="cross-encoder"), dict(rerank_top_n=0),
           dict(rerank="sorcery")]
    for options in bad:
        with pytest.raises((ConfigError, ModelLoadError, UnknownComponent)) as e:
            idx.ask("What is the nightly hotel cap?", "rag", **options)
        assert "\n" not in str(e.value) and isinstance(e.value, DocQAError), options


def test_a_reranker_reorders_the_fused_candidates(indexed):
    from docqa.retrieval import rerank as rr

    calls = []

    class Judge:
        def __init__(self, corpus, model):
            pass

        def rerank(self, query, candidates):
            calls.append([cid for cid, _ in candidates])
            return [float(i) for i in range(len(candidates))]  # the weakest candidate judged best

    rr.RERANKERS.register("judge", Judge)
    try:
        idx = docqa.open_index(indexed, model=FAKE_MODEL)
        a = idx.ask("What is the nightly hotel cap?", "rag", rerank="judge", rerank_top_n=30, top_k=2)
        assert len(calls) == 1 and 2 < len(calls[0]) <= 30
        assert "rerank" in a.timings and [s.chunk_id for s in a.sources] == calls[0][::-1][:2]
    finally:
        rr.RERANKERS.unregister("judge")


def test_the_reader_reranks_by_its_own_log_probability(indexed):
    idx = docqa.open_index(indexed, model=FAKE_MODEL)
    gen = idx.corpus.generator()
    before = len(gen.prompts)
    a = idx.ask("What is the nightly hotel cap?", "rag", rerank="reader", rerank_top_n=5)
    judged = [p for p in gen.prompts[before:] if "Does the passage contain the answer" in p]
    assert len(judged) == 5 and "rerank" in a.timings and len(a.sources) == 4


def test_document_order_reads_the_same_chunks_as_they_stand_in_their_files(indexed):
    idx = docqa.open_index(indexed, model=FAKE_MODEL)
    gen = idx.corpus.generator()
    q = "What is the nightly hotel cap and the meal allowance?"
    best = idx.ask(q, "rag", top_k=4)
    before = len(gen.prompts)
    ordered = idx.ask(q, "rag:chunk_order=document", top_k=4)
    key = [(s.file, s.start_char) for s in ordered.sources]
    assert key == sorted(key) and sorted(key) == sorted((s.file, s.start_char) for s in best.sources)
    assert [s.file for s in best.sources] != [s.file for s in ordered.sources] or \
        [s.start_char for s in best.sources] != [s.start_char for s in ordered.sources], "the example must reorder"
    (prompt,) = gen.prompts[before:]
    at = [prompt.index(s.text[:40]) for s in ordered.sources]
    assert at == sorted(at)  # the reader sees them in that order
    with pytest.raises(ConfigError, match="--chunk-order"):
        idx.ask(q, "rag", chunk_order="random")


# ------------------------------------------------------------------------------------------------ properties
@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200), st.text(max_size=200))
def test_analyzer_is_word_by_word(a, b):
    terms = lexical.analyze(a + " " + b)
    assert terms == lexical.analyze(a) + lexical.analyze(b)  # no term spans a space
    # Stop words go before stemming, as in Lucene: a stem may still equal one ("ons" → "on"; hypothesis found it)
    assert all(t and t == t.lower() for t in terms)
    assert lexical.analyze(" ".join(w for w in a.split() if w.lower() in lexical.STOP_WORDS)) == []
    assert lexical.analyze(a.upper()) == lexical.analyze(a) or any(c.upper().lower() != c for c in a)


def test_analyzer_keeps_numbers_and_stems_words():
    assert lexical.analyze("Revenues grew 12.5% to $1,234.5 million in Q3") == \
        ["revenu", "grew", "12.5", "1,234.5", "million", "q3"]


rankings = st.lists(st.tuples(st.integers(0, 40), st.floats(-5, 5, allow_nan=False)), max_size=25,
                    unique_by=lambda t: t[0]).map(lambda r: sorted(r, key=lambda t: -t[1]))


@settings(max_examples=300, deadline=None)
@given(rankings, rankings, st.floats(0, 1))
def test_fusion_ranks_every_candidate_once(dense, lex, weight):
    for name in FUSIONS.names():
        fused = FUSIONS.get(name)(dense, lex, weight)
        ids = [cid for cid, _ in fused]
        assert sorted(ids) == sorted({c for c, _ in dense} | {c for c, _ in lex})  # a permutation of the union
        scores = [s for _, s in fused]
        assert scores == sorted(scores, reverse=True)


@settings(max_examples=100, deadline=None)
@given(rankings, rankings)
def test_rrf_at_weight_one_keeps_the_dense_order_first(dense, lex):
    fused = [cid for cid, _ in FUSIONS.get("rrf")(dense, lex, 1.0)]
    dense_ids = [c for c, _ in dense]
    assert fused[:len(dense_ids)] == dense_ids  # BM25 weighs nothing: its own finds come after, in id order


def test_encode_decode_round_trip():
    ids = np.array([5, 9, 10, 4_000_000_000], dtype=np.int64)
    base, blob = lexical.encode(ids, np.array([1, 2, 70000, 3]), np.array([10, 20, 30, 99999]))
    got = lexical.decode(base, blob)
    assert got[0].tolist() == ids.tolist() and got[1].tolist() == [1, 2, 65535, 3]
    assert got[2].tolist() == [10, 20, 30, 65535]


def test_the_cli_takes_retriever_options_and_says_bad_ones_in_one_line(small_docs):
    import json

    from typer.testing import CliRunner

    from docqa.cli.main import app

    runner = CliRunner()
    r = runner.invoke(app, ["ingest", str(small_docs), "--index", "t", "--embedder", FAKE_EMBEDDER, "--model",
                            FAKE_MODEL, "--retriever", "bm25"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["ask", "What is the nightly hotel cap?", "--index", "t", "--model", FAKE_MODEL, "--json"])
    data = json.loads(r.output)
    assert data["details"]["retriever"] == "bm25" and "lexical" in data["timings"]
    r = runner.invoke(app, ["ask", "What is the nightly hotel cap?", "--index", "t", "--model", FAKE_MODEL, "--json",
                            "--retriever", "hybrid", "--fusion", "weighted", "--fusion-weight", "0.2"])
    data = json.loads(r.output)
    assert data["details"]["retriever"] == "hybrid" and {"lexical", "fuse", "embed"} <= set(data["timings"])
    for bad, word in ((["--fusion-weight", "2"], "--fusion-weight"), (["--retriever", "bm52"], "bm52"),
                      (["--rerank", "cross-encoder:/no/such/model"], "/no/such/model")):
        r = runner.invoke(app, ["ask", "What is the nightly hotel cap?", "--index", "t", "--model", FAKE_MODEL,
                                "--retriever", "hybrid", *bad])
        assert r.exit_code != 0 and word in r.output and "Traceback" not in r.output, r.output


def test_maxscore_pruning_returns_the_exact_top_k(tmp_path, monkeypatch):
    """Pruned search (forced on a small corpus) gives the same top-k scores, rank by rank, as summing every
    posting and as bm25s over the live chunks; and it does prune for a query with a rare word."""
    rng = np.random.default_rng(3)
    vocab = [f"w{i}" for i in range(400)]
    p = 1 / np.arange(1, 401)
    p /= p.sum()

    def doc(n):
        return " ".join(rng.choice(vocab, size=n, p=p))

    root = tmp_path / "idx"
    _write(root, {f"f{i}.txt": [doc(int(rng.integers(5, 60))) for _ in range(100)] for i in range(12)})
    _write(root, {"g.txt": [doc(30) for _ in range(200)]}, remove=["f3.txt"])
    store = IndexStore("t", root)
    texts = [c.text for c in store.chunks()]
    searcher = store._open.lexical()
    queries = ["w1 w2 w3 w350", "w0 w5 w399 w120", "w1 w2", "w7 w8 w9 w10 w11 w300", "w0 w1 w2 w3 w4 w5"]
    calls = []
    real = searcher._maxscore
    monkeypatch.setattr(searcher, "_maxscore", lambda e, k: calls.append(r := real(e, k)) or r)
    for q in queries:
        for k in (1, 4, 10):
            monkeypatch.setattr(lexical_search, "PRUNE_FROM", 10**9)
            full = store.search_lexical(q, k)
            monkeypatch.setattr(lexical_search, "PRUNE_FROM", 0)
            pruned = store.search_lexical(q, k)
            ref = np.sort(_bm25s_scores(texts, q))[::-1][:k]
            assert np.allclose(pruned.scores, full.scores, atol=1e-9) and np.allclose(pruned.scores, ref, atol=1e-6)
    assert any(c is not None for c in calls)  # the pruned path answered, not only its fallback
    store.close()
