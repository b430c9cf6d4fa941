"""Inputs as users have them: a messy shared folder, malformed question files (fuzzed), bad arguments, errored
eval records, resumed runs with other settings. Every case ends in a result or one DocQAError line — never a
traceback."""

from __future__ import annotations

import gzip
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import docqa
from docqa.cli.main import app
from docqa.errors import BadQuestionFile, ConfigError, IngestError
from docqa.eval.questions import Question, load_jsonl, load_leval
from docqa.eval.report import summarize
from tests.conftest import FAKE_EMBEDDER, FAKE_MODEL
from tests.malformed import make_messy_folder

# ------------------------------------------------------------------------------------------------ a messy folder


def test_a_messy_folder_indexes_the_good_files_and_lists_every_bad_one(tmp_path):
    expected = make_messy_folder(tmp_path / "drive")
    report = docqa.ingest(tmp_path / "drive", "t", embedder=FAKE_EMBEDDER, model=FAKE_MODEL, max_file_mb=1)
    got = {f.file: f for f in report.files}
    assert set(got) == set(expected), set(got) ^ set(expected)
    for name, kind in expected.items():
        f = got[name]
        if kind in ("good", "tolerated"):
            assert f.status == "added", (name, f)
        else:
            assert f.status in ("failed", "skipped") and f.reason, (name, f)
    assert "hidden" not in " ".join(got)  # hidden folders are not documents
    reasons = {n: got[n].reason for n in got}
    assert "FIFO" in reasons["pipe.txt"] and "broken symlink" in reasons["dangling.txt"]
    assert "loop" in reasons["loop_a.txt"] and "loop" in reasons["sub/back_to_top"]
    assert "binary" in reasons["garbage.txt"] and "not a PDF" in reasons["garbage.pdf"]
    assert "limit" in reasons["big_one_line.txt"] and "empty file" == reasons["empty.txt"]
    store = docqa.open_index("t", model=FAKE_MODEL).corpus.store
    text = " ".join(d.text for d in store.documents())
    assert "Café" in text and "parking permit" in text  # latin-1 and UTF-16 text decoded, not mangled
    assert "legacy/caf\ufffd menu.txt" in store.file_names()


def test_the_cli_lists_bad_files_in_a_table_and_succeeds(tmp_path):
    make_messy_folder(tmp_path / "drive")
    r = CliRunner().invoke(app, ["ingest", str(tmp_path / "drive"), "--index", "t", "--embedder", FAKE_EMBEDDER,
                                 "--model", FAKE_MODEL, "--max-file-mb", "1"])
    assert r.exit_code == 0, r.output
    assert "Not indexed" in r.output and "[bold]markup[/] name.txt" in r.output and "Traceback" not in r.output


