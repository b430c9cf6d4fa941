"""docqa eval with fakes: records, metrics, resume, files, the auto route split, and the L-Eval format."""

import json

import pytest
from typer.testing import CliRunner

import docqa
from docqa.cli.main import app
from docqa.errors import BadQuestionFile, ConfigError
from docqa.strategies import STRATEGIES
from tests.conftest import FAKE_EMBEDDER, FAKE_MODEL, write_jsonl


@pytest.fixture
def qfile(tmp_path):
    rows = [
        {"id": "hotel", "question": "What is the nightly hotel cap in most cities?", "answers": ["220 US dollars"],
         "sources": ["travel_and_expense_policy.docx"]},
        {"id": "probation", "question": "How long is the probation period for new employees?",
         "answers": ["90 days"], "sources": ["employee_handbook.md"]},
        {"id": "pets", "question": "Zebra quokka xylophone?", "answers": []},
    ]
    return write_jsonl(tmp_path / "q.jsonl", rows)


def test_every_strategy_scored_and_written(indexed, qfile, tmp_path):
    out = tmp_path / "out"
    records, rows = docqa.evaluate(qfile, index="t", strategies=STRATEGIES.names(), out=out, model=FAKE_MODEL)
    assert len(records) == 3 * len(STRATEGIES.names())
    assert [r["strategy"] for r in rows] == STRATEGIES.names()
    rag = {r["id"]: r for r in records if r["strategy"] == "rag"}
    assert rag["hotel"]["metrics"]["contains"] == 1.0 and rag["hotel"]["metrics"]["recall_at_k"] == 1.0
    assert rag["pets"]["metrics"]["refusal"] == 1.0 and rag["pets"]["metrics"]["f1"] is None
    for r in records:
        assert r["latency_s"] > 0 and r["prompt_tokens"] > 0 and r["calls"] >= 1 and r["peak_rss_mb"] > 0
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == len(records)
    summary = json.loads((out / "summary.json").read_text())
    assert {s["strategy"] for s in summary["strategies"]} == set(STRATEGIES.names())
    env = summary["meta"]["environment"]  # where the latencies were measured
    assert env["date"] and env["docqa"] == docqa.__version__ and env["cpus"] >= 1 and env["cpu"]
    assert env["generator"]["spec"] == FAKE_MODEL
    assert (out / "summary.csv").read_text().startswith("strategy,questions,")
    assert (out / "accuracy_vs_latency.png").read_bytes()[:4] == b"\x89PNG"


def test_auto_routes_refusals_to_long_context_and_reports_savings(indexed, qfile):
    _, rows = docqa.evaluate(qfile, index="t", strategies=["long-context", "auto"], model=FAKE_MODEL)
    auto = next(r for r in rows if r["strategy"] == "auto")
    assert auto["routed_rag"] == 2 and auto["routed_long_context"] == 1  # the unanswerable one went on
    assert "saved_prompt_tokens_vs_long_context" in auto and auto["saved_prompt_tokens_vs_long_context"] > 0
    records, _ = docqa.evaluate(qfile, index="t", strategies=["auto:route_threshold=1", "rag"], model=FAKE_MODEL)
    by = {(r["strategy"], r["id"]): r for r in records}
    for q in ("hotel", "probation", "pets"):  # what the first step answered and the probability it read are kept
        first = by[("auto:route_threshold=1.0", q)]
        assert first["rag_answer"] == by[("rag", q)]["answer"] and 0.0 <= first["decline_p"] <= 1.0
        assert by[("rag", q)]["decline_p"] is None and by[("rag", q)]["rag_answer"] is None


def test_resume_skips_finished_pairs(indexed, qfile, tmp_path, monkeypatch):
    out = tmp_path / "out"
    docqa.evaluate(qfile, index="t", strategies=["rag"], out=out, model=FAKE_MODEL)
    lines = (out / "results.jsonl").read_text().splitlines()
    (out / "results.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:10])  # interrupted mid-line
    calls = []
    from docqa.eval import runner

    real = runner.answer_one
    monkeypatch.setattr(runner, "answer_one", lambda *a: calls.append(a[1].id) or real(*a))
    records, _ = docqa.evaluate(qfile, index="t", strategies=["rag"], out=out, resume=True, model=FAKE_MODEL)
    assert calls == ["pets"] and len(records) == 3
    kept = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]  # the torn line is gone
    assert [r["id"] for r in kept] == ["hotel", "probation", "pets"]


