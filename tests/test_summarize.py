"""Summarization chains with the recording fake generator: windows, coverage, drops, termination, budget."""

import re

import pytest

import docqa
from docqa.errors import BudgetExceeded
from docqa.strategies.summarize import CHAINS
from tests.conftest import FAKE_EMBEDDER, FAKE_MODEL

BUDGET = 32


@pytest.fixture
def idx(small_docs):
    docqa.ingest(small_docs, "t", embedder=FAKE_EMBEDDER, model=FAKE_MODEL, chunk_tokens=120, overlap=10,
                 summaries=True)
    return docqa.open_index("t", model=FAKE_MODEL)


def _ask(idx, chain, window, question="What is the nightly hotel cap in most cities?", **kw):
    gen = idx.corpus.generator()
    gen.prompts.clear()
    ans = idx.ask(question, "summarize", chain=chain, summary_window=window, max_new_tokens=BUDGET, **kw)
    return ans, list(gen.prompts), gen


_DASHED = re.compile(r"\n-{10,}\n(.*?)\n-{10,}\n", re.S)  # llama-index's templates fence the material
_CONTEXT = re.compile(r"Context:\n(.*?)\n\n(?:Existing answer:|Question:)", re.S)  # docqa's: after "Context:"


def _material(prompt: str) -> str:
    m = _DASHED.search(prompt) or _CONTEXT.search(prompt)
    return m.group(1) if m else ""


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z0-9]+", text)


def _first_pass(ans, seen):
    """The prompts of a chain's first pass over the chunks: the calls of its first stage, which come first."""
    first_stage = next(iter(ans.details["stages"]))
    return seen[:int(ans.details["stages"][first_stage]["calls"])]


@pytest.mark.parametrize("chain", CHAINS.names())
@pytest.mark.parametrize("window", [1024, 3000, 4096])
def test_no_prompt_exceeds_the_window_and_each_chunk_is_seen_once(idx, chain, window):
    ans, seen, gen = _ask(idx, chain, window)
    assert all(len(gen.encode(p)) + BUDGET <= window for p in seen)
    if chain == "summaries":  # reads the stored summaries, not the chunks
        for name, summary in idx.corpus.store.summaries().items():
            assert sum(p.count(f"[{name}] {summary}") for p in seen) == 1
        return
    # Every chunk once per pass, in order, and nothing else: the material of the first pass, word for word, is the
    # chunks' text (chains that re-split the text, like llama-index's, may cut a chunk between two calls).
    blocks = [f"[{c.file}] {c.text.strip()}" for c in idx.corpus.store.chunks()]
    assert _words(" ".join(_material(p) for p in _first_pass(ans, seen))) == _words(" ".join(blocks))
    assert ans.calls == len(seen) and ans.details["chain"] == chain
    assert ans.tokens["prompt"] > 0 and ans.timings["total"] > 0


