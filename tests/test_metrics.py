"""Metrics on small hand-computed cases (the L-Eval parity check is benchmarks/scorer_parity.py)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from docqa.eval.metrics import (
    KIND_METRICS,
    METRICS,
    OPTION_METRICS,
    TEXT_METRICS,
    chosen_options,
    normalize,
    recall_at_k,
    reference_options,
    refusal,
    rouge_l,
    token_f1,
)

CASES = [
    # prediction, references, {metric: expected}
    ("The cap is 220 US dollars.", ["220 US dollars"],
     {"exact_match": 0.0, "contains": 1.0, "f1": 2 * (3 / 5) * 1 / (3 / 5 + 1), "rouge_l": 2 * (3 / 5) / (3 / 5 + 1)}),
    ("Daniel Reyes", ["daniel reyes.", "the CFO"], {"exact_match": 1.0, "contains": 1.0, "f1": 1.0, "rouge_l": 1.0}),
    # P = 1/3, R = 1/2
    ("about 18 months", ["12 months"], {"exact_match": 0.0, "contains": 0.0, "f1": 0.4, "rouge_l": 0.4}),
    ("", ["24 days"], {"exact_match": 0.0, "contains": 0.0, "f1": 0.0, "rouge_l": 0.0}),
]


def test_normalize_is_squad():
    assert normalize("The  Answer, is: an APPLE!") == "answer is apple"


# Multiple choice: prediction, references, expected score.
CHOICE_CASES = [
    ("B", ["B"], 1.0), ("(B) to earn money", ["B"], 1.0), ("The answer is C.", ["C"], 1.0),
    ("Answer: D", ["D"], 1.0), ("B and D", ["BD"], 1.0), ("B, D", ["B D"], 1.0), ("BD", ["D B"], 1.0),
    ("B", ["BD"], 0.0),  # all correct options, not some
    ("B and D", ["B"], 0.0),  # no extra ones
    ("A tall man", ["B"], 0.0), ("I don't know.", ["A"], 0.0), ("", ["A"], 0.0),
    ("Each of them", ["E"], 0.0),  # a word that starts with a letter is not a choice
    ("to earn money by painting", ["B"], 0.0),  # an option's text without its letter: no letter chosen
]


def test_text_and_kind_metrics_cover_the_registry():
    assert set(TEXT_METRICS) | set(KIND_METRICS) == set(METRICS.names()) and "choice" in OPTION_METRICS
    assert set(KIND_METRICS.values()) <= set(KIND_METRICS)  # each kind is scored by a metric of its own name


# True/False (L-Eval's sci_fi), read as L-Eval's scorer reads it: the first word containing "true" or "false".
@pytest.mark.parametrize("prediction, reference, expected", [
    ("True", "True", 1.0), ("True. The document states that the journey took four years.", "True", 1.0),
    ("false", "False", 1.0), ("FALSE, thirteen years passed.", "False", 1.0),
    ("False, because it is true that …", "True", 0.0),  # the first verdict counts
    ("1. Yes, humans have mastered interstellar travel.", "True", 0.0),  # no verdict: wrong, not a guess
    ("It is untrue.", "False", 0.0),  # "untrue" contains "true", as in L-Eval's scorer
    ("False", "False [fact: True]", 1.0),  # the fact part is a second question there, not scored here
    ("", "True", 0.0),
])
def test_true_false_reads_the_first_verdict(prediction, reference, expected):
    assert METRICS.get("true_false")(prediction, [reference]) == expected


@given(st.text(max_size=80), st.sampled_from(["True", "False", "false [fact: true]"]))
def test_true_false_is_a_score_for_any_text(prediction, reference):
    assert METRICS.get("true_false")(prediction, [reference]) in (0.0, 1.0)


def test_names_option_counts_answers_in_letters_right_or_wrong():
    fn = METRICS.get("names_option")
    assert [fn(p, ["B"]) for p in ("B", "(C) no", "The answer is D.", "to earn money", "")] == [1, 1, 1, 0, 0]


@pytest.mark.parametrize("prediction, references, expected", CHOICE_CASES)
def test_choice_on_hand_computed_cases(prediction, references, expected):
    assert METRICS.get("choice")(prediction, references) == expected


@given(st.sets(st.sampled_from("ABCDEFGH"), min_size=1, max_size=4),
       st.sampled_from(["{}", "({})", "{}.", "Answer: {}", "The correct answer is {}.", "Option {}"]),
       st.sampled_from([" and ", ", ", " ", ""]))
def test_chosen_options_reads_back_what_was_written(letters, form, sep):
    ordered = sorted(letters)
    if form.startswith(("Answer", "The", "Option")) and len(ordered) > 1:
        ordered = ordered[:1]  # "the answer is B" names one option
    text = form.format(sep.join(ordered))
    assert chosen_options(text) == frozenset(ordered)
    assert reference_options(sep.join(ordered) if sep != " and " else "".join(ordered)) == frozenset(ordered)


@pytest.mark.parametrize("name", TEXT_METRICS)
@pytest.mark.parametrize("prediction, references, expected", CASES)
def test_every_metric_on_hand_computed_cases(name, prediction, references, expected):
    assert METRICS.get(name)(prediction, references) == pytest.approx(expected[name])


@pytest.mark.parametrize("name", TEXT_METRICS)
def test_every_metric_is_bounded_and_perfect_on_identity(name):
    fn = METRICS.get(name)
    assert fn("Sixteen weeks of paid leave", ["Sixteen weeks of paid leave"]) == 1.0
    assert 0.0 <= fn("x y z", ["a b c d"]) <= 1.0
    assert fn("anything", []) == 0.0


def test_rouge_l_rewards_order_and_f1_does_not():
    assert token_f1("dog cat", ["cat dog"]) == 1.0
    assert rouge_l("dog cat", ["cat dog"]) == pytest.approx(0.5)


def test_refusal_and_recall():
    assert refusal("I don't know.", []) == 1.0
    assert refusal("The policy allows dogs.", []) == 0.0
    assert refusal("The context does not provide information about pets.", []) == 1.0
    assert recall_at_k(["a.md", "b.pdf"], ["b.pdf", "c.txt"]) == 0.5