def test_bad_question_files(tmp_path, indexed):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "ok", "answers": []}\nnot json\n')
    with pytest.raises(BadQuestionFile, match="bad.jsonl:2: not valid JSON"):
        docqa.evaluate(bad, index="t", model=FAKE_MODEL)
    with pytest.raises(BadQuestionFile, match="does not exist"):
        docqa.evaluate(tmp_path / "nope.jsonl", index="t", model=FAKE_MODEL)


def test_leval_format_builds_one_index_per_document(tmp_path, monkeypatch):
    monkeypatch.setattr("docqa.embedder.DEFAULT_EMBEDDER", FAKE_EMBEDDER)  # L-Eval ingests with the default
    rows = [{"input": "Acme sold 12 rockets in May. Revenue was 4 million.", "instructions": ["How many rockets?"],
             "outputs": ["12 rockets"]},
            {"input": "Globex hired 7 engineers. The CEO is Hank.", "instructions": ["Who is the CEO?"],
             "outputs": ["Hank"]}]
    path = tmp_path / "leval.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    records, _ = docqa.evaluate(None, leval=path, strategies=["long-context"], model=FAKE_MODEL)
    assert {r["document"] for r in records} == {"leval-doc01", "leval-doc02"}
    assert {r["sources"][0] for r in records} == {"leval-doc01.txt", "leval-doc02.txt"}  # each asked of its own doc
    assert sorted(docqa.list_indexes()) == ["leval-leval-doc01", "leval-leval-doc02"]


def test_leval_limit_docs_takes_whole_documents_and_ingests_only_them(tmp_path, monkeypatch):
    monkeypatch.setattr("docqa.embedder.DEFAULT_EMBEDDER", FAKE_EMBEDDER)  # L-Eval ingests with the default
    rows = [{"input": f"Doc {i}: Acme sold {i} rockets. The CEO is Hank {i}.", "instructions": [
        "How many rockets?", "Who is the CEO?"], "outputs": [f"{i} rockets", f"Hank {i}"]} for i in range(3)]
    path = tmp_path / "fin.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    records, _ = docqa.evaluate(None, leval=path, strategies=["rag"], model=FAKE_MODEL, limit_docs=2)
    assert [r["document"] for r in records] == ["fin-doc01", "fin-doc01", "fin-doc02", "fin-doc02"]
    assert sorted(docqa.list_indexes()) == ["leval-fin-doc01", "leval-fin-doc02"]
    with pytest.raises(ConfigError, match="--limit-docs"):
        docqa.evaluate(None, leval=path, strategies=["rag"], model=FAKE_MODEL, limit_docs=0)


