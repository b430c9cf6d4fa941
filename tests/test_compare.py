"""docqa compare: two runs, the same questions, paired; what makes them comparable is recorded and checked."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import docqa
from docqa.cli.main import app
from docqa.errors import ConfigError
from docqa.eval.compare import compare_runs
from tests.conftest import FAKE_MODEL, example_index, example_questions


@pytest.fixture
def two_runs(tmp_path):
    example_index(tmp_path)
    q = example_questions(tmp_path / "q.jsonl", 6)
    docqa.evaluate(q, index="t", strategies=["rag", "long-context"], model=FAKE_MODEL, out=tmp_path / "a",
                   max_new_tokens=16)
    docqa.evaluate(q, index="t", strategies=["rag"], model=FAKE_MODEL, out=tmp_path / "b", max_new_tokens=16,
                   top_k=2)
    return tmp_path / "a", tmp_path / "b", q


def test_a_run_records_what_makes_it_comparable(two_runs):
    a, _, q = two_runs
    meta = json.loads((a / "summary.json").read_text())["meta"]
    import hashlib

    assert meta["questions_sha256"] == hashlib.sha256(q.read_bytes()).hexdigest()
    assert len(meta["corpus"]["sha256"]) == 64 and meta["corpus"]["indexes"]["t"]["content_id"]
    assert meta["docqa_version"] == docqa.__version__ and meta["settings"]["ask"]["top_k"] == 4
    assert meta["settings"]["generator"]["model"] == FAKE_MODEL
    assert meta["settings"]["generator"]["no_repeat_ngram"] == 4  # the ban in effect, not "left to the model"


def test_compare_pairs_the_same_questions(two_runs):
    a, b, _ = two_runs
    c = compare_runs(a, b)
    assert [(x, y) for x, y, _ in c.rows] == [("rag", "rag")] and c.rows[0][2].n == 6
    assert c.differences == ["the options differs between the runs"]  # top_k 4 then 2
    rec_a = {r["id"]: r for r in map(json.loads, (a / "results.jsonl").read_text().splitlines())
             if r["strategy"] == "rag"}
    rec_b = {r["id"]: r for r in map(json.loads, (b / "results.jsonl").read_text().splitlines())}
    diff = sum(100 * (rec_b[k]["metrics"]["score"] - rec_a[k]["metrics"]["score"]) for k in rec_a) / 6
    assert c.rows[0][2].diff == pytest.approx(diff)
    cross = compare_runs(a, b, "long-context:rag")
    assert cross.rows[0][:2] == ("long-context", "rag")
    with pytest.raises(ConfigError, match="run A has rag, long-context; run B has rag"):
        compare_runs(a, b, "summarize")


def test_compare_on_the_command_line(two_runs, tmp_path):
    a, b, _ = two_runs
    r = CliRunner().invoke(app, ["compare", str(a), str(b)], env={"COLUMNS": "160"})
    assert r.exit_code == 0, r.output
    assert "paired over the same questions" in r.output and "options differs" in r.output
    r = CliRunner().invoke(app, ["compare", str(a), str(tmp_path / "nothing")])
    assert r.exit_code == 1 and r.output.count("error:") == 1 and "is not a docqa eval run" in r.output
