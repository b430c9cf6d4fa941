"""The served backend against a real server: llama-cpp-python's OpenAI-compatible server (installed by `make test`),
serving the embedded SmolLM2 GGUF on 127.0.0.1 at a free port, stopped afterwards."""

from __future__ import annotations

import importlib.util
import json
import shutil

import pytest
from typer.testing import CliRunner

import docqa
from docqa.cli.main import app
from docqa.errors import ContextTooLong, ModelLoadError
from docqa.generators import GeneratorConfig
from tests.conftest import EXAMPLES, FAKE_EMBEDDER, FAKE_MODEL, example_index, example_questions
from tests.llama_server import N_CTX, free_port, served_config, start_server, stop

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                       reason="llama-cpp-python[server] is not installed (make test installs it: make server)"),
]

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    log = open(tmp_path_factory.mktemp("server") / "server.log", "w")  # noqa: SIM115 - closed below
    proc = start_server(port, log)
    yield f"http://127.0.0.1:{port}/v1"
    stop(proc)
    log.close()


def _gen(url: str, **kw) -> GeneratorConfig:
    return served_config(url, **kw)


@pytest.fixture
def two_docs(tmp_path):
    return example_index(tmp_path, ("employee_handbook.md", "company_overview.md"))


def test_every_strategy_answers_through_the_server(server, two_docs):
    idx = docqa.open_index("t", generator=_gen(server))
    gen = idx.corpus.generator()
    assert gen.window == N_CTX and gen.window_source == "--context-window"
    assert gen.encode("Hello world") and gen.decode(gen.encode("Hello world")) == "Hello world"
    q = "How many days of paid vacation do full-time employees get?"
    for strategy, opts in [("rag", {}), ("long-context", {}), ("summarize", {"summary_window": 4096}),
                           ("auto", {})]:
        ans = idx.ask(q, strategy, max_new_tokens=48, **opts)
        assert ans.text, strategy
        assert ans.tokens["prompt"] > 0 and ans.timings["ttft"] > 0, strategy
    lc = idx.ask(q, "long-context", max_new_tokens=32)
    assert lc.details["rope"]["method"] == "server" and lc.details["rope"]["server_window"] == N_CTX