def test_cli_eval_prints_a_table(indexed, qfile, tmp_path):
    r = CliRunner().invoke(app, ["eval", str(qfile), "--index", "t", "--strategies", "rag,lc", "--model",
                                 FAKE_MODEL, "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert "rag" in r.output and "long-context" in r.output and "p50" in r.output


def test_concurrency_keeps_question_order_and_answers(indexed, qfile, tmp_path):
    one, _ = docqa.evaluate(qfile, index="t", strategies=["rag", "long-context"], model=FAKE_MODEL,
                            out=tmp_path / "c1")
    three, _ = docqa.evaluate(qfile, index="t", strategies=["rag", "long-context"], model=FAKE_MODEL, concurrency=3,
                              out=tmp_path / "c3")
    key = lambda recs: [(r["strategy"], r["id"], r["answer"]) for r in recs]  # noqa: E731
    assert key(three) == key(one)
    lines = [json.loads(x) for x in (tmp_path / "c3" / "results.jsonl").read_text().splitlines()]
    assert key(lines) == key(one)
    with pytest.raises(ConfigError, match="--concurrency"):
        docqa.evaluate(qfile, index="t", model=FAKE_MODEL, concurrency=0)


def test_every_strategy_starts_cold_whatever_the_order(indexed, qfile, tmp_path):
    """auto would reuse the prefix long-context built (or the reverse) had eval not started each strategy cold."""
    gen = docqa.open_index("t", model=FAKE_MODEL).corpus.generator()  # the process-wide fake: counts prefills
    for order in (["long-context", "auto"], ["auto", "long-context"]):
        before = gen.prefills
        records, rows = docqa.evaluate(qfile, index="t", strategies=order, model=FAKE_MODEL)
        for strategy in order:
            assert [r["cold"] for r in records if r["strategy"] == strategy] == [True, False, False]
        routed = sum(1 for r in records if r["strategy"] == "auto" and r["route"] == "long-context")
        assert routed >= 1  # the unanswerable question goes to long-context
        assert gen.prefills - before == 2  # one document prefix per strategy: built again, not inherited
        assert all(row["cold_latency_s"] == row["cold_latency_s"] for row in rows)  # a number, not NaN


def test_eval_picks_the_answer_style_from_the_references(indexed, qfile, tmp_path):
    from docqa.prompts import style_for_references

    assert style_for_references([["90 days"], ["320 USD a night"], []]) == "short"
    assert style_for_references([[" ".join(["w"] * 12)]]) == "sentence"
    assert style_for_references([[" ".join(["w"] * 60)], [" ".join(["w"] * 40)]]) == "paragraph"
    docqa.evaluate(qfile, index="t", strategies=["rag"], model=FAKE_MODEL, out=tmp_path / "o")
    assert json.loads((tmp_path / "o" / "run.json").read_text())["options"]["style"] == "short"
    r = CliRunner().invoke(app, ["eval", str(qfile), "--index", "t", "--strategies", "rag", "--model", FAKE_MODEL,
                                 "--style", "paragraph", "--out", str(tmp_path / "p")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "p" / "run.json").read_text())["options"]["style"] == "paragraph"
    r = CliRunner().invoke(app, ["eval", str(qfile), "--index", "t", "--model", FAKE_MODEL, "--style", "haiku"])
    assert r.exit_code == 1 and "Unknown answer style 'haiku'" in r.output


def test_variants_are_rows_of_their_own_with_their_options(indexed, qfile, tmp_path):
    """rag and rag:top_k=1 in one run: two rows, each answered with its own options, and --resume keeps them apart."""
    out = tmp_path / "v"
    records, rows = docqa.evaluate(qfile, index="t", strategies=["rag", "rag:top_k=1", "lc:max_new_tokens=8"],
                                   model=FAKE_MODEL, out=out)
    assert [r["strategy"] for r in rows] == ["rag", "rag:top_k=1", "long-context:max_new_tokens=8"]
    by = {(r["strategy"], r["id"]): r for r in records}
    for q in ("hotel", "probation"):
        assert len(by[("rag:top_k=1", q)]["sources"]) == 1 < len(by[("rag", q)]["sources"])
        assert by[("rag:top_k=1", q)]["prompt_tokens"] < by[("rag", q)]["prompt_tokens"]
    assert all(r["completion_tokens"] <= 8 for r in records if r["strategy"].startswith("long-context"))
    calls = []
    from docqa.eval import runner

    real = runner.answer_one
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner, "answer_one", lambda *a: calls.append(a) or real(*a))
        again, _ = docqa.evaluate(qfile, index="t", strategies=["rag", "rag:top_k=1", "rag:top_k=2"],
                                  model=FAKE_MODEL, out=out, resume=True)
    # Only the new variant is asked, as rag with its option; the finished ones are kept under their own labels.
    assert [(a[2], a[3]["top_k"]) for a in calls] == [("rag", 2)] * 3
    assert [r["strategy"] for r in again] == ["rag"] * 3 + ["rag:top_k=1"] * 3 + ["rag:top_k=2"] * 3


def test_variants_batch_like_their_strategy(indexed, qfile):
    one, _ = docqa.evaluate(qfile, index="t", strategies=["rag:top_k=2"], model=FAKE_MODEL)
    batched, _ = docqa.evaluate(qfile, index="t", strategies=["rag:top_k=2"], model=FAKE_MODEL, batch_size=3)
    assert [(r["strategy"], r["answer"]) for r in batched] == [(r["strategy"], r["answer"]) for r in one]
    assert all(r["batch"] == 3 for r in batched)


@pytest.mark.parametrize("spec, message", [
    ("rag:top_k=0", "--top-k must be at least 1"),
    ("rag:top_k=many", "top_k=many is not valid"),
    ("rag:colour=red", "unknown option 'colour'"),
    ("rag:top_k", "is not FIELD=VALUE"),
    ("rag,rag", "names rag twice"),
    ("rag:style=haiku", "Unknown answer style 'haiku'"),
    ("ragg:top_k=2", "Unknown strategy 'ragg'"),
])
def test_bad_variants_are_one_line_before_any_question(indexed, qfile, spec, message, monkeypatch):
    from docqa.eval import runner

    monkeypatch.setattr(runner, "run", lambda *a, **k: pytest.fail("questions were asked"))
    r = CliRunner().invoke(app, ["eval", str(qfile), "--index", "t", "--strategies", spec, "--model", FAKE_MODEL])
    assert r.exit_code == 1 and message in r.output, r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) <= 3


