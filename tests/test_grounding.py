"""Groundedness: each answer sentence checked against the text its strategy read."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

import docqa
from docqa.errors import ConfigError
from docqa.eval.grounding import GROUNDERS, add_groundedness, groundedness, split_sentences
from tests.conftest import FAKE_MODEL, example_index, example_questions

CONTEXT = ["Revenue in the second quarter was 42.1 million dollars, up 8 % from last year. Gross margin rose to "
           "35 %. The company expects to break even in 2012.",
           "The surgical segment reported an operating loss of 199,000 dollars."]


@pytest.mark.parametrize("method", GROUNDERS.names())
def test_every_method_gives_one_verdict_per_sentence(method):
    sents = ["Revenue was 42.1 million dollars.", "The moon is made of cheese."]
    verdicts = GROUNDERS.get(method)(sents, CONTEXT)
    assert len(verdicts) == 2 and all(isinstance(ok, bool) and 0 <= v <= 1 for ok, v in verdicts)


def test_overlap_supports_what_the_context_says_and_not_a_changed_number():
    g = groundedness("Revenue in the second quarter was 42.1 million dollars. Gross margin rose to 35 %.", CONTEXT)
    assert g["score"] == 1.0
    wrong = groundedness("Revenue in the second quarter was 47.3 million dollars.", CONTEXT)
    assert wrong["score"] == 0.0  # the words are there, the number is not
    made_up = groundedness("The company opened three new factories in Ohio.", CONTEXT)
    assert made_up["score"] == 0.0
    half = groundedness("The surgical segment reported an operating loss of 199,000 dollars. It hired a new CEO.",
                        CONTEXT)
    assert half["score"] == 0.5 and [s["supported"] for s in half["sentences"]] == [True, False]
    assert groundedness("", CONTEXT)["score"] is None


@given(st.text(max_size=300))
def test_sentence_splitting_never_fails_and_keeps_only_sentences_that_say_something(text):
    for s in split_sentences(text):
        assert s == s.strip() and s


def test_records_get_their_strategys_own_context():
    chunks = [(1, "a.md", CONTEXT[0]), (2, "b.md", CONTEXT[1])]
    recs = [{"answer": "The surgical segment reported an operating loss of 199,000 dollars.", "retrieved": [1],
             "sources": ["a.md"], "metrics": {}},
            {"answer": "The surgical segment reported an operating loss of 199,000 dollars.", "retrieved": [],
             "sources": ["a.md", "b.md"], "metrics": {}},
            {"answer": "", "error": "boom", "metrics": {}}]
    add_groundedness(recs, lambda r: chunks)
    assert recs[0]["metrics"]["groundedness"] == 0.0  # rag retrieved chunk 1 only
    assert recs[1]["metrics"]["groundedness"] == 1.0  # long-context read both files
    assert recs[2]["metrics"]["groundedness"] is None


@pytest.fixture
def index_and_questions(tmp_path):
    example_index(tmp_path)
    return example_questions(tmp_path / "q.jsonl", 4)


def test_eval_scores_groundedness_and_records_how(index_and_questions, tmp_path):
    records, rows = docqa.evaluate(index_and_questions, index="t", strategies=["rag"], model=FAKE_MODEL,
                                   out=tmp_path / "a", max_new_tokens=16)
    assert all(r["metrics"]["groundedness"] is not None for r in records if r["answer"].strip())
    assert rows[0]["groundedness"] is not None
    meta = json.loads((tmp_path / "a" / "summary.json").read_text())["meta"]
    assert meta["grounding"]["method"] == "overlap"
    on_disk = [json.loads(x) for x in (tmp_path / "a" / "results.jsonl").read_text().splitlines()]
    assert [r["metrics"]["groundedness"] for r in on_disk] == [r["metrics"]["groundedness"] for r in records]
    assert all("mrr" in r["metrics"] and "grounding" in r for r in on_disk if r["answer"].strip())
    records, _ = docqa.evaluate(index_and_questions, index="t", strategies=["rag"], model=FAKE_MODEL,
                                out=tmp_path / "b", max_new_tokens=16, grounding="judge")
    meta = json.loads((tmp_path / "b" / "summary.json").read_text())["meta"]
    assert meta["grounding"]["method"] == "judge" and "Statement:" in meta["grounding"]["prompt"]
    assert meta["grounding"]["model"]


def test_a_bad_grounding_method_or_judge_is_one_line(index_and_questions, tmp_path):
    with pytest.raises(ConfigError, match="--grounding takes overlap or judge"):
        docqa.evaluate(index_and_questions, index="t", strategies=["rag"], model=FAKE_MODEL, grounding="vibes")
    with pytest.raises(ConfigError, match="--judge-model 'no-such-model' could not be loaded"):
        docqa.evaluate(index_and_questions, index="t", strategies=["rag"], model=FAKE_MODEL, grounding="judge",
                       judge_model="no-such-model")
    with pytest.raises(ConfigError, match="--judge-model is for --grounding judge"):
        docqa.evaluate(index_and_questions, index="t", strategies=["rag"], model=FAKE_MODEL, judge_model="x")
