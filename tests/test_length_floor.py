"""The floor under an asked length (generators/base.py Floor, AskConfig.length_floor): who asks for one, and that each
in-process backend holds a real model's answer to it — past the point where the model would have ended, never
changing what it had said up to there, and not at all for an answer that declines."""

from __future__ import annotations

import math

import pytest

from docqa.errors import ConfigError
from docqa.generators import GeneratorConfig, load_generator
from docqa.generators.base import Floor
from docqa.prompts import is_refusal
from docqa.strategies.base import AskConfig, answer_floor
from tests.conftest import FAKE_EMBEDDER, FAKE_MODEL

DOC = ("The probation period for new employees is 90 days. Employees may work remotely up to three days a week. "
       "The nightly hotel cap is 220 US dollars in most cities. Expenses are filed within 30 days of travel. ")


def test_a_floor_binds_until_the_words_are_there_unless_the_answer_declines():
    f = Floor(4, exempt=is_refusal)
    assert f.binds("") and f.binds("90 days") and f.binds("The period is")
    assert not f.binds("The period is 90") and not f.binds("The period is 90 days.")
    assert not f.binds("I don't know.")  # a decline ends when the model ends it
    assert Floor(4).binds("I don't know.")  # without the exemption it is just three words


def test_the_floor_is_a_share_of_the_asked_words_rounded_up_and_off_without_a_hint():
    assert answer_floor(AskConfig(length_hint=57)) == Floor(29, exempt=is_refusal)
    assert answer_floor(AskConfig(length_hint=1)) == Floor(1, exempt=is_refusal)
    assert answer_floor(AskConfig(length_hint=10, length_floor=0.8)).words == 8
    assert answer_floor(AskConfig()) is None  # no length asked: nothing to hold the answer to
    assert answer_floor(AskConfig(length_hint=57, length_floor=0)) is None
    assert answer_floor(AskConfig(length_hint=57), length_hint=9).words == 5  # a question's own hint wins
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(ConfigError, match="--length-floor"):
            AskConfig(length_floor=bad).check()


def test_rag_and_long_context_ask_for_the_floor_of_each_questions_hint(small_docs):
    import docqa
    from docqa.strategies import long_context, rag

    docqa.ingest(small_docs, "t", embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    corpus = docqa.open_index("t", model=FAKE_MODEL).corpus
    gen = corpus.generator()
    rag.ask_many(corpus, ["How long is the probation period?", "What is the hotel cap?"], AskConfig(), 2,
                 length_hints=[20, None])
    assert gen.floors[-2:] == [Floor(10, exempt=is_refusal), None]
    long_context.ask(corpus, "How long is the probation period?", AskConfig(length_hint=9))
    assert gen.floors[-1] == Floor(5, exempt=is_refusal)
    long_context.ask(corpus, "How long is the probation period?", AskConfig(length_hint=9, length_floor=0))
    assert gen.floors[-1] is None


def _short_answer(gen):
    """A prompt the model answers in a few words, and that answer."""
    prompt = gen.chat("Answer from the document in a few words.",
                      f"Document:\n{DOC}\n\nQuestion: How long is the probation period?")
    plain = gen.generate(prompt, 48, stop=("\n",))
    assert plain.finish_reason in ("eos", "stop") and plain.text, plain  # the test's premise: it ends by itself
    return prompt, plain


def _holds(gen):
    prompt, plain = _short_answer(gen)
    want = len(plain.text.split()) + 10
    floored = gen.generate(prompt, 64, stop=("\n",), floor=Floor(want, exempt=is_refusal))
    assert len(floored.text.split()) >= want or floored.finish_reason == "length", floored
    # greedy decoding is unchanged up to where the model wanted to end: the floor continues the answer
    assert floored.text.startswith(plain.text) and len(floored.text) > len(plain.text), (plain.text, floored.text)
    assert "\n" not in floored.text
    # an exempt answer (here: every answer) ends where the model ends it
    exempt = gen.generate(prompt, 64, stop=("\n",), floor=Floor(want, exempt=lambda text: True))
    assert exempt.text == plain.text
    # a floor the answer already meets changes nothing
    met = gen.generate(prompt, 64, stop=("\n",), floor=Floor(1))
    assert met.text == plain.text
    return prompt, plain, floored, want


@pytest.fixture(scope="module")
def llama_gen():
    pytest.importorskip("llama_cpp")
    return load_generator(GeneratorConfig(model="llama.cpp:smollm2", threads=2))


@pytest.fixture(scope="module")
def hf_gen():
    pytest.importorskip("torch")
    return load_generator(GeneratorConfig(model="transformers:smollm2", threads=2))


def test_llama_cpp_holds_an_answer_to_its_floor(llama_gen):
    _holds(llama_gen)
    assert llama_gen.ending_ids() and all(t in llama_gen.ending_ids() for t in llama_gen.encode("\n"))


def test_transformers_holds_an_answer_to_its_floor_alone_and_in_a_batch(hf_gen):
    prompt, plain, floored, want = _holds(hf_gen)
    other = hf_gen.chat("Answer from the document in a few words.",
                        f"Document:\n{DOC}\n\nQuestion: What is the nightly hotel cap?")
    alone = [hf_gen.generate(p, 64, stop=("\n",), floor=f)
             for p, f in ((prompt, Floor(want)), (other, None), (other, Floor(20)))]
    batch = hf_gen.generate_batch([prompt, other, other], 64, stop=("\n",), floors=[Floor(want), None, Floor(20)])
    assert [g.text for g in batch] == [g.text for g in alone]
    assert alone[0].text == floored.text
