"""Questions about the documents as a whole: the cue that marks them, pinned both ways on real phrasings, and auto
reading such a question's documents instead of four retrieved chunks."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

import docqa
from docqa.strategies.whole import _CUES, whole_cue
from tests.conftest import EXAMPLES, FAKE_EMBEDDER, FAKE_MODEL, canned_eval

# L-Eval's summarization tasks ask these (github.com/OpenLMLab/LEval, LEval-data, commit cd34b05): gov_report_summ,
# patent_summ, meeting_summ, paper_assistant. Then requests as people type them.
WHOLE = [
    "Please help me summarize this government report.",
    "You are a patent examiner. Please write a summary of this patent.",
    "What were the main discussion points of the meeting?",
    "Please generate the Abstract section for this paper.",
    "Summarize the earnings call.", "summarise the handbook", "Can you sum up the call?", "Recap the meeting for me.",
    "tl;dr?", "Give me an overview of the handbook.", "Overview of the policy, please",
    "Write a short summary of these documents.", "What's the gist of it?", "What are the key takeaways?",
    "What are the main findings of the study?", "What is this document about?", "What are these papers about?",
    "Describe the paper.", "What does the report cover?", "What was discussed in the meeting?",
    "What did the group discuss?", "The quarterly report in a nutshell?",
]
# Questions about something in the documents, including the traps a cue must not fall into. The first four are
# meeting_summ's own query-focused questions (same source): one topic of the meeting, which retrieval can find.
SPECIFIC = [
    "What was agreed upon on sample transcripts?", "What was said on speech overlap?",
    "What’s the current status of recordings and transcriptions?", "What was the future of data collection?",
    "Overall, does having parallel data improve semantic role induction across multiple languages?",  # Qasper
    "What does the Summary Plan Description say about dental coverage?", "What does the overview table show for Q2?",
    "Is an abstract class allowed to have a constructor?", "How is the SHA-256 digest computed?",
    "What is the main dataset used?", "What is the policy about remote work?", "Explain the refund process.",
    "Who wrote the report?", "What does the policy say about pets?", "Résume le document.",
    "What topics are included in the debate data?", "What domains are covered in the corpus?",  # Qasper
    "What was discussed about the budget?", "What did the board discuss regarding the merger?",
    "What is discussed in Section 4?",
]


@pytest.mark.parametrize("question", WHOLE)
def test_whole_document_questions_are_recognised(question):
    assert whole_cue(question) in {name for name, _ in _CUES}


@pytest.mark.parametrize("question", SPECIFIC)
def test_questions_about_something_in_the_documents_are_not(question):
    assert whole_cue(question) is None


def test_no_question_of_the_shipped_set_is_routed():
    """The project's own questions ask for facts; none is sent past rag by this cue (nor, measured, any of L-Eval's
    252 financial and scientific questions: benchmarks/RESULTS.md)."""
    rows = [json.loads(x) for x in (EXAMPLES.parent / "questions.jsonl").read_text().splitlines() if x.strip()]
    assert len(rows) > 20
    assert [r["question"] for r in rows if whole_cue(r["question"])] == []


@given(st.text(max_size=300))
def test_any_text_gets_a_cue_name_or_none_whatever_its_case_and_spacing(text):
    cue = whole_cue(text)
    assert cue is None or cue in {name for name, _ in _CUES}
    assert whole_cue(text.upper()) == whole_cue(text.lower()) or re.search(r"[^\x00-\x7f]", text)
    assert whole_cue("  " + "\n ".join(text.split()) + " ") == whole_cue(" ".join(text.split()))


def _corpus_tokens(idx) -> int:
    gen = idx.corpus.generator()
    return sum(len(gen.encode(d.text)) for d in idx.corpus.store.documents())


def test_auto_reads_the_documents_of_a_whole_document_question(canned):
    """One long-context call over every document (they fit the budget), in a paragraph, not rag's four chunks."""
    gen = canned.corpus.generator()
    gen.canned, gen.trained_window = "A sentence about four chunks.", 16384
    assert _corpus_tokens(canned) < 8192
    ans = canned.ask("Summarize the travel policy.", "auto")
    assert ans.text == "from the whole corpus" and ans.strategy == "auto" and ans.calls == 1
    assert ans.details["route"] == "long-context (whole-document question: summarize)"
    assert ans.details["dropped"] == [] and len(ans.sources) == 3
    assert "short paragraph" in gen.prompts[-1]  # one short sentence cannot summarize a document
    # a fact question still starts with rag, and so does a whole-document one with the route turned off
    assert canned.ask("What is the nightly hotel cap?", "auto").details["route"] == "rag"
    off = canned.ask("Summarize the travel policy.", "auto", whole_tokens=0)
    assert off.details["route"] == "rag" and off.text == gen.canned
    # in eval, a set's own style stands (short references asked short)
    canned.ask("Summarize the travel policy.", "auto", style="short")
    assert "a few words" in gen.prompts[-1]