def test_variant_style_auto_takes_the_runs_style(indexed, qfile):
    _, rows = docqa.evaluate(qfile, index="t", strategies=["rag:style=auto", "rag:style=paragraph"], model=FAKE_MODEL)
    assert [r["strategy"] for r in rows] == ["rag:style=short", "rag:style=paragraph"]  # short: the references'


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_VALUES = {"top_k": st.integers(1, 64), "max_new_tokens": st.integers(1, 512), "rope": st.sampled_from(
    ["yarn", "ntk", "linear", "dynamic", "none"]), "rope_factor": st.floats(1, 64, allow_nan=False),
    "truncate": st.booleans(), "max_calls": st.one_of(st.none(), st.integers(1, 99)),
    "chain": st.sampled_from(["map-reduce", "refine", "tree"]), "kv_budget": st.sampled_from(["4GiB", "512MB"])}


@given(strategy=st.sampled_from(["rag", "long-context", "summarize", "auto"]),
       options=st.dictionaries(st.sampled_from(sorted(_VALUES)), st.none()).flatmap(
           lambda keys: st.fixed_dictionaries({k: _VALUES[k] for k in keys})))
def test_variant_labels_parse_back_to_the_same_variant(strategy, options):
    from docqa.strategies.variants import Variant, parse_variant

    v = Variant(strategy, options)
    assert parse_variant(v.label) == v
    assert parse_variant(f" {v.label.replace(strategy, strategy.upper(), 1)} ") == v  # names are case-insensitive


def test_paired_difference_interval_and_counts():
    from docqa.eval.paired import paired

    same = paired([10.0, 20.0, 30.0], [10.0, 20.0, 30.0])
    assert (same.diff, same.ci_low, same.ci_high, same.ties) == (0.0, 0.0, 0.0, 3)
    better = paired([0.0] * 20, [5.0] * 15 + [0.0] * 5)
    assert better.diff == 3.75 and 0 < better.ci_low < 3.75 < better.ci_high <= 5.0
    assert (better.wins, better.losses, better.ties) == (15, 0, 5)
    noisy = paired([0.0, 10.0] * 10, [10.0, 0.0] * 10)
    assert noisy.diff == 0.0 and noisy.ci_low < 0 < noisy.ci_high and (noisy.wins, noisy.losses) == (10, 10)
    assert paired([1.0, 2.0], [2.0, 1.0], seed=3) == paired([1.0, 2.0], [2.0, 1.0], seed=3)
    with pytest.raises(ValueError):
        paired([], [])


def test_eval_rows_carry_a_paired_comparison_with_the_first(indexed, qfile, tmp_path):
    records, rows = docqa.evaluate(qfile, index="t", strategies=["rag", "rag:top_k=1", "long-context"],
                                   model=FAKE_MODEL, out=tmp_path / "o")
    assert "score_vs" not in rows[0]
    for row in rows[1:]:
        assert row["score_vs"] == "rag" and row["score_vs_n"] == 2  # the answerable questions both answered
        mine = {r["id"]: r["metrics"]["f1"] for r in records if r["strategy"] == row["strategy"] and r["references"]}
        first = {r["id"]: r["metrics"]["f1"] for r in records if r["strategy"] == "rag" and r["references"]}
        assert row["score_vs_diff"] == pytest.approx(100 * sum(mine[k] - first[k] for k in mine) / len(mine))
        assert row["score_vs_ci_low"] <= row["score_vs_diff"] <= row["score_vs_ci_high"]
    assert "score_vs_diff" in (tmp_path / "o" / "summary.csv").read_text().splitlines()[0]
    r = CliRunner().invoke(app, ["eval", str(qfile), "--index", "t", "--strategies", "rag,rag:top_k=1", "--model",
                                 FAKE_MODEL])
    assert r.exit_code == 0, r.output
    assert "F1 against rag" in r.output and "rag:top_k=1" in r.output