def test_a_folder_of_only_bad_files_is_one_error_naming_them(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "a.pdf").write_bytes(b"not a pdf")
    (d / "b.txt").write_bytes(b"\x00\x01\x02" * 100)
    with pytest.raises(IngestError, match=r"a\.pdf: not a PDF.*b\.txt: binary"):
        docqa.ingest(d, "t", embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    r = CliRunner().invoke(app, ["ingest", str(d), "--index", "t", "--embedder", FAKE_EMBEDDER, "--model",
                                 FAKE_MODEL])
    assert r.exit_code == 1 and "Traceback" not in r.output


def test_a_long_one_line_file_is_split_in_bounded_windows(tmp_path):
    from docqa.index.ingest import _SPLIT_WINDOW

    d = tmp_path / "d"
    d.mkdir()
    words = " ".join(f"w{i}" for i in range(_SPLIT_WINDOW // 3))  # ~2.3 windows on one line
    (d / "log.txt").write_text(words)
    report = docqa.ingest(d, "t", embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    store = docqa.open_index("t", model=FAKE_MODEL).corpus.store
    text = store.documents()[0].text
    for c in store.chunks():
        assert text[c.start_char : c.end_char] == c.text
    assert report.chunks_total > 100


# ------------------------------------------------------------------------------------------- question files

GOOD = {"question": "What is the cap?", "answers": ["180 euros"], "sources": ["a.md"], "id": "q1"}


def _check_loader(loader, path):
    """The contract under fuzzing: a valid result or a BadQuestionFile, nothing else."""
    try:
        out = loader(path)
    except BadQuestionFile as e:  # one line, naming the file
        assert "\n" not in str(e) and path.name in str(e), str(e)
        return None
    assert out
    return out


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def question_files(draw) -> bytes:
    """Valid files, then mutated: wrong field types, byte edits, other encodings, gzip, binary, deep nesting,
    huge numbers, line separators inside strings."""
    rows = [dict(GOOD, id=f"q{i}") for i in range(draw(st.integers(1, 3)))]
    kind = draw(st.sampled_from(["field", "bytes", "encoding", "gzip", "binary", "deep", "bignum", "separators",
                                 "leval"]))
    if kind == "field":
        rows[0][draw(st.sampled_from(["question", "answers", "sources", "id", "input", "instructions",
                                      "outputs"]))] = draw(json_values)
    if kind == "leval":
        rows = [{"input": draw(st.text(max_size=30) | json_values), "instructions": draw(json_values),
                 "outputs": draw(json_values)}]
    text = "\n".join(json.dumps(r, ensure_ascii=draw(st.booleans())) for r in rows) + "\n"
    if kind == "deep":
        depth = draw(st.integers(100, 6000))
        text = '{"question": ' + "[" * depth + "]" * depth + "}\n"
    if kind == "bignum":
        text = '{"question": "q", "id": ' + "9" * draw(st.integers(4000, 6000)) + "}\n"
    if kind == "separators":
        text = json.dumps({"question": "a\u2028b\u0085c\x0cd?", "answers": ["x\u2029y"]}, ensure_ascii=False) + "\n"
    data = text.encode("utf-8")
    if kind == "encoding":
        enc = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252", "utf-8-sig"]))
        data = text.replace("cap", "cäp").encode(enc, errors="replace")
    if kind == "bytes":
        for _ in range(draw(st.integers(1, 4))):
            pos = draw(st.integers(0, len(data)))
            byte = bytes([draw(st.integers(0, 255))])
            data = data[:pos] + byte + data[pos + draw(st.integers(0, 1)):]
    if kind == "gzip":
        data = gzip.compress(data)
        if draw(st.booleans()):
            data = data[: draw(st.integers(0, len(data)))]
    if kind == "binary":
        data = draw(st.binary(max_size=300))
    return data


@settings(max_examples=1200, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=question_files())
def test_fuzzed_question_files_give_questions_or_one_clear_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("q") / "questions.jsonl"
    path.write_bytes(data)
    for loader in (load_jsonl, load_leval):
        out = _check_loader(loader, path)
        if out and loader is load_jsonl:
            assert all(isinstance(q, Question) and isinstance(q.question, str) and q.question.strip() for q in out)
        if out and loader is load_leval:
            assert all(isinstance(text, str) and all(isinstance(q.question, str) for q in qs) for _, text, qs in out)


@pytest.mark.parametrize("line, message", [
    ('{"question": 42, "answers": []}', "field 'question'"),
    ('{"question": null}', "field 'question'"),
    ('{"question": ["a"]}', "field 'question'"),
    ('{"question": {"a": 1}}', "field 'question'"),
    ('{"question": "   "}', "must not be empty"),
    ('{"question": "\\u001f"}', "must not be empty"),  # blank to Python (found by the fuzzer)
    ('{"question": "q", "sources": "a.md"}', "field 'sources'"),
    ('{"question": "q", "sources": [1]}', "field 'sources.0'"),
    ('{"question": "q", "answers": {"a": 1}}', "field 'answers"),
    ('["question"]', "the record is not a JSON object (got list)"),
    ('{"question": "q"', "not valid JSON"),
    ('{"question": "q", "id": ' + "9" * 5000 + "}", "unreadable JSON value"),
    ('{"question": ' + "[" * 5000 + "]" * 5000 + "}", "nested too deeply"),
    ('{"q": "How many?", "answer": "3"}', "no field 'question' (the record has 'q', 'answer')"),
    ('{}', "no field 'question' (the record has nothing)"),
])
def test_each_bad_record_names_its_line_and_field(tmp_path, line, message):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + line + "\n")
    with pytest.raises(BadQuestionFile, match=rf"q\.jsonl:2: .*{message}".replace("(", r"\(").replace(")", r"\)")):
        load_jsonl(path)


def test_line_separators_inside_strings_are_not_line_breaks(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"question": "a\u2028b\u0085c?", "answers": ["x"]}, ensure_ascii=False) + "\r\n")
    assert load_jsonl(path)[0].question == "a\u2028b\u0085c?"


def test_encodings_gzip_and_duplicates(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_bytes((json.dumps(GOOD, ensure_ascii=False) + "\n").encode("utf-16"))
    assert load_jsonl(path)[0].answers == ["180 euros"]
    path.write_bytes(gzip.compress((json.dumps(GOOD) + "\n").encode()))
    assert load_jsonl(path)[0].id == "q1"
    path.write_bytes("{\"question\": \"caf\xe9?\"}\n".encode("latin-1"))
    with pytest.raises(BadQuestionFile, match=r"q\.jsonl:1: not UTF-8 \(byte 0xe9 at column 18\)\. Save the file as "
                                              r"UTF-8\.$"):
        load_jsonl(path)
    sheet = tmp_path / "q.csv"  # a spreadsheet's export in Windows-1252: refused, with how to save it as UTF-8
    sheet.write_bytes("question,answer\r\nCombien de jours de cong\xe9s ?,20\r\n".encode("cp1252"))
    with pytest.raises(BadQuestionFile, match=r"q\.csv:2: not UTF-8 .*in Excel: Save As → 'CSV UTF-8"):
        load_jsonl(sheet)
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(GOOD) + "\n")
    with pytest.raises(BadQuestionFile, match="id 'q1' is also the id of line 1"):
        load_jsonl(path)


def test_leval_records_need_string_inputs_and_paired_references(tmp_path):
    path = tmp_path / "fin.jsonl"
    path.write_text(json.dumps({"input": 5, "instructions": ["q"], "outputs": ["a"]}) + "\n")
    with pytest.raises(BadQuestionFile, match=r"fin\.jsonl:1: field 'input'"):
        load_leval(path)
    path.write_text(json.dumps({"input": "doc", "instructions": ["q1", "q2"], "outputs": ["a"]}) + "\n")
    with pytest.raises(BadQuestionFile, match=r"fin\.jsonl:1: the record has 2 instructions but 1 outputs \(one "):
        load_leval(path)


def test_two_leval_files_never_share_ids_or_indexes(tmp_path):
    rows = [{"input": "Acme sold 12 rockets.", "instructions": ["How many rockets?"], "outputs": ["12"]}]
    a, b = tmp_path / "financial_qa.jsonl", tmp_path / "legal contracts.jsonl"
    for p in (a, b):
        p.write_text(json.dumps(rows[0]) + "\n")
    ids_a = {q.id for _, _, qs in load_leval(a) for q in qs}
    ids_b = {q.id for _, _, qs in load_leval(b) for q in qs}
    assert ids_a == {"financial_qa-doc01-q01"} and ids_b == {"legal-contracts-doc01-q01"}


@pytest.mark.parametrize("content", [b"\x00\xff\xfe garbage", b'{"question": 1}\n', b"", b"[1,2,3]\n",
                                     gzip.compress(b"not json\n")])
def test_eval_cli_answers_a_bad_question_file_in_one_line(indexed_t, tmp_path, content):
    path = tmp_path / "q.jsonl"
    path.write_bytes(content)
    for args in (["eval", str(path), "--index", "t"], ["eval", "--leval", str(path)]):
        r = CliRunner().invoke(app, [*args, "--model", FAKE_MODEL, "--strategies", "rag"])
        assert r.exit_code == 1 and "Traceback" not in r.output and r.output.count("error:") == 1, r.output


@pytest.fixture
def indexed_t(small_docs):
    docqa.ingest(small_docs, "t", embedder=FAKE_EMBEDDER, model=FAKE_MODEL)


# ------------------------------------------------------------------------------------------------ eval records

def _rec(strategy, latency, error=None, tokens=100):
    return {"id": f"q{latency}", "strategy": strategy, "question": "q", "answer": "" if error else "a",
            "references": ["a"], "gold_sources": [], "sources": [],
            "metrics": {"exact_match": 0.0 if error else 1.0, "f1": 0.0 if error else 1.0, "rouge_l": 1.0,
                        "contains": 1.0, "refusal": None, "false_refusal": 0.0, "recall_at_k": None},
            "latency_s": latency, "ttft_s": latency, "prompt_tokens": 0 if error else tokens,
            "completion_tokens": 0 if error else 5, "calls": 0 if error else 1, "peak_rss_mb": 10.0,
            "route": None, "rope": None, "error": error, "document": None}


def test_error_records_are_reported_apart_and_left_out_of_latency_and_tokens():
    records = [_rec("rag", 2.0), _rec("rag", 4.0), _rec("rag", 0.01, error="corpus too long")]
    row = summarize(records)[0]
    assert row["errors"] == 1 and row["error_rate"] == pytest.approx(1 / 3)
    assert row["latency_p50_s"] == 3.0 and row["prompt_tokens_mean"] == 100 and row["calls_mean"] == 1
    assert row["f1"] == pytest.approx(2 / 3)  # an error still counts as a wrong answer


def test_resume_refuses_other_settings_and_names_them(indexed_t, tmp_path):
    q = tmp_path / "q.jsonl"
    q.write_text(json.dumps(GOOD) + "\n")
    out = tmp_path / "run"
    docqa.evaluate(q, index="t", strategies=["rag"], out=out, model=FAKE_MODEL, top_k=4)
    with pytest.raises(ConfigError, match=r"other settings \(options: .*top_k.*4.*then.*2.*now"):
        docqa.evaluate(q, index="t", strategies=["rag"], out=out, model=FAKE_MODEL, top_k=2, resume=True)
    records, _ = docqa.evaluate(q, index="t", strategies=["rag"], out=out, model=FAKE_MODEL, top_k=4, resume=True)
    assert len(records) == 1


def test_resume_extends_a_run_to_more_questions_but_never_fewer(indexed_t, tmp_path):
    q = tmp_path / "q.jsonl"
    q.write_text("".join(json.dumps({**GOOD, "id": f"q{i}"}) + "\n" for i in range(3)))
    out = tmp_path / "run"
    first, _ = docqa.evaluate(q, index="t", strategies=["rag"], out=out, model=FAKE_MODEL, limit=1)
    records, _ = docqa.evaluate(q, index="t", strategies=["rag"], out=out, model=FAKE_MODEL, limit=2, resume=True)
    assert [r["id"] for r in records] == ["q0", "q1"]
    assert records[0]["latency_s"] == first[0]["latency_s"]  # kept, not asked again
    with pytest.raises(ConfigError, match=r"limit: 2 then, 1 now.*more questions, not fewer"):
        docqa.evaluate(q, index="t", strategies=["rag"], out=out, model=FAKE_MODEL, limit=1, resume=True)
    records, _ = docqa.evaluate(q, index="t", strategies=["rag"], out=out, model=FAKE_MODEL, resume=True)
    assert [r["id"] for r in records] == ["q0", "q1", "q2"]
    assert [json.loads(line)["id"] for line in (out / "results.jsonl").read_text().splitlines()] == ["q0", "q1", "q2"]


def test_bad_arguments_are_one_line_errors(indexed_t, tmp_path):
    runner = CliRunner()
    for args in (["ask", "", "--index", "t"], ["ask", "q?", "--index", "t", "--top-k", "0"],
                 ["ask", "x" * 120_000, "--index", "t"], ["ask", "q?", "--index", "t", "-s", "nope"],
                 ["ask", "q?", "--index", "t", "-s", "summarize", "--max-calls", "0"],
                 ["ask", "q?", "--index", "t", "--rope", "bogus", "-s", "lc"],
                 ["eval", str(tmp_path / "missing.jsonl"), "--index", "t"]):
        t0 = time.perf_counter()
        r = runner.invoke(app, [*args, "--model", FAKE_MODEL])
        assert r.exit_code == 1 and "Traceback" not in r.output and r.output.count("error:") == 1, (args, r.output)
        assert time.perf_counter() - t0 < 10



@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=question_files())
def test_fuzzed_csv_question_files_give_questions_or_one_clear_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("q") / "questions.csv"
    path.write_bytes(data)
    out = _check_loader(load_jsonl, path)
    assert out is None or all(isinstance(q.question, str) and q.question.strip() for q in out)


