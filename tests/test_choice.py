"""Multiple-choice question sets and L-Eval's `evaluation` field: each question scored by its own metric, the style,
the table and the verdict following it."""

import json

import pytest
from typer.testing import CliRunner

import docqa
from docqa.cli.main import app
from docqa.errors import BadQuestionFile
from docqa.eval.questions import leval_metric, load_jsonl, load_leval
from docqa.prompts import STYLES, system
from tests.conftest import FAKE_EMBEDDER, FAKE_MODEL, write_jsonl
from tests.fakes import ExtractiveGenerator

OPTIONS = ["ninety days", "six months", "one year"]


@pytest.fixture
def choice_file(tmp_path):
    rows = [
        {"id": "probation", "question": "How long is the probation period?", "options": OPTIONS, "answers": ["A"]},
        {"id": "hotel", "question": "What is the hotel cap?", "options": ["100 USD", "220 USD"], "answers": ["B"]},
        {"id": "leave", "question": "How long is parental leave?", "options": OPTIONS, "answers": ["six months"]},
    ]
    return write_jsonl(tmp_path / "mc.jsonl", rows)


def test_options_become_lettered_lines_and_answers_letters(choice_file, tmp_path):
    qs = load_jsonl(choice_file)
    assert qs[0].question == "How long is the probation period?\nA. ninety days\nB. six months\nC. one year"
    assert [q.answers for q in qs] == [["A"], ["B"], ["B"]]  # an option's text is read as its letter
    assert {q.metric for q in qs} == {"choice"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "Q?", "options": ["x", "y"], "answers": ["D"]}) + "\n")
    with pytest.raises(BadQuestionFile, match=r"bad.jsonl:1: answer 'D' is neither an option letter \(A, B\)"):
        load_jsonl(bad)
    bad.write_text(json.dumps({"question": "Q?", "options": ["x", ""], "answers": ["A"]}) + "\n")
    with pytest.raises(BadQuestionFile, match="bad.jsonl:1: field 'options.1' must not be empty"):
        load_jsonl(bad)


@pytest.mark.parametrize("evaluation, instruction, reference, metric", [
    ("f1", "What did revenue do?", "It rose 5 %.", "f1"),
    (None, "What did revenue do?", "It rose 5 %.", "f1"),  # files without the field: token F1, as before
    ("exam", "why did she go\nA. to study\nB. to earn money\nC. to paint", "B", "choice"),
    ("exam", "why did she go\nA. to study\nB. to earn money", "AB", "choice"),
    ("exam", "How many apples are left?", "18", "exact_match"),  # gsm100: an exam without options
    ("exam", "Sirius Three has no atmosphere, True or False?", "False", "true_false"),  # sci_fi
    ("exam", "Sirius Three has no atmosphere, True or False?", "True [fact: False]", "true_false"),
    ("exam", "What is the first topic we discussed?", "the true story of Sirius", "exact_match"),
    ("rouge", "Write a summary.", "A long summary.", "rouge_l"),
    ("LLM", "What is the outlook?", "Positive.", None),
    ("human", "What is the outlook?", "Positive.", None),
])
def test_leval_evaluation_field_picks_the_metric(evaluation, instruction, reference, metric):
    assert leval_metric(evaluation, instruction, reference) == metric


def test_leval_documents_judged_by_llm_are_left_out_and_said(tmp_path, monkeypatch):
    monkeypatch.setattr("docqa.embedder.DEFAULT_EMBEDDER", FAKE_EMBEDDER)  # L-Eval ingests with the default
    rows = [{"input": "Acme sold 12 rockets in May.", "instructions": ["How many rockets?"], "outputs": ["12"],
             "evaluation": "f1"},
            {"input": "Globex hired 7 engineers.", "instructions": ["Who?", "How many?"], "outputs": ["x", "7"],
             "evaluation": "LLM"}]
    path = tmp_path / "fin.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    assert [q.metric for _, _, qs in load_leval(path) for q in qs] == ["f1", None, None]
    said = []
    records, rows_ = docqa.evaluate(None, leval=path, strategies=["rag"], model=FAKE_MODEL, notice=said.append)
    assert [r["document"] for r in records] == ["fin-doc01"]
    assert docqa.list_indexes() == ["leval-fin-doc01"]  # the judged document is not even ingested
    assert said[0] == ("2 questions of fin.jsonl are left out: L-Eval judges their documents by an LLM or by people "
                       "(their 'evaluation' field), not by an automatic metric.")
    path.write_text(json.dumps(rows[1]))
    with pytest.raises(docqa.DocQAError, match="every document is judged by an LLM or people"):
        docqa.evaluate(None, leval=path, strategies=["rag"], model=FAKE_MODEL)