def test_a_second_long_context_question_reuses_the_servers_prefix(server, tmp_path):
    # Documents no other test sends, so the first question meets a cold server cache.
    d = tmp_path / "other"
    d.mkdir()
    for name in ("sustainability_report_2025.md", "sales_and_partner_handbook.md"):
        shutil.copy(EXAMPLES / name, d / name)
    docqa.ingest(d, "t", embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    idx = docqa.open_index("t", generator=_gen(server))
    first = idx.ask("What is the company's mission?", "long-context", max_new_tokens=16)
    second = idx.ask("Who is the CEO?", "long-context", max_new_tokens=16)
    # llama.cpp keeps the previous prompt's KV and evaluates only the new suffix.
    assert second.timings["ttft"] < 0.5 * first.timings["ttft"], (first.timings, second.timings)


def test_a_corpus_over_the_servers_window_says_how_to_relaunch_it(server, tmp_path):
    docqa.ingest(EXAMPLES, "big", embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    idx = docqa.open_index("big", generator=_gen(server))
    with pytest.raises(ContextTooLong, match=r"server's window of 8,192.*--max-model-len.*rope_type.*yarn.*"
                                             r"--ctx-size .* --rope-scaling yarn"):
        idx.ask("What is the hotel cap?", "long-context")


def _questions(tmp_path, n=6):
    return example_questions(tmp_path / "q.jsonl", n)


def test_eval_at_concurrency_4_gives_the_answers_of_concurrency_1_in_order(server, two_docs, tmp_path):
    qfile = _questions(tmp_path)
    one, _ = docqa.evaluate(qfile, index="t", strategies=["rag"], generator=_gen(server), concurrency=1,
                            out=tmp_path / "c1", max_new_tokens=24)
    four, _ = docqa.evaluate(qfile, index="t", strategies=["rag"], generator=_gen(server), concurrency=4,
                             out=tmp_path / "c4", max_new_tokens=24)
    assert [r["id"] for r in four] == [r["id"] for r in one]
    assert [r["answer"] for r in four] == [r["answer"] for r in one]
    written = [json.loads(x)["id"] for x in (tmp_path / "c4" / "results.jsonl").read_text().splitlines()]
    assert written == [r["id"] for r in one]


def test_unreachable_url_and_wrong_model_are_one_line_errors(server, two_docs):
    port = free_port()  # nothing listens there
    with pytest.raises(ModelLoadError, match=rf"Cannot reach the server at http://127.0.0.1:{port}/v1"):
        docqa.open_index("t", generator=_gen(f"http://127.0.0.1:{port}/v1", max_retries=0)).corpus.generator()
    runner = CliRunner()
    for args, needle in ([["--model", "openai:smollm2", "--base-url", f"http://127.0.0.1:{port}/v1"], "Cannot reach"],
                         [["--model", "openai:nope", "--base-url", server], "serves smollm2, not 'nope'"],
                         [["--model", "openai:smollm2"], "--base-url"]):
        r = runner.invoke(app, ["ask", "What is the vacation policy?", "--index", "t", "--context-window", "8192",
                                *args], env={"DOCQA_BASE_URL": ""})
        assert r.exit_code == 1 and "Traceback" not in r.output and r.output.count("error:") == 1, r.output
        assert needle in " ".join(r.output.split()), r.output


def test_the_needle_bench_runs_through_the_server(server, tmp_path):
    from docqa.bench.common import SMOKE_TEXT
    from docqa.errors import ConfigError

    res = docqa.api.bench_needle(lengths=[1024, 2048], depths=[0.5], methods=["none"], out=tmp_path / "n",
                                 text=SMOKE_TEXT, model="openai:smollm2", generator=_gen(server))
    assert len(res.cells) == 4 and (tmp_path / "n" / "needle_none.png").is_file()
    with pytest.raises(ConfigError, match="--methods none"):
        docqa.api.bench_needle(lengths=[1024], depths=[0.5], methods=["none", "yarn"], out=tmp_path / "m",
                               text=SMOKE_TEXT, generator=_gen(server))


def test_the_server_scores_a_continuation_from_its_prompt_log_probabilities(server):
    """auto's routing signal through a served model: log P("I don't know." | prompt), read from echoed prompt
    log-probabilities, and the line-break stop applied client-side."""
    import openai

    from docqa.generators import load_generator

    gen = load_generator(_gen(server))
    prompt = gen.chat("You are a helpful assistant.", "Context:\nThe cap is 320 dollars.\n\nQuestion: What is the cap?")
    out = gen.generate(prompt, 24, stop=("\n",), score="I don't know.")
    assert out.score_logprob is not None and out.score_logprob < 0
    raw = openai.OpenAI(base_url=server, api_key="x").completions.create(
        model="smollm2", prompt=prompt + "I don't know.", max_tokens=1, temperature=0.0, echo=True, logprobs=1)
    n = len(gen.encode(prompt + "I don't know.")) - len(gen.encode(prompt))
    assert out.score_logprob == pytest.approx(sum(raw.choices[0].logprobs.token_logprobs[-n - 1:-1]), abs=1e-4)
    assert "\n" not in out.text


def test_a_served_answer_streams_as_the_server_sends_it_and_ends_as_returned(server):
    from docqa.generators import load_generator

    gen = load_generator(_gen(server))
    prompt = gen.chat("You are a helpful assistant. Answer in one short sentence.",
                      "Context:\nThe nightly hotel cap is 220 US dollars.\n\nQuestion: What is the nightly hotel cap?")
    texts: list[str] = []
    out = gen.generate(prompt, 32, stop=("\n",), on_text=texts.append)
    # (Not compared with an answer unstreamed: this server answers a prompt it has cached a little differently.)
    assert out.text and len(texts) > 1 and texts[-1] == out.text
    assert all(b.startswith(a) and len(b) > len(a) for a, b in zip(texts, texts[1:]))


def test_a_server_address_with_an_in_process_model_is_refused_not_ignored():
    """--base-url without --model openai:NAME had been dropped silently: the local model answered instead."""
    from docqa.errors import ConfigError
    from docqa.generators import GeneratorConfig, load_generator

    with pytest.raises(ConfigError, match=r"--base-url http://127\.0\.0\.1:9/v1 is for a served model.*openai:NAME"):
        load_generator(GeneratorConfig(base_url="http://127.0.0.1:9/v1"))
