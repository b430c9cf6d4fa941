"""Passage-level retrieval metrics: the reference located among the index's chunks, the retrieved ranks scored."""

from __future__ import annotations

import json

import pytest

import docqa
from docqa.eval.retrieval import add_passage_metrics, gold_chunks, rank_metrics
from tests.conftest import FAKE_MODEL, example_index, example_questions

CHUNKS = [(1, "New employees serve a probation period of 90 days."),
          (2, "The nightly hotel cap is 220 US dollars in most cities and 320 in London."),
          (3, "Parental leave: 16 weeks at full pay for every parent."),
          (4, "Meals are reimbursed up to 75 dollars a day.")]


def test_a_short_reference_must_appear_and_a_long_one_must_be_mostly_there():
    assert gold_chunks(["90 days"], CHUNKS) == {1}
    assert gold_chunks(["9 days"], CHUNKS) == set()  # "9 days" is not inside "90 days"
    assert gold_chunks(["Parents get sixteen weeks of leave at full pay"], CHUNKS) == set()
    assert gold_chunks(["Every parent gets 16 weeks of parental leave at full pay"], CHUNKS) == {3}
    assert gold_chunks(["220 dollars"], CHUNKS) == set()  # chunk 2 says "220 US dollars": not contiguous
    assert gold_chunks(["75 dollars"], CHUNKS) == {4}
    assert gold_chunks(["", "the"], CHUNKS) == set()


@pytest.mark.parametrize("retrieved, gold, expected", [
    ([1, 2, 3], {1}, {"context_recall": 1.0, "hit": 1.0, "mrr": 1.0, "ndcg": 1.0}),
    ([2, 3, 1], {1}, {"context_recall": 1.0, "hit": 1.0, "mrr": 1 / 3, "ndcg": 0.5}),
    ([2, 3], {1}, {"context_recall": 0.0, "hit": 0.0, "mrr": 0.0, "ndcg": 0.0}),
    ([3, 1, 2], {1, 2}, {"context_recall": 1.0, "hit": 1.0, "mrr": 0.5}),
    ([1, 4], {1, 2}, {"context_recall": 0.5, "hit": 1.0, "mrr": 1.0}),
])
def test_rank_metrics(retrieved, gold, expected):
    got = rank_metrics(retrieved, gold)
    for k, v in expected.items():
        assert got[k] == pytest.approx(v), (k, got)
    assert 0 <= got["ndcg"] <= 1


def test_only_retrieving_strategies_and_located_answers_are_scored():
    recs = [{"id": "a", "strategy": "rag", "references": ["90 days"], "retrieved": [2, 1], "metrics": {}},
            {"id": "a", "strategy": "long-context", "references": ["90 days"], "retrieved": [], "metrics": {}},
            {"id": "b", "strategy": "rag", "references": ["forty-two"], "retrieved": [1], "metrics": {}},
            {"id": "c", "strategy": "rag", "references": [], "retrieved": [1], "metrics": {}}]
    located = add_passage_metrics(recs, lambda r: CHUNKS)
    assert located == {"questions": 3, "located": 1}
    assert recs[0]["metrics"]["mrr"] == 0.5 and recs[0]["gold_chunks"] == [1]
    assert all(recs[i]["metrics"]["mrr"] is None for i in (1, 2, 3))


def test_eval_reports_passage_metrics_per_record_and_strategy(tmp_path):
    example_index(tmp_path)
    q = example_questions(tmp_path / "q.jsonl", 6)
    records, summary = docqa.evaluate(q, index="t", strategies=["rag", "long-context"], model=FAKE_MODEL,
                                      out=tmp_path / "out", max_new_tokens=16)
    rag = [r for r in records if r["strategy"] == "rag"]
    assert all(len(r["retrieved"]) == 4 for r in rag)
    meta = json.loads((tmp_path / "out" / "summary.json").read_text())["meta"]
    assert meta["answers_located"]["questions"] == 6 and meta["answers_located"]["located"] >= 1
    scored = [r for r in rag if r["metrics"]["mrr"] is not None]
    assert len(scored) == sum(1 for r in rag if r["gold_chunks"])
    row = next(x for x in summary if x["strategy"] == "rag")
    assert row["mrr"] == pytest.approx(sum(r["metrics"]["mrr"] for r in scored) / len(scored))
    lc = next(x for x in summary if x["strategy"] == "long-context")
    assert lc["mrr"] is None  # reads everything: no ranking to score


def test_summarizes_map_selection_is_scored_and_its_grounding_reads_the_files(tmp_path):
    example_index(tmp_path)
    q = example_questions(tmp_path / "q.jsonl", 3)
    records, _ = docqa.evaluate(q, index="t", strategies=["summarize"], model=FAKE_MODEL, max_new_tokens=16,
                                map_top_k=2, summary_window=1024)
    assert all(len(r["retrieved"]) == 2 and r["read"] == "files" for r in records if not r["error"])
    assert any(r["metrics"]["mrr"] is not None for r in records if r["gold_chunks"])