def test_leval_indexes_take_the_chunk_size_asked_for(tmp_path, monkeypatch):
    monkeypatch.setattr("docqa.embedder.DEFAULT_EMBEDDER", FAKE_EMBEDDER)
    path = tmp_path / "fin.jsonl"
    text = " ".join(f"Acme sold {i} rockets in month {i}." for i in range(60))
    path.write_text(json.dumps({"input": text, "instructions": ["How many rockets?"], "outputs": ["12"],
                                "evaluation": "f1"}))
    counts = {}
    for size in (None, 48):
        docqa.evaluate(None, leval=path, strategies=["rag"], model=FAKE_MODEL, chunk_tokens=size)
        idx = docqa.open_index("leval-fin-doc01")
        counts[size] = idx.manifest["chunks"]
        assert idx.manifest["chunk_tokens"] == (size or 160)
    assert counts[48] > counts[None]  # re-chunked, not only relabelled
    with pytest.raises(docqa.DocQAError, match="--chunk-tokens 48 sets the chunks of the indexes --leval builds"):
        docqa.evaluate(None, index="leval-fin-doc01", strategies=["rag"], model=FAKE_MODEL, chunk_tokens=48)


def test_a_choice_set_is_answered_and_scored_by_its_letters(indexed, choice_file, tmp_path, monkeypatch):
    # The fake answers "(B)." to a question with lettered options: right for two of the three questions.
    monkeypatch.setattr(ExtractiveGenerator, "_answer",
                        lambda self, prompt: "(B)." if "\nA. " in prompt else "I don't know.")
    records, rows = docqa.evaluate(choice_file, index="t", strategies=["rag", "long-context"], model=FAKE_MODEL,
                                   out=tmp_path / "o")
    assert json.loads((tmp_path / "o" / "run.json").read_text())["options"]["style"] == "choice"
    rag = {r["id"]: r for r in records if r["strategy"] == "rag"}
    assert {k: r["metrics"]["score"] for k, r in rag.items()} == {"probation": 0.0, "hotel": 1.0, "leave": 1.0}
    assert all(r["metrics"]["score"] == r["metrics"]["choice"] and r["metric"] == "choice" for r in records)
    assert rows[0]["metric"] == "choice" and rows[0]["score"] == pytest.approx(2 / 3)
    assert rows[0]["f1"] is not None  # the text metrics are still reported beside it
    r = CliRunner().invoke(app, ["eval", str(choice_file), "--index", "t", "--strategies", "rag,long-context",
                                 "--model", FAKE_MODEL], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "accuracy" in r.output and "Δaccuracy" in r.output and "letter" in r.output
    assert rows[0]["names_option"] == 1.0  # every answer named a letter, right or wrong
    assert "Verdict: Use rag: the most accurate (accuracy 66.7)" in " ".join(r.output.split())


def test_free_text_questions_get_no_choice_score(indexed, tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"question": "How long is the probation period?", "answers": ["90 days"]}) + "\n")
    records, rows = docqa.evaluate(path, index="t", strategies=["rag"], model=FAKE_MODEL)
    assert records[0]["metrics"]["choice"] is None and records[0]["metrics"]["score"] == records[0]["metrics"]["f1"]
    assert rows[0]["metric"] == "f1" and rows[0]["choice"] is None and rows[0]["names_option"] is None
    r = CliRunner().invoke(app, ["eval", str(path), "--index", "t", "--strategies", "rag", "--model", FAKE_MODEL],
                           env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "letter" not in r.output.split("contains, F1")[0]  # no letter column for free text


def test_the_choice_style_asks_for_letters_and_offers_no_refusal():
    assert "letter" in STYLES.get("choice").instruction
    assert "I don't know" not in system("choice") and "I don't know" in system("sentence")


def _leval_file(tmp_path):
    rows = [{"input": "Acme sold 12 rockets in May. Revenue was 4 million euros.",
             "instructions": ["How many rockets did Acme sell?", "What was the revenue?"],
             "outputs": ["Acme sold twelve rockets in May", "4 million"], "evaluation": "f1"}]
    path = tmp_path / "fin.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


@pytest.mark.parametrize("batch_size", [1, 2])
def test_leval_questions_ask_for_their_reference_length_as_leval_does(tmp_path, monkeypatch, batch_size):
    monkeypatch.setattr("docqa.embedder.DEFAULT_EMBEDDER", FAKE_EMBEDDER)  # L-Eval ingests with the default
    path = _leval_file(tmp_path)
    said: list[str] = []
    records, _ = docqa.evaluate(None, leval=path, strategies=["rag"], model=FAKE_MODEL, notice=said.append,
                                batch_size=batch_size, out=tmp_path / "o")
    gen = docqa.open_index("leval-fin-doc01", model=FAKE_MODEL).corpus.generator()
    asked = [p for p in gen.prompts if "Question:" in p][-2:]
    assert "How many rockets did Acme sell?\nAnswer in about 6 words." in asked[0]
    # A reference of a few words gets no hint: it is asked in the short style instead, though the set's style (median
    # reference 6 words) is sentence, and a batch never mixes the two.
    assert "What was the revenue?" in asked[1] and "Answer in about" not in asked[1]
    assert STYLES.get("short").instruction in asked[1] and STYLES.get("sentence").instruction in asked[0]
    assert [r["style"] for r in records] == ["sentence", "short"]
    assert any("L-Eval's protocol" in s for s in said)
    assert "1 question whose reference is a few words is asked in the short style (its length hint); the other 1 in " \
           "the sentence style." in said
    assert json.loads((tmp_path / "o" / "run.json").read_text())["length_hint"] is True
    records, _ = docqa.evaluate(None, leval=path, strategies=["rag"], model=FAKE_MODEL, length_hint=False,
                                batch_size=batch_size)
    last = [p for p in gen.prompts if "Question:" in p][-1]
    assert "Answer in about" not in last and STYLES.get("sentence").instruction in last  # no hints: the set's style
    assert [r["style"] for r in records] == ["sentence", "sentence"]
    # A style the user names holds for every question, hints or not.
    records, _ = docqa.evaluate(None, leval=path, strategies=["rag"], model=FAKE_MODEL, style="sentence",
                                batch_size=batch_size)
    assert [r["style"] for r in records] == ["sentence", "sentence"]


def test_length_hints_are_off_for_docqa_question_files_and_checked(indexed, choice_file, tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"question": "How long is the probation period?",
                                "answers": ["new employees are on probation for 90 days"]}) + "\n")
    docqa.evaluate(path, index="t", strategies=["rag"], model=FAKE_MODEL)
    gen = docqa.open_index("t", model=FAKE_MODEL).corpus.generator()
    assert "Answer in about" not in gen.prompts[-1]
    docqa.evaluate(path, index="t", strategies=["rag", "long-context", "summarize"], model=FAKE_MODEL,
                   length_hint=True)
    hinted = [p for p in gen.prompts if "about 8 words" in p]
    assert len(hinted) >= 3  # rag, long-context and summarize's answer all asked for it
    docqa.evaluate(choice_file, index="t", strategies=["rag"], model=FAKE_MODEL, length_hint=True)
    assert "Answer in about" not in gen.prompts[-1]  # multiple choice: a letter, no length
    idx = docqa.open_index("t", model=FAKE_MODEL)
    chunks = lambda a: [s.chunk_id for s in a.sources]  # noqa: E731
    for strategy in ("rag", "auto"):  # the question alone is what retrieval sees
        q = "How long is the probation period?"
        assert chunks(idx.ask(q, strategy, length_hint=40)) == chunks(idx.ask(q, strategy))
    with pytest.raises(docqa.DocQAError, match="--length-hint must be at least 1"):
        idx.ask("How long?", "rag", length_hint=0)


