"""An answer shown while it is decoded: what is drawn is always the start of the answer returned, for any text and
stop strings; strategies hand the answering call's text on; `docqa ask` on a terminal draws it and then prints the
finished answer. The backends' own streams: tests/test_llamacpp.py, tests/test_generator.py, tests/test_served.py."""

from __future__ import annotations

import io
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import docqa
from docqa.generators.base import cut_at_stop, hits_stop
from docqa.generators.streaming import AnswerStream, settled
from tests.conftest import FAKE_MODEL, example_index

# Pieces an answer is decoded from: words, sentence ends, lead-ins, list items, line breaks and blank lines, a stop
# string that is not a line break, and half a character (byte-level BPE's U+FFFD until the rest arrives).
PIECES = ["The", " cap", " is", " 220", ".", " risks are", ":", "\n", "\n\n", "- ", "1. ", "a) ", " ", "Yes",
          "END", "EN", "\ufffd", "é"]
STOPS = [(), ("\n",), ("\n\n",), ("\n", "END"), ("\n\n", "END")]


def decoded(pieces: list[str], stop: tuple[str, ...]) -> tuple[list[str], str]:
    """The texts a backend sees token by token, until an answer is complete, and the answer it returns."""
    seen, text = [], ""
    for p in pieces:
        text += p
        if stop and hits_stop(text, stop):
            break
        seen.append(text)
    return seen, cut_at_stop(text, stop)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=24), st.sampled_from(STOPS))
def test_what_is_drawn_is_always_the_start_of_the_answer_returned(pieces, stop):
    seen, answer = decoded(pieces, stop)
    drawn: list[str] = []
    stream = AnswerStream(drawn.append, stop)
    for text in seen:
        assert answer.startswith(settled(text, stop)), (text, answer)
        stream.update(text)
    stream.done(answer)
    # Each drawing grows the last one, and the last is the answer (unless the answer is empty: nothing to draw).
    assert all(b.startswith(a) and len(b) > len(a) for a, b in zip(drawn, drawn[1:]))
    assert drawn[-1:] == ([answer] if answer else [])


def test_the_unsettled_tail_waits_for_the_next_token():
    assert settled("The cap is 22", ("\n",)) == "The cap is 22"  # a first line shows as it is written
    assert settled("Caf\ufffd", ("\n",)) == "Caf"  # half a character
    assert settled("Done. EN", ("\n", "END")) == "Done."  # the start of a stop string, perhaps
    # After a lead-in the answer goes on line by line: a line being written may still turn out to end the list.
    assert settled("The risks are:\n- rates\n- cos", ("\n",)) == "The risks are:\n- rates"
    assert settled("The risks are:\n- rates\n- costs\n", ("\n",)) == "The risks are:\n- rates\n- costs"
    assert cut_at_stop("The risks are:\n- rates\nNext", ("\n",)) == "The risks are:\n- rates"


def test_no_callback_no_work():
    stream = AnswerStream(None, ("\n",))
    stream.update("anything")
    stream.done("anything")
    assert stream.shown == ""
    decoded = []
    assert not AnswerStream(None, ()).ends(lambda: decoded.append(1) or "x")  # no stop, nobody drawing: no decode
    assert decoded == []


def test_a_decode_loop_ends_at_a_complete_answer_and_shows_what_settled_before():
    drawn: list[str] = []
    stream = AnswerStream(drawn.append, ("\n",))
    assert not stream.ends(lambda: "The cap") and not stream.ends(lambda: "The cap is 220.")
    assert stream.ends(lambda: "The cap is 220.\nMore")
    assert drawn == ["The cap", "The cap is 220."]


def _collect():
    texts: list[str] = []
    return texts, texts.append


@pytest.mark.parametrize("strategy", ["rag", "long-context", "auto"])
def test_the_answering_call_streams_and_its_last_text_is_the_answer(tmp_path, strategy):
    example_index(tmp_path)
    idx = docqa.open_index("t", model=FAKE_MODEL)
    texts, on_text = _collect()
    ans = idx.ask("How long is the probation period for new employees?", strategy, on_text=on_text)
    assert "90 days" in ans.text
    assert len(texts) > 1 and texts[-1] == ans.text  # token by token, ending on the answer
    assert all(b.startswith(a) for a, b in zip(texts, texts[1:]))


def test_summarize_streams_none_of_its_chain_calls(tmp_path):
    # Which chain call gives the answer depends on what the chain finds: notes are never drawn as the answer.
    example_index(tmp_path)
    idx = docqa.open_index("t", model=FAKE_MODEL)
    texts, on_text = _collect()
    ans = idx.ask("How long is the probation period for new employees?", "summarize", on_text=on_text)
    assert "90 days" in ans.text and texts == []


def test_eval_and_batches_stream_nothing(tmp_path):
    example_index(tmp_path)
    idx = docqa.open_index("t", model=FAKE_MODEL)
    texts, on_text = _collect()
    answers = idx.ask_many(["How long is the probation period?", "What is the nightly hotel cap?"], "rag",
                           on_text=on_text)
    assert len(answers) == 2 and texts == []


def test_a_variant_cannot_set_the_callback():
    from docqa.errors import ConfigError
    from docqa.strategies.variants import parse_variant

    with pytest.raises(ConfigError, match="on_text"):
        parse_variant("rag:on_text=1")


def test_ask_on_a_terminal_draws_the_answer_as_it_is_written_then_prints_it(tmp_path, monkeypatch):
    from rich.console import Console

    from docqa.cli.main import app

    example_index(tmp_path)
    screen = io.StringIO()
    monkeypatch.setattr("docqa.cli.ask.err", Console(file=screen, force_terminal=True, width=100))
    r = CliRunner().invoke(app, ["ask", "How long is the probation period for new employees?", "--index", "t",
                                 "--model", FAKE_MODEL])
    assert r.exit_code == 0, r.output
    drawn = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())  # the terminal's control sequences
    assert "rag writing…" in drawn and "90 days" in drawn  # the answer while it was written, on stderr
    assert "90 days" in r.stdout and "writing" not in r.stdout  # the finished answer, on stdout
    # Piped (not a terminal): nothing drawn, the same answer printed.
    monkeypatch.setattr("docqa.cli.ask.err", Console(file=io.StringIO(), force_terminal=False))
    piped = CliRunner().invoke(app, ["ask", "How long is the probation period for new employees?", "--index", "t",
                                     "--model", FAKE_MODEL])
    assert piped.exit_code == 0 and "90 days" in piped.stdout


@pytest.mark.parametrize("option", ["on_text", "progress"])
def test_a_callback_that_is_not_a_function_is_one_line(tmp_path, option):
    from docqa.errors import ConfigError

    example_index(tmp_path)
    idx = docqa.open_index("t", model=FAKE_MODEL)
    with pytest.raises(ConfigError, match=f"{option} must be a function taking .*, got int: 123"):
        idx.ask("How long is the probation period?", "rag", **{option: 123})
