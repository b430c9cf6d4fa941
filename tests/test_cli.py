import json
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from docqa.cli.main import app
from tests.conftest import FAKE_EMBEDDER, FAKE_MODEL

runner = CliRunner()


def _ingest(path):
    return runner.invoke(app, ["ingest", str(path), "--index", "t", "--embedder", FAKE_EMBEDDER, "--model", FAKE_MODEL])


def test_ingest_then_ask_json(small_docs):
    r = _ingest(small_docs)
    assert r.exit_code == 0, r.output
    assert "3 added" in r.output
    r = runner.invoke(app, ["ask", "What is the nightly hotel cap in most cities?", "--index", "t", "--model",
                            FAKE_MODEL, "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert {"answer", "strategy", "sources", "timings", "tokens"} <= set(data)
    assert data["strategy"] == "rag" and "220" in data["answer"]
    assert data["sources"][0]["file"] == "travel_and_expense_policy.docx"
    assert {"embed", "search", "prefill", "generate", "total"} <= set(data["timings"])
    assert data["tokens"]["prompt"] > 0 and data["tokens"]["completion"] > 0


def test_ask_renders_answer_sources_and_timings(small_docs):
    _ingest(small_docs)
    r = runner.invoke(app, ["ask", "How long is the probation period for new employees?", "--index", "t",
                            "--model", FAKE_MODEL])
    assert r.exit_code == 0, r.output
    assert "90 days" in r.output and "employee_handbook.md" in r.output and "prefill" in r.output


def test_ask_reads_piped_questions_one_per_line_loading_the_models_once(small_docs):
    # Without a question argument, ask answers the lines of stdin (typed at a prompt in a terminal); the models load
    # once for all of them, and a question that fails is one red line while the others are still answered.
    _ingest(small_docs)
    lines = "How long is the probation period for new employees?\n\n   \nWhat is the nightly hotel cap?\n"
    r = runner.invoke(app, ["ask", "--index", "t", "--model", FAKE_MODEL, "--json"], input=lines)
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["question"] for row in rows] == ["How long is the probation period for new employees?",
                                                 "What is the nightly hotel cap?"]
    assert "90 days" in rows[0]["answer"] and "220" in rows[1]["answer"]
    r = runner.invoke(app, ["ask", "--index", "t", "--model", FAKE_MODEL],
                      input="word " * 2000 + "\nWhat is the nightly hotel cap?\n")
    assert r.exit_code == 1
    assert r.output.count("error:") == 1 and "Ask a shorter question" in r.output and "220" in r.output
    r = runner.invoke(app, ["ask", "--index", "t", "--model", FAKE_MODEL], input="")
    assert r.exit_code == 1 and "No question: give one as an argument" in r.output
    r = runner.invoke(app, ["ask", "--index", "t", "--model", FAKE_MODEL, "--top-k", "0"], input="Q?\nQ2?\n")
    assert r.exit_code == 1 and r.output.count("--top-k must be at least 1") == 1  # said once, before any question


@pytest.mark.parametrize(
    "args, message",
    [
        (["ask", "Anything?", "--index", "nope"], "No index named 'nope'"),
        (["ask", "   ", "--index", "t"], "The question is empty"),
        (["ask", "caf\udce9?", "--index", "t"], "The question is not UTF-8 text (byte b'\\xe9' at character 4)"),
        (["ask", "Q?", "--index", "t", "--strategy", "rga"], "Did you mean 'rag'?"),
        (["ask", "Q?", "--index", "t", "--top-k", "0"], "--top-k must be at least 1"),
        (["ask", "Q?", "--index", "t", "--rope", "yarnn"], "Did you mean 'yarn'?"),  # rag too: a typo is a typo
        (["ask", "Q?", "--index", "t", "--embedder", "fake:other"], "was built with embedder 'fake:hash'"),
        (["ingest", "/definitely/not/here", "--index", "t"], "does not exist"),
        (["ingest", ".", "--index", "../escape"], "Bad index name"),
        (["list", "--root", __file__], "is a file, not a folder"),
    ],
)
def test_user_mistakes_give_one_red_line_and_exit_1(small_docs, args, message):
    _ingest(small_docs)
    r = runner.invoke(app, args + (["--model", FAKE_MODEL] if args[0] == "ask" else []))
    assert r.exit_code == 1
    assert message in r.output
    assert "Traceback" not in r.output
    assert r.output.strip().count("\n") <= 2  # one line, possibly wrapped by the terminal width


def test_help_is_fast_and_imports_no_model_code():
    code = (
        "import sys, time; t = time.perf_counter()\n"
        "from docqa.cli.main import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'faiss', 'transformers', 'sentence_transformers', 'llama_index')"
        " if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    elapsed = time.perf_counter() - t0
    assert "HEAVY []" in out
    assert elapsed < 1.5, f"docqa --help took {elapsed:.2f} s"
    assert "ingest" in out and "ask" in out


@pytest.mark.parametrize("args, loads", [(["-s", "long-context"], 0), (["-s", "long-context", "--truncate"], 1),
                                         (["-s", "rag,lc"], 1)])
def test_ask_loads_the_embedder_only_for_strategies_that_retrieve(small_docs, monkeypatch, args, loads):
    import docqa.corpus

    _ingest(small_docs)
    real, calls = docqa.corpus.load_embedder, []
    monkeypatch.setattr("docqa.corpus.load_embedder", lambda spec: calls.append(spec) or real(spec))
    r = runner.invoke(app, ["ask", "How long is the probation period?", "--index", "t", "--model", FAKE_MODEL, *args])
    assert r.exit_code == 0, r.output
    assert len(set(calls)) == loads and "90 days" in r.output


@pytest.mark.parametrize("args, stdin, one_shot", [(["How long is the probation period?"], None, True),
                                                   (["How long is the probation period?", "-s", "rag,lc"], None, False),
                                                   ([], "How long is the probation period?\n", False)])
def test_only_a_one_question_ask_loads_its_models_for_one_question(small_docs, monkeypatch, args, stdin, one_shot):
    # GeneratorConfig.one_shot makes a prefill handover pay for its own load (generators/prefill_assist.py): only
    # where the process answers one question with one strategy.
    import docqa.api

    _ingest(small_docs)
    real, configs = docqa.api.open_index, []
    monkeypatch.setattr("docqa.api.open_index", lambda *a, **k: configs.append(k["generator"]) or real(*a, **k))
    r = runner.invoke(app, ["ask", *args, "--index", "t", "--model", FAKE_MODEL], input=stdin)
    assert r.exit_code == 0, r.output
    assert [c.one_shot for c in configs] == [one_shot] and "90 days" in r.output