@pytest.mark.parametrize("batch_size", [1, 2])
def test_a_mixed_set_asks_each_question_in_its_own_kind_of_answer(indexed, tmp_path, batch_size):
    # Three multiple-choice questions and two with short references, interleaved: the choice questions are asked
    # for their letter, the others in the short style (the style of the set's free-text references), in one run.
    rows = [
        {"id": "p", "question": "How long is the probation period?", "options": OPTIONS, "answers": ["A"]},
        {"id": "h", "question": "What is the hotel cap?", "answers": ["220 USD"]},
        {"id": "l", "question": "How long is parental leave?", "options": OPTIONS, "answers": ["B"]},
        {"id": "c", "question": "What is the hotel cap in euros?", "options": ["100 EUR", "200 EUR"], "answers": ["B"]},
        {"id": "v", "question": "How many vacation days?", "answers": ["25 days"]},
    ]
    path = write_jsonl(tmp_path / "mixed.jsonl", rows)
    said: list[str] = []
    records, _ = docqa.evaluate(path, index="t", strategies=["rag"], model=FAKE_MODEL, batch_size=batch_size,
                                notice=said.append)
    assert {r["id"]: r["style"] for r in records} == {"p": "choice", "h": "short", "l": "choice", "c": "choice",
                                                        "v": "short"}
    gen = docqa.open_index("t", model=FAKE_MODEL).corpus.generator()
    asked = {q: p for p in gen.prompts for q in ("probation period", "hotel cap?", "vacation days") if q in p}
    assert STYLES.get("choice").instruction in asked["probation period"]
    assert STYLES.get("short").instruction in asked["hotel cap?"] and "letter" not in asked["vacation days"]
    assert said == ["3 multiple-choice questions are asked for the option's letter; the other 2 in the short style."]
    # A style the user names is every question's style; so is a variant's own.
    records, _ = docqa.evaluate(path, index="t", strategies=["rag", "rag:style=paragraph"], model=FAKE_MODEL,
                                style="sentence", batch_size=batch_size)
    assert {(r["strategy"], r["style"]) for r in records} == {("rag", "sentence"), ("rag:style=paragraph",
                                                                                    "paragraph")}
    records, _ = docqa.evaluate(path, index="t", strategies=["rag:style=auto"], model=FAKE_MODEL, style="sentence")
    assert [r["style"] for r in records] == ["choice", "sentence", "choice", "choice", "sentence"]


