"""Batched generation: the same greedy answers as one prompt at a time, through the generator, the strategies that
batch (the BATCHED registry), ``Index.ask_many`` and ``docqa eval --batch-size``."""

import json

import pytest

torch = pytest.importorskip("torch")

import docqa  # noqa: E402
from docqa.generators import GeneratorConfig, TransformersGenerator  # noqa: E402
from docqa.strategies import BATCHED, STRATEGIES  # noqa: E402
from tests import tiny_llama  # noqa: E402
from tests.conftest import EXAMPLES, FAKE_EMBEDDER, FAKE_MODEL  # noqa: E402

QUESTIONS = EXAMPLES.parent / "questions.jsonl"


@pytest.fixture
def fake_index(small_docs):
    docqa.ingest(small_docs, "t", embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    return docqa.open_index("t", model=FAKE_MODEL)


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    folder = tiny_llama.build(tmp_path_factory.mktemp("tiny-batch"), window=64)
    return TransformersGenerator("tiny", str(folder), GeneratorConfig(model=str(folder), device=tiny_llama.DEVICE,
                                                                       dtype=tiny_llama.DTYPE, prefill_chunk=256))


def _prompts(n, seed=0, lo=3, hi=90):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(lo, hi, (n,), generator=g).tolist()
    return [torch.randint(3, 240, (k,), generator=g).tolist() for k in lengths]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_batch_gives_each_prompt_the_answer_it_gets_alone(gen, seed):
    prompts = _prompts(7, seed)  # lengths on both sides of the 64-token prefill boundary, padded left
    alone = [gen.generate(p, 10) for p in prompts]
    batch = gen.generate_batch(prompts, 10)
    assert [g.text for g in batch] == [g.text for g in alone]
    assert [g.completion_tokens for g in batch] == [g.completion_tokens for g in alone]
    assert [g.prompt_tokens for g in batch] == [len(p) for p in prompts]


@pytest.mark.parametrize("slots", [1, 2, 3])
def test_continuous_batching_with_fewer_slots_than_prompts(gen, slots):
    prompts = _prompts(8, 4)
    alone = [gen.generate(p, 10) for p in prompts]
    batch = gen.generate_batch(prompts, 10, slots=slots)
    assert [g.text for g in batch] == [g.text for g in alone]
    assert [g.finish_reason for g in batch] == [g.finish_reason for g in alone]


def test_rows_stop_on_their_own_stop_string(gen):
    prompts = _prompts(5, 3)
    alone = [gen.generate(p, 12) for p in prompts]
    # A stop string each answer contains (its third word) ends that row early, not the others.
    stop = tuple({a.text.split()[2] for a in alone if len(a.text.split()) > 3})
    want = [gen.generate(p, 12, stop=stop) for p in prompts]
    got = gen.generate_batch(prompts, 12, stop=stop)
    assert [g.text for g in got] == [g.text for g in want]
    assert [g.finish_reason for g in got] == [g.finish_reason for g in want]
    assert any(g.finish_reason == "stop" for g in got)


def test_every_batched_strategy_is_a_strategy_and_answers_like_ask(fake_index):
    questions = ["What is the probation period?", "How much is the stipend?", "What does the X3 cost?"]
    for name in BATCHED.names():
        assert name in STRATEGIES.names()
        alone = [fake_index.ask(q, name).text for q in questions]
        batched = fake_index.ask_many(questions, name, batch_size=2)
        assert [a.text for a in batched] == alone
        assert [a.details["batch"] for a in batched] == [2, 2, 2]  # decoded 2 at a time
    assert fake_index.corpus.generator().batches[-1:] == [3]  # one continuous batch of the three


def test_eval_batch_size_records_the_same_answers(fake_index, tmp_path):
    kw = dict(index="t", strategies=["rag", "long-context"], limit=9, model=FAKE_MODEL)
    one = docqa.evaluate(QUESTIONS, out=tmp_path / "b1", **kw)[0]
    four = docqa.evaluate(QUESTIONS, out=tmp_path / "b4", batch_size=4, **kw)[0]
    assert [(r["id"], r["strategy"], r["answer"]) for r in one] == [(r["id"], r["strategy"], r["answer"])
                                                                     for r in four]
    assert [r["batch"] for r in four if r["strategy"] == "rag"] == [4] * 9
    assert {r["batch"] for r in four if r["strategy"] == "long-context"} == {1}  # does not batch
    lines = (tmp_path / "b4" / "results.jsonl").read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == [r["id"] for r in four]


def test_no_questions_no_answers(fake_index):
    assert fake_index.ask_many([], "rag", batch_size=4) == []


def test_batch_size_below_one_is_refused(fake_index):
    from docqa.errors import ConfigError

    with pytest.raises(ConfigError, match="batch_size must be at least 1"):
        fake_index.ask_many(["q"], "rag", batch_size=0)