def _verdict_inputs(spec: dict[str, tuple[list[float], float, float]]):
    """Records and rows for decide(): name → (per-question F1s, seconds a question, prompt tokens)."""
    records, rows = [], []
    for name, (f1s, seconds, tokens) in spec.items():
        records += [{"strategy": name, "id": f"q{i}", "document": None, "metrics": {"f1": f}, "latency_s": seconds,
                     "error": None} for i, f in enumerate(f1s)]
        rows.append({"strategy": name, "score": sum(f1s) / len(f1s), "prompt_tokens_mean": tokens})
    return records, rows


def test_verdict_prefers_the_cheapest_of_the_rows_that_tie_with_the_best():
    from docqa.eval.verdict import decide

    noisy = [0.2, 0.6] * 10
    # long-context is a little better on average but not distinguishably; rag costs a tenth.
    v = decide(*_verdict_inputs({"rag": (noisy, 2.0, 600), "long-context": (noisy[::-1][:19] + [0.8], 20.0, 30000)}))
    assert v.best == "long-context" and set(v.tied) == {"rag", "long-context"} and v.use == "rag"
    assert v.text.startswith("Use rag: F1 40.0 against the best, long-context's 43.0, is within noise")
    assert "Caution: over 20 questions a difference as large as" in v.text  # a wide tie is reported as inconclusive
    # A clear winner is used whatever it costs, and the cheaper, worse row is named as the trade-off.
    v = decide(*_verdict_inputs({"rag": ([0.1] * 20, 2.0, 600), "long-context": ([0.5] * 19 + [0.4], 20.0, 30000)}))
    assert (v.use, v.tied, v.tradeoff) == ("long-context", ["long-context"], "rag")
    assert "every other row is measurably less accurate" in v.text and "rag is 10.0× cheaper" in v.text
    # Seconds within 10 % are one cost: fewer prompt tokens decide (auto that never routed is rag plus a check).
    v = decide(*_verdict_inputs({"auto": ([0.3] * 20, 2.8, 700), "rag": ([0.3] * 20, 3.0, 600)}))
    assert v.use == "rag" and v.tradeoff is None and "Caution" not in v.text
    assert "costs the same within timing noise (3.0 s a question against 2.8 s), with 600 prompt tokens" in v.text
    assert decide(*_verdict_inputs({"rag": ([0.3] * 5, 1.0, 600)})) is None


def test_verdict_never_recommends_a_less_accurate_row_that_is_no_cheaper():
    """Scientific QA, 160 questions: auto 19.7 F1 at 12.1 s a question, long-context 22.2 at 11.7 s, tied on
    accuracy. One cost within 10 %, so the higher score is the answer, not auto's fewer prompt tokens (the verdict
    said "Use auto … it costs 12.1 s a question against 11.7 s")."""
    from docqa.eval.verdict import decide

    noisy = [0.1, 0.3] * 10
    lc = noisy[::-1][:18] + [0.5, 0.5]
    v = decide(*_verdict_inputs({"auto": (noisy, 12.1, 700), "long-context": (lc, 11.7, 5000)}))
    assert v.best == "long-context" and set(v.tied) == {"auto", "long-context"}
    assert v.use == "long-context" and v.text.startswith("Use long-context: the most accurate")
    assert "the cheapest of the rows that tie with it (11.7 s a question)" in v.text
    # Dearer within timing noise: still the most accurate, and the sentence says what it costs against what.
    v = decide(*_verdict_inputs({"auto": (noisy, 11.7, 700), "long-context": (lc, 12.1, 5000)}))
    assert v.use == "long-context"
    assert "as cheap as the rows that tie with it within timing noise (12.1 s a question against auto's 11.7 s)" \
        in v.text