def test_the_set_style_follows_its_free_text_references_alone():
    from docqa.prompts import style_for_questions

    long = ["a reference of well over twenty five words " * 4]
    assert style_for_questions([["A"], ["B"], ["C"], long], ["choice", "choice", "choice", "f1"]) == "paragraph"
    assert style_for_questions([["A"], ["B"]], ["choice", "choice"]) == "choice"
    assert style_for_questions([["90 days"], long], ["f1", "f1"]) == "paragraph"  # median of two: the longer
    assert style_for_questions([], []) == "sentence"


def test_leval_documents_without_text_are_left_out_and_said(tmp_path, monkeypatch):
    # GSM-100's records have an empty input: each instruction carries its own few-shot material, so docqa has no
    # document to read. Such documents are left out with a notice; a file of nothing else is one clear error.
    monkeypatch.setattr("docqa.embedder.DEFAULT_EMBEDDER", FAKE_EMBEDDER)
    gsm = {"input": "", "instructions": ["Question: 2 + 2?\nLet's think step by step\n"], "outputs": ["4"],
           "evaluation": "exam"}
    doc = {"input": "Acme sold 12 rockets in May.", "instructions": ["How many rockets?"], "outputs": ["12"],
           "evaluation": "f1"}
    path = write_jsonl(tmp_path / "mixed.jsonl", [gsm, doc])
    said: list[str] = []
    records, _ = docqa.evaluate(None, leval=path, strategies=["rag"], model=FAKE_MODEL, notice=said.append)
    assert [r["document"] for r in records] == ["mixed-doc02"]
    assert "1 questions of mixed.jsonl are left out: their documents are empty" in said[0]
    path = write_jsonl(tmp_path / "gsm100.jsonl", [gsm, gsm])
    r = CliRunner().invoke(app, ["eval", "--leval", str(path), "--model", FAKE_MODEL])
    assert r.exit_code == 1 and "its documents are empty ('input' is blank)" in " ".join(r.output.split())


def test_a_true_false_set_is_scored_by_its_verdicts(tmp_path, monkeypatch):
    monkeypatch.setattr("docqa.embedder.DEFAULT_EMBEDDER", FAKE_EMBEDDER)
    doc = {"input": "The crew flew nine light years to Sirius. Thirteen years passed on Earth.",
           "instructions": ["Thirteen years passed on Earth, True or False?"], "outputs": ["True"],
           "evaluation": "exam"}
    said: list[str] = []
    records, rows = docqa.evaluate(None, leval=write_jsonl(tmp_path / "sci_fi.jsonl", [doc]), strategies=["rag"],
                                   model=FAKE_MODEL, notice=said.append)
    rec = records[0]
    assert rec["metric"] == "true_false" and rec["style"] == "short"
    assert rec["metrics"]["score"] == rec["metrics"]["true_false"] is not None
    assert rec["metrics"]["choice"] is None and rec["metrics"]["names_option"] is None
    assert not any("Answer in about" in s or "L-Eval's protocol" in s for s in said)  # no hint for a verdict
