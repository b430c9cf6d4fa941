"""The long-context strategy with the fake generator: prompt layout, limits, truncation and prefix reuse."""

import json

import pytest

import docqa
from docqa import generators as generator_mod
from docqa.errors import ContextTooLong
from docqa.rope import DEFAULT_ROPE
from tests.conftest import FAKE_EMBEDDER, FAKE_MODEL


@pytest.fixture
def idx(small_docs):
    docqa.ingest(small_docs, "t", embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    return docqa.open_index("t", model=FAKE_MODEL)


def _fake(idx):
    return idx.corpus.generator()


def test_every_document_titled_in_stable_order_then_the_question(idx):
    ans = idx.ask("How many weeks of paid parental leave?", "long-context")
    prompt = _fake(idx).prompts[-1]
    titles = ["employee_handbook.md", "q3_2026_quarterly_report.pdf", "travel_and_expense_policy.docx"]
    positions = [prompt.index(f"=== Document: {t} ===") for t in titles]
    assert positions == sorted(positions)
    assert prompt.rindex("Question: How many weeks of paid parental leave?") > positions[-1]
    assert "16 weeks" in ans.text
    assert [s.file for s in ans.sources] == titles
    assert ans.strategy == "long-context" and ans.calls == 1


def test_alias_and_json_fields(idx):
    ans = idx.ask("What was the gross margin?", "lc")
    d = ans.to_dict()
    rope = d["details"]["rope"]  # the fake's window is 4096 and three documents are longer: scaling is active
    assert rope["method"] == DEFAULT_ROPE and rope["factor"] == pytest.approx(rope["sized_for"] / 4096, abs=1e-4)
    assert d["details"]["rope"]["base"] > 0 and d["details"]["prompt_tokens"] == d["tokens"]["prompt"]


def test_prefix_is_prefilled_once_per_process(idx):
    first = idx.ask("What is the hotel cap?", "lc")
    second = idx.ask("What was the gross margin?", "lc")
    assert _fake(idx).prefills == 1
    assert (first.details["prefix"], second.details["prefix"]) == ("prefilled", "memory")
    other_plan = idx.ask("What was the gross margin?", "lc", rope="yarn", rope_factor=2.0)
    assert other_plan.details["prefix"] == "prefilled" and _fake(idx).prefills == 2


def test_answers_with_and_without_the_cache_are_identical(idx):
    cached = [idx.ask(q, "lc").text for q in ("What is the hotel cap?", "What is the hotel cap?")]
    idx.corpus.caches.clear()
    assert idx.ask("What is the hotel cap?", "lc").text == cached[0] == cached[1]


def test_prefix_saved_under_the_index_and_invalidated_when_it_changes(idx, small_docs, tmp_path):
    idx.ask("What is the hotel cap?", "lc", cache_prefix=True)
    saved = list((idx.corpus.store.path / "prefix").glob("*.safetensors"))
    assert len(saved) == 1
    reopened = docqa.open_index("t", model=FAKE_MODEL)
    reopened.corpus.caches.clear()
    assert reopened.ask("What is the hotel cap?", "lc", cache_prefix=True).details["prefix"] == "disk"
    (small_docs / "employee_handbook.md").write_text("# Handbook\n\nEmployees get 30 days of vacation.\n")
    docqa.ingest(small_docs, "t", embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    changed = docqa.open_index("t", model=FAKE_MODEL)
    assert changed.ask("How many days of vacation?", "lc", cache_prefix=True).details["prefix"] == "prefilled"


def test_too_long_question_is_an_error_not_a_truncation(idx):
    with pytest.raises(ContextTooLong, match="max_question_tokens"):
        idx.ask("w? " * 200, "lc")  # 600 characters, 400 tokens: under the character bound, over the token one


def test_a_huge_question_is_refused_before_any_model_call(idx):
    from docqa.errors import ConfigError

    for strategy in ("rag", "lc", "summarize", "auto"):
        with pytest.raises(ConfigError, match="characters long"):
            idx.ask("why " * 30_000 + "?", strategy)


def test_corpus_over_the_limit_names_its_size_and_the_alternatives(idx):
    with pytest.raises(ContextTooLong) as e:
        idx.ask("What is the hotel cap?", "lc", max_context=2000)
    msg = str(e.value)
    assert "exceeds --max-context 2,000" in msg and "rag" in msg and "--truncate" in msg
    assert e.value.tokens > 2000


def test_truncate_keeps_the_most_relevant_documents_that_fit(idx):
    sizes = {name: n for name, n in zip(
        ["handbook", "report", "travel"],
        _fake(idx).count_tokens([d.text for d in idx.corpus.store.documents() if d.part == 0][:3]))}
    budget = max(sizes.values()) + 600  # room for one document only
    ans = idx.ask("What is the nightly hotel cap in most cities for travel?", "lc", truncate=True,
                  max_context=budget + 256 + 96 + 20)
    assert [s.file for s in ans.sources] == ["travel_and_expense_policy.docx"]
    assert set(ans.details["dropped"]) == {"employee_handbook.md", "q3_2026_quarterly_report.pdf"}
    assert ans.tokens["prompt"] <= ans.details["max_context"]


def test_scaling_is_planned_from_the_request_length(small_docs):
    docqa.ingest(small_docs, "t", embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    idx = docqa.open_index("t", model=FAKE_MODEL)
    gen = idx.corpus.generator()
    gen.trained_window = 2048
    ans = idx.ask("What is the hotel cap?", "lc", rope="yarn", max_context=100_000)
    rope = ans.details["rope"]
    assert rope["factor"] == pytest.approx(rope["sized_for"] / 2048, abs=1e-4) and rope["factor"] > 1
    assert rope["attention_factor"] > 1.0
    assert rope["sized_for"] >= ans.tokens["prompt"] + 96
    assert generator_mod  # the fake is registered through the real registry


def test_a_prefix_serves_every_answer_budget_that_rotates_alike(idx):
    """docqa eval asks each L-Eval question for an answer of its own length, so each question's plan is sized for a
    different length. Within the trained window those plans rotate alike and one prefix serves them all; past it a
    different stretch is a different prefix."""
    gen = _fake(idx)
    gen.trained_window = 1 << 20  # the whole corpus fits: plain rope whatever the answer budget
    first = idx.ask("What is the hotel cap?", "lc", max_new_tokens=64)
    second = idx.ask("What was the gross margin?", "lc", max_new_tokens=300)
    assert (first.details["prefix"], second.details["prefix"]) == ("prefilled", "memory") and gen.prefills == 1
    gen.trained_window = 4096  # past the window: one stretch for every budget up to ANSWER_ROOM
    idx.corpus.caches.clear()
    first = idx.ask("What is the hotel cap?", "lc", max_new_tokens=64)
    second = idx.ask("What was the gross margin?", "lc", max_new_tokens=300)
    assert first.details["rope"]["factor"] > 1 and first.details["rope"] == second.details["rope"]
    assert second.details["prefix"] == "memory" and gen.prefills == 2
    # a budget past the allowance needs a longer stretch: another prefix
    assert idx.ask("What is the hotel cap?", "lc", max_new_tokens=3000).details["prefix"] == "prefilled"


def test_prefix_keys_follow_the_rotation_not_the_plan_record():
    from docqa.prefix_cache import prefix_key
    from docqa.rope import RopeModel, plan_for

    model = RopeModel(64, 10000.0, 8192)
    short, longer = plan_for("yarn", model, 5000), plan_for("yarn", model, 6000)
    assert short != longer
    assert prefix_key("m", short, [1, 2], model) == prefix_key("m", longer, [1, 2], model)
    assert prefix_key("m", short, [1, 2], model) != prefix_key("m", short, [1, 3], model)
    past = plan_for("yarn", model, 20000), plan_for("yarn", model, 30000)
    assert prefix_key("m", past[0], [1], model) != prefix_key("m", past[1], [1], model)


def test_auto_reads_the_whole_corpus_when_its_prefix_is_kept(idx, tmp_path):
    """A kept prefix makes long-context cheaper than rag's own prefill and more accurate (RESULTS.md, "auto on a kept
    prefix"): auto then skips rag. Without one, auto starts with rag as before; a prefix saved on disk counts only
    where long-context may read it (--cache-prefix)."""
    fake = _fake(idx)
    assert idx.ask("What is the hotel cap?", "auto").details["route"] == "rag"  # nothing kept yet
    calls = len(fake.prompts)
    lc = idx.ask("What is the hotel cap?", "lc", cache_prefix=True)
    kept = idx.ask("What is the hotel cap?", "auto")
    assert kept.details["route"] == "long-context (prefix kept)" and kept.strategy == "auto"
    assert kept.text == lc.text and kept.details["prefix"] == "memory" and kept.calls == 1
    assert len(fake.prompts) == calls + 2  # long-context's and auto's long-context call; no rag prompt
    assert fake.prefills == 1
    reopened = docqa.open_index("t", model=FAKE_MODEL)
    reopened.corpus.caches.clear()  # a new process: only the saved prefix is left
    assert reopened.ask("What is the hotel cap?", "auto").details["route"] == "rag"
    from_disk = reopened.ask("What is the hotel cap?", "auto", cache_prefix=True)
    assert from_disk.details["route"] == "long-context (prefix kept)" and from_disk.details["prefix"] == "disk"
    assert fake.prefills == 1
    other = reopened.ask("What is the hotel cap?", "auto", rope="yarn", rope_factor=2.0)  # another plan: not kept
    assert other.details["route"] == "rag"


def test_saved_prefixes_stay_within_the_disk_budget_least_recently_used_out(idx, monkeypatch):
    folder = idx.corpus.store.path / "prefix"
    idx.ask("What is the hotel cap?", "lc", cache_prefix=True)
    first = next(folder.glob("*.safetensors"))
    size = first.stat().st_size
    monkeypatch.setenv("DOCQA_PREFIX_DISK_BUDGET", str(int(size * 2.5)))  # room for two
    for style in ("short", "paragraph"):  # each answer style is a prefix of its own
        ans = idx.ask("What is the hotel cap?", "lc", cache_prefix=True, style=style)
        assert ans.details["prefix_file"] == "saved"
    kept = sorted(folder.glob("*.safetensors"))
    assert len(kept) == 2 and first not in kept  # the oldest left
    monkeypatch.setenv("DOCQA_PREFIX_DISK_BUDGET", str(size // 2))
    idx.corpus.caches.clear()
    ans = idx.ask("What is the hotel cap?", "lc", cache_prefix=True)
    assert ans.details["prefix_file"].startswith("not saved: ") and "DOCQA_PREFIX_DISK_BUDGET" in \
        ans.details["prefix_file"] and ans.text
    monkeypatch.setenv("DOCQA_PREFIX_DISK_BUDGET", "lots")
    prefills = _fake(idx).prefills
    with pytest.raises(docqa.DocQAError, match="DOCQA_PREFIX_DISK_BUDGET 'lots' is not a size"):
        idx.ask("What is the hotel cap?", "lc", cache_prefix=True, style="sentence")
    assert _fake(idx).prefills == prefills  # said before the prefill, not after it


def test_a_prefix_that_cannot_be_saved_costs_the_answer_nothing(idx, monkeypatch):
    """A full disk while saving: the answer still comes and the next ask prefills again; neither backend's writer
    leaves a half-written file behind."""
    import os

    import torch

    from docqa import prefix_cache
    from docqa.generators.llamacpp_prefix import write_prefix

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(type(_fake(idx)), "save_prefix", full)
    ans = idx.ask("What is the hotel cap?", "lc", cache_prefix=True)
    assert ans.text and ans.details["prefix_file"] == "not saved: No space left on device"
    assert not (idx.corpus.store.path / "prefix").exists()
    folder = idx.corpus.store.path / "prefix"
    monkeypatch.setattr(os, "replace", full)  # the last step of both writers' atomic writes
    with pytest.raises(OSError):
        write_prefix(folder / "a.llamacpp", "m", 3, ((0, 0.0, 1.0, 0), 4096), b"state")

    class Layer:
        keys, values = torch.zeros(1, 1, 2, 4), torch.ones(1, 1, 2, 4)

    class Cache:
        layers = [Layer()]

    with pytest.raises(OSError):
        prefix_cache.save(folder / "b.safetensors", Cache(), {"tokens": "2"})
    assert list(folder.iterdir()) == []


def test_side_by_side_no_strategy_answers_from_anothers_prefix(idx):
    """auto after long-context in one side-by-side would read long-context's prefix and look free."""
    both = idx.ask_all("What is the hotel cap?", ["long-context", "auto"])
    assert both["auto"].details["route"] == "rag"
    again = idx.ask_all("What is the hotel cap?", ["long-context", "auto"])  # each keeps its own caches
    assert again["long-context"].details["prefix"] == "memory" and again["auto"].details["route"] == "rag"
    assert _fake(idx).prefills == 1
    alone = idx.ask("What is the hotel cap?", "lc")  # after a side by side: the corpus's own caches, not auto's
    assert alone.details["prefix"] == "prefilled" and idx.ask("What is the hotel cap?", "auto").details["route"] == \
        "long-context (prefix kept)"


def test_ask_says_when_a_long_prefill_could_have_been_kept(small_docs, monkeypatch):
    from typer.testing import CliRunner

    from docqa.cli import ask as ask_cli
    from docqa.cli.main import app

    docqa.ingest(small_docs, "t", embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    monkeypatch.setattr(ask_cli, "PREFIX_HINT_S", 0.0)
    run = CliRunner()
    args = ["ask", "What is the hotel cap?", "--index", "t", "--model", FAKE_MODEL, "--strategy", "long-context"]
    r = run.invoke(app, args)
    assert r.exit_code == 0 and "with --cache-prefix they are kept" in r.output.replace("\n", " ")
    for quiet in ("--cache-prefix", "--truncate"):  # asked for already; documents that follow each question
        r = run.invoke(app, [*args, quiet])
        assert r.exit_code == 0 and "--cache-prefix they are kept" not in r.output.replace("\n", " ")
    r = run.invoke(app, [*args, "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["details"]["prefix"] == "prefilled"
    from docqa.api.indexes import Index

    loads = []
    real_load = Index.load
    monkeypatch.setattr(Index, "load",
                        lambda self, retrieval=True: loads.append(retrieval) or real_load(self, retrieval))
    for extra, retrieval in ((["--cache-prefix"], False), ([], True)):
        r = run.invoke(app, ["ask", "What is the hotel cap?", "--index", "t", "--model", FAKE_MODEL, "--strategy",
                             "auto", *extra])  # a new process: the saved prefix is kept, and read with --cache-prefix
        assert r.exit_code == 0 and ("prefix kept" in r.output) is not retrieval
        assert loads[-1] is retrieval  # the embedder is loaded up front only where rag will likely answer