@pytest.mark.parametrize("chain", CHAINS.names())
def test_every_chain_terminates_on_one_two_and_many_groups(idx, chain):
    corpus_tokens = sum(c.tokens for c in idx.corpus.store.chunks())
    for window, expected_groups in [(100_000, 1), (corpus_tokens // 2 + 1200, 2), (900, None)]:
        gen = idx.corpus.generator()
        gen.trained_window = 100_000
        ans, seen, _ = _ask(idx, chain, window)
        first = _first_pass(ans, seen)
        if chain == "summaries":
            assert ans.calls >= 1
        elif expected_groups is not None:
            assert len(first) == expected_groups, (chain, window, len(first))
        else:
            assert len(first) > 5, (chain, len(first))
        assert ans.text


def test_map_results_with_nothing_relevant_are_dropped(idx):
    ans, seen, gen = _ask(idx, "map-reduce", 900, question="Zebra quokka xylophone harmonica?")
    assert not any("Notes:" in p for p in seen)  # every map said nothing relevant: no reduce call at all
    assert ans.text == "I don't know." and ans.details["stages"]["map"]["calls"] == len(seen)


def test_reduce_sees_only_relevant_notes(idx):
    ans, seen, _ = _ask(idx, "map-reduce", 900)
    reduce_prompts = [p for p in seen if "Notes:" in p]
    assert reduce_prompts
    assert not any(re.search(r"nothing relevant|I don't know", p.split("Notes:")[1], re.I) for p in reduce_prompts)
    assert ans.details["stages"]["reduce"]["calls"] >= 1


def test_call_budget_stops_with_a_clear_message(idx):
    with pytest.raises(BudgetExceeded, match="--max-calls 2"):
        _ask(idx, "map-reduce", 900, max_calls=2)


def test_summaries_are_stored_at_ingest_and_answer_in_few_calls(small_docs):
    report = docqa.ingest(small_docs, "s", embedder=FAKE_EMBEDDER, model=FAKE_MODEL, summaries=True)
    assert report.summaries == 3
    idx = docqa.open_index("s", model=FAKE_MODEL)
    assert set(idx.corpus.store.summaries()) == set(idx.files())
    ans = idx.ask("What is the nightly hotel cap in most cities?", "summarize", chain="summaries")
    assert ans.calls == 1 and ans.details["chain"] == "summaries"
    again = docqa.ingest(small_docs, "s", embedder=FAKE_EMBEDDER, model=FAKE_MODEL, summaries=True)
    assert again.summaries == 0 and again.version == report.version  # nothing new to summarize


def test_summaries_chain_without_summaries_says_how_to_add_them(small_docs):
    from docqa.errors import ConfigError

    docqa.ingest(small_docs, "plain", embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    with pytest.raises(ConfigError, match="--summaries"):
        docqa.open_index("plain", model=FAKE_MODEL).ask("What?", "summarize", chain="summaries")


@pytest.mark.parametrize("chain", ["map-reduce", "tree", "refine"])
def test_a_later_question_reuses_the_group_prefixes_and_answers_the_same(idx, chain):
    gen = idx.corpus.generator()
    first, seen_first, _ = _ask(idx, chain, 900)
    groups = len(_first_pass(first, seen_first))
    assert gen.prefills == groups and first.tokens["cached"] == 0
    other, _, _ = _ask(idx, chain, 900, question="How many days of paid vacation do employees get?")
    again, seen_again, _ = _ask(idx, chain, 900)
    assert gen.prefills == groups  # neither later question prefilled a group again
    # Every first-pass call of a later question is served from the cache: all but the question and instruction.
    first_pass_prompt = again.details["stages"][next(iter(again.details["stages"]))]["prompt_tokens"]
    assert 0 < first_pass_prompt - again.tokens["cached"] <= groups * 60 and other.tokens["cached"] > 0
    assert again.text == first.text and seen_again == seen_first  # the cache changes no prompt and no answer
    idx.corpus.caches.clear()
    cold, _, _ = _ask(idx, chain, 900)
    assert cold.text == first.text and cold.tokens["cached"] == 0


def test_questions_longer_than_the_reserved_room_are_refused(idx):
    from docqa.errors import ContextTooLong

    with pytest.raises(ContextTooLong, match="max_question_tokens"):
        _ask(idx, "map-reduce", 900, question="w? " * 200)


class VerboseGenerator(__import__("tests.fakes").fakes.ExtractiveGenerator):
    """Never says "nothing relevant" and always writes its whole budget: the worst case for merging."""

    def generate(self, prompt, max_new_tokens=128, **kw):
        out = super().generate(prompt, max_new_tokens, **kw)
        out.text = " ".join(["fact"] * max_new_tokens)
        out.completion_tokens = max_new_tokens
        return out


@pytest.fixture
def verbose(idx):
    from docqa import generators as generator_mod

    generator_mod.GENERATORS.register("verbose", lambda spec, model, cfg: VerboseGenerator(spec), replace=True)
    yield docqa.open_index("t", model="verbose:x")
    generator_mod.GENERATORS.unregister("verbose")
    for key in [k for k in generator_mod._LOADED if k[0].startswith("verbose")]:
        del generator_mod._LOADED[key]


@pytest.mark.parametrize("chain", ["map-reduce", "tree", "refine", "summaries"])
def test_chains_terminate_when_every_note_is_as_long_as_allowed(verbose, chain):
    """The case that looped forever: notes that never shrink in a small window, no --max-calls."""
    chunks = len(verbose.corpus.store.chunks())
    ans = verbose.ask("What is the nightly hotel cap?", "summarize", chain=chain, summary_window=900,
                      max_new_tokens=128)
    assert ans.calls <= 2 * chunks + 2  # a first pass of at most one call per chunk, then a halving reduce


@pytest.mark.parametrize("chain", ["map-reduce", "summaries"])
def test_a_window_that_cannot_hold_two_notes_is_refused_with_the_fix(verbose, chain):
    from docqa.errors import ConfigError

    with pytest.raises(ConfigError, match="Raise --summary-window .* or lower --max-new-tokens"):
        verbose.ask("What is the nightly hotel cap?", "summarize", chain=chain, summary_window=380,
                    max_new_tokens=128)


def test_map_notes_are_dropped_on_the_probability_of_nothing_relevant(small_docs, monkeypatch):
    """The drop step reads the model's P("NOTHING RELEVANT") when --drop-threshold is given; words still drop."""
    import math

    docqa.ingest(small_docs, "t", embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    idx = docqa.open_index("t", model=FAKE_MODEL)
    gen = idx.corpus.generator()
    original = gen.generate

    def sure_nothing(*a, **k):
        out = original(*a, **k)
        if k.get("score"):
            out.score_logprob = math.log(0.9)
        return out

    kept = idx.ask("What is the nightly hotel cap?", "summarize")
    assert kept.details["dropped"] < len(kept.details["notes"]) + kept.details["dropped"]
    monkeypatch.setattr(gen, "generate", sure_nothing)
    default = idx.ask("What is the nightly hotel cap?", "summarize")
    assert default.details["dropped"] == kept.details["dropped"]  # off by default: the words decide
    dropped = idx.ask("What is the nightly hotel cap?", "summarize", drop_threshold=0.5)
    assert dropped.details["notes"] == [] and dropped.text == "I don't know."
    assert idx.ask("What is the nightly hotel cap?", "summarize", drop_threshold=0.95).details["notes"]


@pytest.mark.parametrize("chain", ["map-reduce", "refine", "tree"])
def test_map_top_k_reads_only_the_groups_holding_the_best_chunks(idx, chain):
    """map_top_k=1: the first pass reads exactly the group that holds the question's best-retrieved chunk, and the
    other groups are dropped without a model call; 0 reads every group."""
    question = "What is the nightly hotel cap in most cities?"
    every, seen_all, _ = _ask(idx, chain, 900, question=question)
    focused, seen, _ = _ask(idx, chain, 900, question=question, map_top_k=1)
    groups = len(_first_pass(every, seen_all))
    assert groups >= 3  # several groups, so dropping is visible
    first = _first_pass(focused, seen)
    assert len(first) == 1 and focused.details["dropped"] >= groups - 1
    best = idx.corpus.retrieve(question, 1).chunks[0][0]
    assert best.text.strip()[:60] in _material(first[0])
    assert focused.calls < every.calls
    with pytest.raises(docqa.errors.ConfigError, match="--map-top-k"):
        _ask(idx, chain, 900, map_top_k=-1)


@pytest.mark.parametrize("style", ["short", "sentence", "paragraph"])
def test_refine_asks_again_for_the_length_the_style_asks_for(idx, style):
    """Refine's later calls ask for a better answer; they used to say "in one short sentence" whatever the style, so a
    paragraph-style question was told two lengths at once."""
    from docqa import prompts

    ans, seen, _ = _ask(idx, "refine", 900, style=style)
    again = [p for p in seen if "Existing answer:" in p]
    assert again, "the chain never refined an answer: the test reads nothing"
    want = f"write it {prompts.STYLES.get(style).form};"
    assert all(want in p and prompts.STYLES.get(style).instruction in p for p in again)
    others = {prompts.STYLES.get(s).form for s in prompts.STYLES.names()} - {prompts.STYLES.get(style).form}
    assert not any(f"write it {form};" in p for p in again for form in others)


def test_every_answer_style_says_its_length_for_a_second_ask():
    from docqa import prompts

    forms = [prompts.STYLES.get(s).form for s in prompts.STYLES.names()]
    assert all(forms) and len(set(forms)) == len(forms)
