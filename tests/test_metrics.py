"""Metrics on small hand-computed cases (the L-Eval parity check is benchmarks/scorer_parity.py)."""

import pytest

from docqa.eval.metrics import METRICS, normalize, recall_at_k, refusal, rouge_l, token_f1

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


@pytest.mark.parametrize("name", METRICS.names())
@pytest.mark.parametrize("prediction, references, expected", CASES)
def test_every_metric_on_hand_computed_cases(name, prediction, references, expected):
    assert METRICS.get(name)(prediction, references) == pytest.approx(expected[name])


@pytest.mark.parametrize("name", METRICS.names())
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
