"""The refusal detector, pinned on real phrasings both ways, and auto's routing driven by it."""

from __future__ import annotations

import math

import pytest

from docqa.prompts import is_refusal
from tests.conftest import canned_eval

# Declines, as small and large chat models phrase them (SmolLM2, Llama, Qwen, GPT answers collected while evaluating).
REFUSALS = [
    "I don't know.", "I do not know.", "I don’t know the answer.", "I'm not sure.", "I am not sure about that.",
    "I am unable to answer that from the context.", "I cannot answer this question based on the provided context.",
    "I can't find that information in the documents.", "I could not find the answer in the passages.",
    "The context does not mention the parking fee.", "The context doesn't say how many days.",
    "The provided text does not contain this information.", "The documents do not specify the amount.",
    "The document does not include information about bonuses.", "This cannot be determined from the context.",
    "The answer cannot be determined.", "It cannot be answered from the given information.",
    "There is no information about the CEO in the context.", "There is no mention of a deadline.",
    "No mention of pets is made.", "The context makes no mention of it.", "Not mentioned.",
    "Not mentioned in the context.", "This is not stated in the documents.",
    "The amount is not specified in the provided text.", "That information is not provided in the context.",
    "The answer is not in the context.", "The answer is not found in the documents.", "Unknown.", "N/A",
    "The question is unanswerable from the context.", "Unanswerable.", "There is not enough information to answer.",
    "Insufficient information to determine the answer.", "It is not possible to determine this from the context.",
    "I'm sorry, but I cannot find that in the documents.", "Sorry, the context does not provide that.",
    "The passages do not address this question.", "The information is not available in the context.",
    "The context does not appear to mention a refund policy.", "None of the documents mention the office address.",
    "The given information does not indicate the price.", "NOTHING RELEVANT", "The notes do not contain the answer.",
    "It is unclear from the context.", "The context does not provide enough information to answer the question.",
    "The text does not state when the office opens.", "No information is provided about the vendor.",
    "The answer cannot be found in the excerpts.", "We could not determine the figure from the sources.",
]

# Answers that carry the answer, some with words a loose detector would take for a decline.
ANSWERS = [
    "The X3 is not available in red.", "It is not available to all tribal governments.",
    "The contract does not contain a license grant.", "No, employees do not get paid overtime.",
    "Meals are not provided on flights shorter than 4 hours.", "Unknown callers must be reported to security.",
    "The budget cannot be exceeded without approval.", "Information about salaries is confidential.",
    "There is no limit on sick days.", "No information is shared with third parties without consent.",
    "The deadline is not specified in days but in weeks.", "Revenue was not given as a figure; it grew 12%.",
    "Not applicable to contractors.", "The employee does not need to provide a doctor's note.",
    "It is not possible to carry over more than 5 days.", "The nightly hotel cap is 180 euros.",
    "30 days.", "The probation period is six months.", "The CEO is Hank Scorpio.",
    "Sick leave is not counted as vacation.", "The office is not open on Sundays.",
    "Passwords must not be shared with anyone.", "The warranty does not cover water damage.",
    "Badges that are not returned are deactivated.", "The report states revenue of 4.2 million.",
    "The policy is not known to apply abroad, so travel rules apply.", "Employees cannot be found liable for theft.",
    "The model is not mentioned by name but as the X-series.", "The manager is unable to approve expenses alone.",
    "The text message must be sent within 24 hours.", "No details of the merger were made public until March.",
    "Contractors have no access to the payroll system.", "The document must be signed by both parties.",
    "Laptops are not provided to interns.", "Remote work is not allowed during probation.",
    "The information desk is on floor 2.", "The source code is kept in the private repository.",
    "Visitors do not need an escort in the lobby.", "The note must mention the project code.",
    "Yes, the context is clear: 12 rockets were sold.", "The passage of the bill took three months.",
]


def test_table_is_large_enough():
    assert len(REFUSALS) >= 40 and len(ANSWERS) >= 40


@pytest.mark.parametrize("text", REFUSALS)
def test_declines_are_refusals(text):
    assert is_refusal(text), text


@pytest.mark.parametrize("text", ANSWERS)
def test_answers_are_not_refusals(text):
    assert not is_refusal(text), text


def test_auto_routes_exactly_the_declines(canned):
    gen = canned.corpus.generator()
    for text, routed in [(t, True) for t in REFUSALS] + [(t, False) for t in ANSWERS]:
        gen.canned = text
        canned.corpus.caches.clear()  # each on its own: a routed question's prefix would be kept for the next
        ans = canned.ask("What is the nightly hotel cap?", "auto")
        assert (ans.details["route"] == "long-context") is routed, text
        assert ans.text == ("from the whole corpus" if routed else text)
        assert ans.calls == (2 if routed else 1)


