"""Needle in a small haystack (≤ 2 k tokens) with the real embedded model through the long-context strategy.

SmolLM2 was trained on 8 k tokens, so to exercise scaling on a short haystack the test tells docqa the window is
1 k (``GeneratorConfig.trained_window``): the plan then stretches 1.7×, as it would at 14 k on the real window.
"""

from pathlib import Path

import pytest

import docqa
from docqa.generators import GeneratorConfig
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.slow

NEEDLE = "The secret passcode for the server room is 7301. "
QUESTION = "What is the secret passcode for the server room?"


@pytest.fixture(scope="module")
def haystack(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("needle")
    words = (EXAMPLES / "employee_handbook.md").read_text().split()
    hay = " ".join(words[:1100])
    cut = hay.rfind(". ", 0, len(hay) // 2) + 2
    (tmp / "docs").mkdir()
    (tmp / "docs" / "notes.txt").write_text(hay[:cut] + NEEDLE + hay[cut:])
    docqa.ingest(tmp / "docs", "needle", root=tmp / "idx")
    return tmp / "idx"


def test_needle_found_within_the_window(haystack):
    idx = docqa.open_index("needle", root=haystack)
    ans = idx.ask(QUESTION, "long-context", max_new_tokens=24)
    assert ans.tokens["prompt"] <= 2048
    assert ans.details["rope"]["factor"] == 1.0
    assert "7301" in ans.text


@pytest.mark.parametrize("rope", ["dynamic", "yarn"])
def test_needle_found_with_scaling_past_the_window(haystack, rope):
    idx = docqa.open_index("needle", root=haystack, generator=GeneratorConfig(trained_window=1024))
    ans = idx.ask(QUESTION, "long-context", rope=rope, max_new_tokens=24)
    assert ans.details["rope"]["factor"] > 1.5
    assert "7301" in ans.text
    # A second question reuses the prefilled prefix and answers the same.
    again = idx.ask(QUESTION, "long-context", rope=rope, max_new_tokens=24)
    assert again.details["prefix"] == "memory" and again.text == ans.text
    # What the reuse saves is the document's prefill: the second question prefills its own tokens only. Compared by
    # phase, not by total seconds, which a busy machine's decoding can reorder (it did, with another job running).
    assert again.tokens["cached"] > 0 and again.timings["prefix_prefill"] == 0.0
    assert again.tokens["prompt"] - again.tokens["cached"] < ans.tokens["cached"] / 10
    assert again.timings["prefill"] < ans.timings["prefix_prefill"]
