"""Where an answer is found in what its strategy read, and the figures it states that the text does not hold: the
finder on its own (any numbers, any formats), through `Index.evidence` for each kind of source, and in `docqa ask`."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import docqa
from docqa.cli.main import app
from docqa.eval.grounding import evidence
from tests.conftest import FAKE_MODEL, canned_eval, example_index, write_jsonl
from tests.fakes import CannedGenerator

PASSAGES = [
    "New employees serve a probation period of 90 days. After it, benefits start on the first of the month.",
    "The nightly hotel cap is 220 US dollars in most cities. Employees may work remotely up to three days a week.",
    "Revenue was 1,500.0 million dollars in 2014, down 3% from the year before.",
]


def test_each_sentence_points_to_the_passage_that_holds_it():
    found, missing = evidence("The probation period is 90 days. The hotel cap is 220 US dollars a night.", PASSAGES)
    assert [i for i, _ in found] == [0, 1] or [i for i, _ in found] == [1, 0]
    assert all(0 < share <= 1 for _, share in found) and missing == []
    assert evidence("", PASSAGES) == ([], []) and evidence("The cap is 220.", []) == ([], ["220"])


def test_figures_match_across_commas_decimals_and_written_out_numbers():
    _, missing = evidence("Revenue was $1500 million in 2014, down 3.0 %. Remote work: 3 days.", PASSAGES)
    assert missing == []  # 1,500.0 = 1500; 3% = 3.0; "three days" = 3
    _, missing = evidence("Revenue grew 15% to 1,725 million in 2015; the cap is 220.", PASSAGES)
    assert missing == ["15", "1,725", "2015"]  # as the answer writes them, in its order
    # A figure the question gave is not made up; digits glued to letters are labels ("Q4", "FY2019"), not figures.
    _, missing = evidence("In Q4 of 2018 revenue was 220, in FY2019 more.", PASSAGES, question="What about 2018?")
    assert missing == []
    assert evidence("It was 2018.", PASSAGES)[1] == ["2018"]


_figure = st.integers(min_value=0, max_value=10**7).map(str)


@settings(max_examples=200, deadline=None)
@given(st.lists(_figure, min_size=1, max_size=6), st.lists(_figure, max_size=6), st.booleans())
def test_a_figure_is_missing_exactly_when_no_passage_holds_it(stated, held, commas):
    def written(n: str) -> str:
        return f"{int(n):,}" if commas else n

    passages = [f"The figure was {written(n)} that year." for n in held]
    answer = " and ".join(f"{n} units" for n in stated) + "."
    _, missing = evidence(answer, passages)
    assert missing == [n for n in dict.fromkeys(stated) if n not in held]


def test_index_evidence_reads_rag_passages_and_the_chunks_of_whole_files(tmp_path):
    example_index(tmp_path)
    idx = docqa.open_index("t", model=FAKE_MODEL)
    q = "How long is the probation period for new employees?"
    rag = idx.ask(q, "rag")
    ev = idx.evidence(rag)
    assert ev.passages and ev.missing_figures == []
    assert ev.passages[0][0] in rag.sources  # one of the passages it read
    lc = idx.ask(q, "long-context")
    ev = idx.evidence(lc)
    where = ev.passages[0][0]
    assert where.file == "employee_handbook.md" and where.end_char - where.start_char < 2000  # a passage, not a file
    text = next(p.text for p in idx.corpus.store.documents() if p.file == where.file)
    assert "90 days" in text[where.start_char:where.end_char]
    made_up = docqa.Answer("The probation period is 45 days.", "long-context", lc.sources)
    assert idx.evidence(made_up).missing_figures == ["45"]
    assert idx.evidence(made_up, "Is it 45 days?").missing_figures == []
    for bad, says in ((dict(answer="45 days"), "it takes Answer"), (dict(answer=made_up, limit=0), "at least 1")):
        with pytest.raises(docqa.DocQAError, match=says):
            idx.evidence(**bad)


class MadeUp(CannedGenerator):
    canned = "The probation period is 45 days."


def test_ask_shows_where_the_answer_is_and_flags_a_figure_not_in_the_text(canned, monkeypatch):
    runner = CliRunner()
    r = runner.invoke(app, ["ask", "How long is the probation period?", "-i", "t", "-s", "long-context",
                            "--model", FAKE_MODEL])
    assert r.exit_code == 0, r.output
    assert "where the answer is found" in r.output and "does not contain" not in r.output
    monkeypatch.setattr(CannedGenerator, "canned", MadeUp.canned)  # every canned generator, however it is loaded
    for strategy in ("rag", "all"):
        r = runner.invoke(app, ["ask", "How long is the probation period?", "-i", "t", "--model", "canned:x", "-s",
                                strategy])
        assert r.exit_code == 0, r.output
        if strategy == "rag":
            assert "The answer states 45, which the text it read does not contain: check it." in r.output
        else:  # side by side, in each answer's cell (the table wraps it)
            assert r.output.count("not in the text") >= 2 and "read: 45" in r.output
    r = runner.invoke(app, ["ask", "How long is the probation period?", "-i", "t", "--model", "canned:x", "--json"])
    assert json.loads(r.stdout)["evidence"]["missing_figures"] == ["45"]


def test_eval_counts_the_answers_that_state_a_figure_from_nowhere(canned, tmp_path, monkeypatch):
    from docqa.eval.html_report import write_report

    rows = [{"id": "p", "question": "How long is the probation period?", "answers": ["90 days"]},
            {"id": "c", "question": "Is the hotel cap 45 dollars?", "answers": ["No"]}]
    monkeypatch.setattr(CannedGenerator, "canned", MadeUp.canned)
    records = canned_eval(canned, tmp_path, MadeUp.canned, rows, ["rag"])
    by_id = {r["id"]: r for r in records}
    assert by_id["p"]["missing_figures"] == ["45"] and by_id["p"]["metrics"]["unsupported_figures"] == 1.0
    assert by_id["c"]["missing_figures"] == [] and by_id["c"]["metrics"]["unsupported_figures"] == 0.0  # asked
    _, summary = docqa.evaluate(write_jsonl(tmp_path / "q2.jsonl", rows), index="t", strategies=["rag"],
                                model="canned:x", out=tmp_path / "run")
    assert summary[0]["unsupported_figures"] == 0.5
    page = write_report(tmp_path / "run").read_text()
    assert "figure not in text" in page and "states 45, which the text it read does not contain" in page
