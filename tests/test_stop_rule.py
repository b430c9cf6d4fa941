"""The stop rule that ends answers: a line break, except after a lead-in ("… are:") and through the list it announces.

Decoding checks the rule after every token and stops at the first complete answer, so the rule must be stable:
once a prefix of the output holds a complete answer, more output must not change it (property-tested)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from docqa.generators.base import cut_at_stop, hits_stop

NL = ("\n",)


@pytest.mark.parametrize("text, answer", [
    ("The cap is 320 dollars.\nMore text", "The cap is 320 dollars."),
    ("\n\nThe cap.\nx", "The cap."),
    ("The main risks are:\n- supply\n- demand\nAnother paragraph", "The main risks are:\n- supply\n- demand"),
    ("The answer to the question is:\n\n1. A\n2. B\n\nNext", "The answer to the question is:\n\n1. A\n2. B"),
    ("The answer to the question is:\nRevenue grew 10 %.\nThen", "The answer to the question is:\nRevenue grew 10 %."),
    ("This contract includes the following:\na) a term\nb) a fee\nc) a cap\n\n", "This contract includes the "
     "following:\na) a term\nb) a fee\nc) a cap"),
    ("ratio 3:1 holds.\nx", "ratio 3:1 holds."),
])
def test_answers_end_where_a_reader_would_end_them(text, answer):
    assert hits_stop(text, NL) and cut_at_stop(text, NL) == answer


@pytest.mark.parametrize("text, answer", [
    ("Revenue grew.\n\nMore", "Revenue grew."),
    ("The primary uses include:\n\n1. debt repayment\n2. buybacks\n\nNext", "The primary uses include:\n\n1. debt "
     "repayment\n2. buybacks"),
])
def test_paragraphs_end_at_a_blank_line_but_not_after_a_lead_in(text, answer):
    stop = ("\n\n",)
    assert hits_stop(text, stop) and cut_at_stop(text, stop) == answer
    assert not hits_stop("The primary uses include:\n\n", stop)


@pytest.mark.parametrize("text", ["The answers are:", "The answers are:\n", "Items:\n- a\n- b", "Items:\n- a\n- b\nAn",
                                  "no line break yet"])
def test_unfinished_answers_go_on(text):
    assert not hits_stop(text, NL)


PIECES = ["\n", "\n\n", ":", "- ", "1. ", "a) ", "word", " ", "x.", "Another", "12", "(b) "]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=14), st.sampled_from([("\n",), ("\n\n",), ("\n", "STOP")]))
def test_once_an_answer_is_complete_more_output_does_not_change_it(pieces, stop):
    text = "".join(pieces)
    for k in range(len(text) + 1):
        if hits_stop(text[:k], stop):
            assert hits_stop(text, stop)
            assert cut_at_stop(text, stop) == cut_at_stop(text[:k], stop)
            assert text.lstrip().startswith(cut_at_stop(text, stop))
            break