_cell = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="|\0"), min_size=1, max_size=12) \
    .map(str.strip).filter(bool)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(_cell, st.lists(_cell, max_size=3), st.lists(_cell, max_size=2)), min_size=1, max_size=5))
def test_jsonl_json_array_and_csv_hold_the_same_questions(tmp_path_factory, rows):
    import csv
    import io

    folder = tmp_path_factory.mktemp("fmt")
    records = [{"id": f"q{i}", "question": q, "answers": a, "sources": s} for i, (q, a, s) in enumerate(rows)]
    (folder / "q.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "q.json").write_text(json.dumps(records, indent=2))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["id", "question", "answers", "sources"])
    writer.writerows([r["id"], r["question"], "|".join(r["answers"]), "|".join(r["sources"])] for r in records)
    (folder / "q.csv").write_text(buf.getvalue(), newline="")
    want = load_jsonl(folder / "q.jsonl")
    assert load_jsonl(folder / "q.json") == want and load_jsonl(folder / "q.csv") == want


@pytest.mark.parametrize("name, text, message", [
    ("q.csv", 'id,q,answers\n1,x,y\n', r"q\.csv:1: no 'question' column in the header"),
    ("q.csv", 'id,question,answers\n1,x,y,z\n', r"q\.csv:2: 4 fields under a header of 3"),
    ("q.csv", 'id,question,answers\n1,"unclosed,x\n', r"q\.csv:2: not valid CSV"),
    ("q.csv", 'id,question,answers\n1,   ,y\n', r"q\.csv:2: field 'question' must not be empty"),
    ("q.csv", 'question,options,answers\nWhich?,x|y,C\n', r"q\.csv:2: answer 'C' is neither an option letter"),
    ("q.json", '[{"question": "ok"}, {"question": 5}]', r"q\.json item 2: field 'question'"),
    ("q.json", '[1]', r"q\.json item 1: the record is not a JSON object \(got int\)"),
    ("q.json", '[{"question": "ok",}]', r"q\.json:1: not valid JSON .* one JSON array of objects"),
])
def test_csv_and_json_array_errors_name_the_row(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(BadQuestionFile, match=message):
        load_jsonl(path)


def test_csv_from_a_spreadsheet_with_semicolons_and_capitalized_headers(tmp_path):
    # Spreadsheets in locales whose decimal mark is a comma write CSV with ';' between fields; headers are often
    # capitalized. Both read as docqa's CSV; a ';' inside a comma-separated file's field stays text.
    path = tmp_path / "q.csv"
    path.write_text('\ufeffQuestion; Answers\r\nWhat is the cap?;220 USD|220\r\n"How long; roughly?";90 days\r\n')
    assert [(q.question, q.answers) for q in load_jsonl(path)] == [("What is the cap?", ["220 USD", "220"]),
                                                                    ("How long; roughly?", ["90 days"])]
    path.write_text('question,answers\nHow long; roughly?,90 days\n')
    assert [(q.question, q.answers) for q in load_jsonl(path)] == [("How long; roughly?", ["90 days"])]


def test_references_under_other_datasets_names_are_read_as_answers(tmp_path):
    """SQuAD / HotpotQA write "answer", RAGAS "ground_truth" or "reference": unread, every such question would count
    as one the corpus cannot answer, and every right answer as a false one."""
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"question": "a?", "answer": "45 days"},
        {"question": "b?", "ground_truth": "7 dollars"},
        {"question": "c?", "reference": ["x", "y"]},
        {"question": "d?", "answers": {"text": ["z"], "answer_start": [3]}},  # SQuAD's own shape
        {"question": "e?", "answers": ["kept"], "answer": "ignored"},  # "answers" wins; the rest are extra keys
        {"question": "f?"},  # still a question the corpus cannot answer
    ]) + "\n")
    assert [q.answers for q in load_jsonl(path)] == [["45 days"], ["7 dollars"], ["x", "y"], ["z"], ["kept"], []]
    path = tmp_path / "q.csv"
    path.write_text("question,references\nHow long?,45 days|forty-five days\n")
    assert [q.answers for q in load_jsonl(path)] == [["45 days", "forty-five days"]]
    path = tmp_path / "two.jsonl"
    path.write_text(json.dumps({"question": "q?", "answer": "a", "ground_truth": "b"}) + "\n")
    with pytest.raises(BadQuestionFile, match=r"two\.jsonl:1: .*both 'answer' and 'ground_truth'; give them once"):
        load_jsonl(path)


