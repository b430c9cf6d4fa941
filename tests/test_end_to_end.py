"""End to end with the real embedded models (SmolLM2-135M GGUF and all-MiniLM-L6-v2) on examples/docs.

Slow on CPU (about a minute): the GGUF is converted once per cache directory, then every question costs a few
seconds. Questions are the easy ones of examples/questions.jsonl: a short answer stated once in one document.
"""

import json
from pathlib import Path

import pytest

import docqa
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.slow

EASY = ["probation", "stipend", "x3-battery", "x3-price", "q3-margin", "learning-budget"]


@pytest.fixture(scope="module")
def real_index(tmp_path_factory):
    root = tmp_path_factory.mktemp("real-indexes")
    report = docqa.ingest(EXAMPLES, "examples", root=root)
    assert report.count("added") == 15 and report.count("failed") == 0
    assert report.truncated_chunks == 0  # every chunk fits all-MiniLM-L6-v2's 256 word pieces
    return docqa.open_index("examples", root=root)


def _questions():
    path = Path(__file__).resolve().parents[1] / "examples" / "questions.jsonl"
    return {q["id"]: q for q in map(json.loads, path.read_text().splitlines())}


def test_rag_answers_easy_questions_with_the_real_models(real_index):
    questions = _questions()
    hits = []
    for qid in EASY:
        q = questions[qid]
        answer = real_index.ask(q["question"], strategy="rag")
        assert answer.sources and answer.tokens["completion"] > 0
        assert answer.timings["prefill"] > 0 and answer.timings["generate"] > 0
        if any(gold.lower() in answer.text.lower() for gold in q["answers"]):
            hits.append(qid)
        # Retrieval must find the gold document for these one-document questions.
        assert q["sources"][0] in {s.file for s in answer.sources}, (qid, [s.file for s in answer.sources])
    assert len(hits) >= 3, f"only {hits} of {EASY} answered"


def test_batched_rag_gives_the_answers_of_one_at_a_time_with_the_real_models(real_index):
    questions = [q["question"] for q in _questions().values()][:8]
    alone = [real_index.ask(q, strategy="rag").text for q in questions]
    batched = real_index.ask_many(questions, "rag", batch_size=8)
    assert [a.text for a in batched] == alone
    assert all(a.details["batch"] == 8 for a in batched)