def test_a_shared_instruction_does_not_hide_the_question(canned):
    """eval gives a set's shared lead-in as the instruction; the cue reads the question after it, as retrieval
    does, so a lead-in's words route nothing."""
    gen = canned.corpus.generator()
    gen.canned, gen.trained_window = "An answer.", 16384
    lead = "From the key findings of the quarter, answer the question:"
    assert whole_cue(lead)
    assert canned.ask(f"{lead} What was the revenue?", "auto", instruction=lead).details["route"] == "rag"
    ans = canned.ask(f"{lead} What is this document about?", "auto", instruction=lead)
    assert ans.details["route"] == "long-context (whole-document question: what it is about)"


def test_past_the_budget_auto_reads_the_documents_ranked_first_that_fit(canned):
    gen = canned.corpus.generator()
    gen.trained_window = 16384
    sizes = {d.file: len(gen.encode(d.text)) for d in canned.corpus.store.documents()}
    budget = max(sizes.values()) + 400  # the largest document fits alone, never all three
    assert sum(sizes.values()) > budget
    ans = canned.ask("Give me an overview of the employee handbook.", "auto", whole_tokens=budget)
    assert ans.details["route"] == "long-context (whole-document question: a summary asked for)"
    assert ans.details["dropped"] and len(ans.sources) + len(ans.details["dropped"]) == 3
    assert ans.details["max_context"] == budget and ans.details["rope"]["factor"] == 1.0  # nothing stretched


def test_where_not_one_document_fits_rag_answers_and_says_why(canned):
    """Never a prompt of no documents, and no second look that would read everything: rag's answer stands."""
    gen = canned.corpus.generator()
    gen.canned, gen.trained_window = "I don't know.", 16384
    ans = canned.ask("Summarize the documents.", "auto", whole_tokens=256)
    assert ans.text == "I don't know." and ans.calls == 1
    assert ans.details["route"].startswith("rag (whole-document question (summarize), long-context skipped: ")
    with pytest.raises(docqa.DocQAError, match="Not one document of the index 't' fits --max-context 300"):
        canned.ask("Summarize the documents.", "long-context", max_context=300, truncate=True)


def test_the_budget_is_checked():
    from docqa.strategies.base import AskConfig

    with pytest.raises(docqa.DocQAError, match="--whole-tokens must be 0 .off. or at least 256 tokens, got 100"):
        AskConfig(whole_tokens=100).check()


def test_eval_counts_whole_document_routes(canned, tmp_path):
    from docqa.eval.report import summarize

    records = canned_eval(canned, tmp_path, "An answer.", [
        {"id": "cap", "question": "What is the nightly hotel cap?", "answers": ["220 dollars"]},
        {"id": "gist", "question": "What is the travel policy about?", "answers": ["Travel and expenses."]}],
        ["auto", "auto:whole_tokens=0"])
    rows = {r["strategy"]: r for r in summarize(records)}
    assert rows["auto"]["routed_whole_document"] == 1 and rows["auto"]["routed_long_context"] == 1
    assert rows["auto"]["routed_rag"] == 1
    assert rows["auto:whole_tokens=0"]["routed_whole_document"] == 0
    assert rows["auto:whole_tokens=0"]["routed_rag"] == 2


def test_a_model_with_a_smaller_window_reads_within_it_unstretched(canned):
    gen = canned.corpus.generator()
    gen.canned, gen.trained_window = "An answer.", 4096  # smaller than the budget and than the corpus
    ans = canned.ask("Summarize the employee handbook.", "auto")
    assert ans.details["route"].startswith("long-context (whole-document question")
    assert ans.details["max_context"] == 4096 and ans.details["rope"]["factor"] == 1.0 and ans.details["dropped"]


def test_ask_says_when_rag_answered_a_whole_document_question(small_docs):
    from typer.testing import CliRunner

    from docqa.cli.main import app

    docqa.ingest(small_docs, "t", embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    run = CliRunner()
    base = ["--index", "t", "--model", FAKE_MODEL]
    r = run.invoke(app, ["ask", "Summarize the travel policy.", *base])
    assert r.exit_code == 0, r.output
    said = " ".join(r.output.split())
    assert "This asks about the documents as a whole; rag read 4 passages of" in said
    assert "--strategy auto reads the documents themselves" in said
    for args in (["What is the hotel cap?"], ["Summarize the travel policy.", "--json"]):
        r = run.invoke(app, ["ask", *args, *base])
        assert r.exit_code == 0 and "as a whole" not in r.output


def test_a_kept_prefix_answers_a_whole_document_question_in_a_paragraph_too(canned):
    """long-context asked before keeps its prefix in the sentence style; a summary asked next is still answered in a
    paragraph (its own prefix), and a later one from that kept prefix."""
    gen = canned.corpus.generator()
    gen.canned, gen.trained_window = "An answer.", 16384
    canned.ask("What is the nightly hotel cap?", "long-context")
    first = canned.ask("Summarize the travel policy.", "auto")
    assert first.details["route"].startswith("long-context (whole-document question") and \
        "short paragraph" in gen.prompts[-1]
    again = canned.ask("What are the main points of the handbook?", "auto")
    assert again.details["route"] == "long-context (prefix kept)" and "short paragraph" in gen.prompts[-1]
    assert canned.ask("What is the nightly hotel cap?", "auto").details["route"] == "long-context (prefix kept)"
    assert "one short sentence" in gen.prompts[-1]