def test_verdict_says_from_how_many_questions_a_prefix_pays_for_itself():
    """Financial QA on 2 cores: rag 36.4 F1 at 4.5 s a question, long-context 39.7 at 7.7 s, tied; long-context's
    7.7 s is a ~39 s prefix per transcript spread over ~6 questions, and 3.2 s a later question (rag 4.4 s). A user
    asking more questions of one index is told where long-context becomes the cheaper."""
    from docqa.eval.verdict import decide

    noisy = [0.2, 0.6] * 10
    records, rows = _verdict_inputs({"rag": (noisy, 4.4, 600), "long-context": (noisy[::-1][:19] + [0.8], 3.2, 5000)})
    for r in records:  # two indexes of ten questions; each strategy's first question of an index is cold
        first = int(r["id"][1:]) % 10 == 0
        r["cold"] = first
        if first and r["strategy"] == "long-context":
            r["latency_s"] = 3.2 + 39.0
    v = decide(records, rows)
    assert (v.use, v.best) == ("rag", "long-context") and v.break_even == (33, pytest.approx(39.0),
                                                                        pytest.approx(3.2), pytest.approx(4.4))
    assert "long-context pays 39 s once an index (its document prefix) and 3.2 s a later question against rag's " \
           "4.4 s: from about 33 questions an index on, it is the cheaper of the two." in v.text
    # Past that many questions an index the mean has counted the prefix already: nothing to add.
    for r in records:
        if r["strategy"] == "long-context" and r["cold"]:
            r["latency_s"] = 3.2 + 9.0  # 8 questions an index would do
    v = decide(records, rows)
    assert v.use == "long-context" and v.break_even is None and "once an index" not in v.text
    # Records that do not say which questions were cold (a served run, an old file): no such sentence.
    for r in records:
        r.pop("cold")
    assert decide(records, rows).break_even is None