def test_swapped_question_formats_say_which_flag_to_use(tmp_path):
    leval = tmp_path / "fin.jsonl"
    leval.write_text(json.dumps({"input": "doc", "instructions": ["q"], "outputs": ["a"]}) + "\n")
    with pytest.raises(BadQuestionFile, match=r"fin\.jsonl:1: an L-Eval document .* docqa eval --leval "):
        load_jsonl(leval)
    ours = tmp_path / "q.jsonl"
    ours.write_text(json.dumps({"question": "q?", "answers": ["a"]}) + "\n")
    with pytest.raises(BadQuestionFile, match=r"q\.jsonl:1: a docqa question .* without --leval"):
        load_leval(ours)


def test_an_out_folder_that_cannot_be_one_is_a_clear_line(tmp_path, indexed):
    (tmp_path / "afile").write_text("x")
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question": "How long is probation?", "answers": ["90 days"]}) + "\n")
    for out, message in ((tmp_path / "afile", "is a file. Give a folder"),
                         ("/proc/docqa-nope/x", "Cannot create the --out folder")):
        for args in (["eval", str(questions), "--index", "t", "--model", FAKE_MODEL, "--out", str(out)],
                     ["bench", "rope", "--lengths", "2k", "--model", FAKE_MODEL, "--out", str(out)]):
            r = CliRunner().invoke(app, args)
            assert r.exit_code == 1 and message in " ".join(r.output.split()), (args, r.output)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_an_index_name_is_valid_or_refused_with_a_valid_suggestion(name):
    from docqa.index.versions import valid_name

    try:
        assert valid_name(name) == name
    except ConfigError as e:
        suggested = str(e).rsplit("--index ", 1)[1]
        assert valid_name(suggested) == suggested  # the name the message offers is itself accepted