def test_auto_routes_on_the_decline_probability_when_the_words_do_not_decline(canned, monkeypatch):
    """A small model rarely says it does not know; the probability it gives "I don't know." routes instead."""
    from docqa.strategies import auto

    gen = canned.corpus.generator()
    gen.canned = "The cap is 250 dollars a night."  # an answer, in words
    threshold = 0.05
    for p, routed in [(0.9, True), (threshold, True), (threshold / 2, False), (0.001, False)]:
        original = gen.generate

        def scored(*a, _p=p, _orig=original, **k):
            out = _orig(*a, **k)
            if k.get("score"):
                out.score_logprob = math.log(_p)
            return out

        monkeypatch.setattr(gen, "generate", scored)
        canned.corpus.caches.clear()  # each on its own: a routed question's prefix would be kept for the next
        ans = canned.ask("What is the nightly hotel cap?", "auto", route_threshold=threshold)
        assert (ans.details["route"] == "long-context") is routed, p
        if auto.DECLINE_P is None:  # by default the probability is neither read nor used: words route
            canned.corpus.caches.clear()
            default = canned.ask("What is the nightly hotel cap?", "auto")
            assert default.details["route"] == "rag" and default.details["decline_p"] is None
        assert ans.details["decline_p"] == pytest.approx(p)
        monkeypatch.setattr(gen, "generate", original)


def test_a_backend_that_cannot_score_falls_back_to_the_words(canned, monkeypatch):
    gen = canned.corpus.generator()
    gen.canned = "The cap is 250 dollars a night."
    original = gen.generate

    def unscored(*a, **k):
        out = original(*a, **k)
        out.score_logprob = None
        return out

    monkeypatch.setattr(gen, "generate", unscored)
    ans = canned.ask("What is the nightly hotel cap?", "auto")
    assert ans.details["route"] == "rag" and ans.details["decline_p"] is None


def test_summarize_takes_a_second_look_with_long_context_when_its_chain_declines(canned):
    """A chain that finds nothing answers "I don't know."; long-context then reads the whole corpus (one more call),
    and the record keeps what the chain said. An answer from the chain stands, and --no-fallback keeps the decline."""
    gen = canned.corpus.generator()
    gen.canned, gen.trained_window = "I don't know.", 16384  # the three documents (~6 k tokens) fit the window
    declined = canned.ask("What is the nightly hotel cap?", "summarize", fallback=False)
    assert declined.text == "I don't know." and declined.details["route"] is None
    looked = canned.ask("What is the nightly hotel cap?", "summarize")
    assert looked.text == "from the whole corpus" and looked.details["route"] == "long-context"
    assert looked.details["chain_answer"] == "I don't know."
    assert looked.calls == declined.calls + 1
    assert looked.timings["lc_total"] > 0 and looked.timings["total"] >= looked.timings["lc_total"]
    assert looked.tokens["prompt"] > declined.tokens["prompt"]
    gen.canned = "The cap is 250 dollars a night."
    answered = canned.ask("What is the nightly hotel cap?", "summarize")
    assert answered.text == gen.canned and answered.details["route"] is None
    assert not any(k.startswith("lc_") for k in answered.timings)


def test_summarizes_second_look_never_stretches_the_window_nor_breaks_the_call_budget(canned):
    """Summarize is the strategy for a corpus past the window: its second look does not pay the stretched prefill
    (auto's may), nor reads more than one summary window, and a --max-calls budget the chain used up is not exceeded
    by it."""
    gen = canned.corpus.generator()
    gen.canned = "I don't know."
    corpus_words = sum(len(gen.encode(d.text)) for d in canned.corpus.store.documents())
    assert 4 * gen.trained_window > corpus_words > gen.trained_window  # fits auto's limit (4 × the window) only
    ans = canned.ask("What is the nightly hotel cap?", "summarize")
    assert ans.text == "I don't know." and ans.details["route"].startswith("map-reduce (long-context skipped: ")
    assert canned.ask("What is the nightly hotel cap?", "auto").details["route"] == "long-context"
    gen.trained_window = 16384
    smaller = canned.ask("What is the nightly hotel cap?", "summarize", summary_window=4096)  # as the demo runs it
    assert smaller.text == "I don't know." and "long-context skipped" in smaller.details["route"]
    calls = canned.ask("What is the nightly hotel cap?", "summarize", fallback=False).calls
    capped = canned.ask("What is the nightly hotel cap?", "summarize", max_calls=calls)
    assert capped.text == "I don't know." and capped.calls == calls
    assert capped.details["route"] == f"map-reduce (long-context skipped: --max-calls {calls} reached)"


def test_eval_records_summarizes_second_look(canned, tmp_path):
    from docqa.eval.report import summarize

    records = canned_eval(canned, tmp_path, "I don't know.", [
        {"id": "cap", "question": "What is the nightly hotel cap?", "answers": ["220 dollars"]},
        {"id": "probation", "question": "How long is the probation period?", "answers": ["90 days"]}],
        ["summarize", "summarize:fallback=false"])
    looked = [r for r in records if r["strategy"] == "summarize"]
    assert [r["route"] for r in looked] == ["long-context"] * 2
    assert {r["chain_answer"] for r in looked} == {"I don't know."} and {r["answer"] for r in looked} == {
        "from the whole corpus"}
    kept = [r for r in records if r["strategy"] == "summarize:fallback=false"]
    assert all(r["long_context_s"] > 0 for r in looked)
    assert {r["answer"] for r in kept} == {"I don't know."} and {r["chain_answer"] for r in kept} == {None}
    assert {r["long_context_s"] for r in kept} == {None}
    rows = {r["strategy"]: r for r in summarize(records)}
    assert rows["summarize"]["second_look_long_context"] == 2
    assert rows["summarize:fallback=false"]["second_look_long_context"] == 0