def test_eval_prints_and_writes_its_verdict(indexed, qfile, tmp_path):
    r = CliRunner().invoke(app, ["eval", str(qfile), "--index", "t", "--strategies", "rag,rag:top_k=1", "--model",
                                 FAKE_MODEL, "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert "Verdict: Use rag" in " ".join(r.output.split())
    verdict = json.loads((tmp_path / "o" / "summary.json").read_text())["meta"]["verdict"]
    assert verdict["use"].startswith("rag") and verdict["text"].startswith("Use ")


def test_a_narrow_terminal_gets_whole_cells_and_names_the_columns_left_out(indexed, qfile, monkeypatch):
    from rich.console import Console

    from docqa.cli import evaluate as ev

    _, rows = docqa.evaluate(qfile, index="t", strategies=["rag", "long-context", "auto"], model=FAKE_MODEL)
    for width, left_out in ((80, True), (220, False)):
        console = Console(width=width, record=True, force_terminal=False)
        monkeypatch.setattr(ev, "out", console)
        ev.render(rows)
        text = console.export_text()
        assert "…" not in text  # no cell cut short
        assert all(len(line) <= width for line in text.splitlines())
        assert ("Left out for the terminal's width" in text) is left_out
        assert "F1" in text and "p50 s" in text and "auto routed" in text


def test_ask_takes_the_variant_a_verdict_names(indexed, qfile):
    """docqa ask --strategy rag:top_k=1 answers as that eval row did; the variant's option wins over the keyword."""
    idx = docqa.open_index("t", model=FAKE_MODEL)
    q = "What is the nightly hotel cap in most cities?"
    one = idx.ask(q, "rag:top_k=1", top_k=4)
    assert len(one.sources) == 1 and one.strategy == "rag"
    assert [a.text for a in idx.ask_many([q, q], "rag:top_k=1", batch_size=2)] == [one.text] * 2
    r = CliRunner().invoke(app, ["ask", q, "--index", "t", "--strategy", "rag,rag:top_k=1", "--model", FAKE_MODEL])
    assert r.exit_code == 0 and "rag:top_k=1" in r.output, r.output
    r = CliRunner().invoke(app, ["ask", q, "--index", "t", "--strategy", "rag:top_k=zero", "--model", FAKE_MODEL])
    assert r.exit_code == 1 and "top_k=zero is not valid" in r.output


def test_an_empty_strategy_list_is_refused_not_read_as_all(indexed, qfile):
    r = CliRunner().invoke(app, ["eval", str(qfile), "--index", "t", "--strategies", ",", "--model", FAKE_MODEL])
    assert r.exit_code == 1 and "item 1 of 2 (the first) is empty" in r.output
    r = CliRunner().invoke(app, ["ask", "q?", "--index", "t", "--strategy", " ", "--model", FAKE_MODEL])
    assert r.exit_code == 1 and "--strategy is empty" in r.output
    with pytest.raises(ConfigError, match="Strategy variant 'rag:max_new_tokens=0': --max-new-tokens"):
        docqa.evaluate(qfile, index="t", strategies=["rag:max_new_tokens=0"], model=FAKE_MODEL)


def test_a_sweep_expands_to_one_variant_per_value(indexed, qfile):
    from docqa.strategies.variants import expand, parse_variants

    assert expand("rag:top_k=1|2:style=short|sentence") == [
        "rag:top_k=1:style=short", "rag:top_k=1:style=sentence",
        "rag:top_k=2:style=short", "rag:top_k=2:style=sentence"]
    assert expand("lc") == ["lc"]
    assert [v.label for v in parse_variants(["rag", "rag:top_k=1|2"])] == ["rag", "rag:top_k=1", "rag:top_k=2"]
    _, rows = docqa.evaluate(qfile, index="t", strategies=["rag:top_k=1|2"], model=FAKE_MODEL)
    assert [r["strategy"] for r in rows] == ["rag:top_k=1", "rag:top_k=2"]
    with pytest.raises(ConfigError, match="top_k=x is not valid"):
        parse_variants(["rag:top_k=1|x"])
    with pytest.raises(ConfigError, match="names rag:top_k=1 twice"):
        parse_variants(["rag:top_k=1|1"])


def test_models_are_warmed_before_the_first_question_is_timed(indexed, qfile, monkeypatch):
    """Loading is nobody's answer: the warm-up (load, one embedding, one token) runs once, before any answer."""
    from docqa.eval import runner

    calls = []
    real_warm, real_one = runner.warm_up, runner.answer_one
    monkeypatch.setattr(runner, "warm_up", lambda index: calls.append("warm") or real_warm(index))
    monkeypatch.setattr(runner, "answer_one", lambda *a: calls.append("answer") or real_one(*a))
    docqa.evaluate(qfile, index="t", strategies=["rag", "long-context"], model=FAKE_MODEL)
    assert calls[0] == "warm" and calls.count("warm") == 1 and calls.count("answer") == 6


def test_a_sets_shared_instruction_goes_to_the_reader_not_to_retrieval(indexed, tmp_path, monkeypatch):
    from docqa.eval.questions import shared_instruction

    lead = "You are asked to act as a member of the staff and answer the question:"
    rows = [{"id": "hotel", "question": f"{lead} What is the nightly hotel cap in most cities?",
             "answers": ["220 US dollars"]},
            {"id": "probation", "question": f"{lead} How long is the probation period for new employees?",
             "answers": ["90 days"]}]
    qfile = write_jsonl(tmp_path / "lead.jsonl", rows)
    asked: list[str] = []
    from docqa.retrieval import DEFAULT_RETRIEVER, retrievers

    real_dense, real_lexical = retrievers.dense, retrievers._lexical  # what the embedder and BM25 are asked
    monkeypatch.setattr(retrievers, "dense", lambda c, qs, d, o: asked.extend(qs) or real_dense(c, qs, d, o))
    monkeypatch.setattr(retrievers, "_lexical", lambda c, q, d: asked.append(q) or real_lexical(c, q, d))
    notices: list[str] = []
    records, _ = docqa.evaluate(qfile, index=indexed, strategies=["rag", "summarize:map_top_k=2"], model=FAKE_MODEL,
                                notice=notices.append)
    assert asked and not any(q.startswith("You are asked") for q in asked)
    assert {r["retriever"] for r in records} == {DEFAULT_RETRIEVER}  # each record says which retriever ranked
    assert "What is the nightly hotel cap in most cities?" in asked
    assert any(lead[:40] in n for n in notices)
    gen = docqa.open_index(indexed, model=FAKE_MODEL).corpus.generator()
    assert any(lead in str(p) for p in gen.prompts)  # the model still reads the whole question
    # the rule: a clause-ending prefix of four words or more that leaves something of every question
    assert shared_instruction([r["question"] for r in rows]) == lead
    assert shared_instruction(["What is the cap?", "What is the fee?"]) is None  # shared words, no instruction
    assert shared_instruction([lead + " a?"]) is None  # one question: nothing is shared
    assert shared_instruction([lead + " a?", lead]) is None  # a question that is only the lead-in