@pytest.mark.parametrize("name, suggested", [("my docs", "my-docs"), ("Ünïcode", "Unicode"), (".hidden", "hidden"),
                                             ("///", "handbook"), ("a" * 101, "a" * 100)])
def test_a_bad_index_name_gets_a_close_valid_one(name, suggested):
    from docqa.index.versions import valid_name

    with pytest.raises(ConfigError, match=rf"e\.g\. --index {suggested}$"):
        valid_name(name)


@pytest.mark.parametrize("options, message", [
    ({"max_new_tokens": 2.5}, r"max_new_tokens=2\.5 is not valid \(Input should be a valid integer"),
    ({"top_k": True}, r"top_k=True is not valid \(a number is expected"),
    ({"rope": 5}, r"rope=5 is not valid \(Input should be a valid string"),
    ({"top_k": "many"}, r"top_k='many' is not valid"),
    ({"route_threshold": "high"}, r"route_threshold='high' is not valid"),
])
def test_library_options_of_the_wrong_type_are_one_config_error(options, message):
    from docqa.api.indexes import make_config

    with pytest.raises(ConfigError, match=message):
        make_config(**options)


def test_library_options_are_read_as_the_cli_reads_them():
    from docqa.api.indexes import make_config

    cfg = make_config(top_k="8", rope_factor=2, truncate="true", kv_budget="1GiB")
    assert (cfg.top_k, cfg.rope_factor, cfg.truncate, cfg.kv_budget) == (8, 2.0, True, "1GiB")


@pytest.mark.parametrize("question, message", [(123, "must be text \\(str\\), got int"),
                                               (b"q?", "is bytes; decode it"), (["q?"], "got list")])
def test_a_question_that_is_not_text_is_one_config_error(question, message):
    from docqa.strategies.base import AskConfig

    with pytest.raises(ConfigError, match=message):
        AskConfig().validate(question)
