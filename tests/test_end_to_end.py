"""End to end with the real embedded models (SmolLM2-135M, Qwen2.5-Coder-1.5B, all-MiniLM-L6-v2) on examples/docs.

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
def real_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("real-indexes")
    report = docqa.ingest(EXAMPLES, "examples", root=root)
    assert report.count("added") == 15 and report.count("failed") == 0
    assert report.truncated_chunks == 0  # every chunk fits all-MiniLM-L6-v2's 256 word pieces
    return root


@pytest.fixture(scope="module")
def real_index(real_root):
    return docqa.open_index("examples", root=real_root)


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


def test_a_real_instruct_model_reads_the_answer_through_every_reading_strategy(real_root):
    """The default reader (Qwen2.5-Coder-1.5B on llama.cpp), with the demo's bounds: the probation period, stated once
    in the employee handbook, comes back right through rag, long-context (the 8 k most relevant tokens: the whole
    corpus takes many minutes on 2 cores) and summarize (the two best 4 k groups). SmolLM2 answers long-context and
    summarize wrongly here; so did the 0.5 B on long-context ("24 days" from a 6.9 k-token prompt that held the
    handbook), which is why this test pays for the 1.5 B (a few minutes)."""
    idx = docqa.open_index("examples", root=real_root, model="qwen2.5-coder-1.5b")
    question = _questions()["probation"]["question"]
    options = {"rag": {}, "long-context": {"max_context": 8192, "truncate": True},
               "summarize": {"summary_window": 4096, "map_top_k": 2}}
    wrong = {}
    for strategy, opts in options.items():
        answer = idx.ask(question, strategy=strategy, **opts)
        assert answer.model == "llama.cpp:qwen2.5-coder-1.5b"
        if "90" not in answer.text:
            wrong[strategy] = answer.text
    assert not wrong, wrong
