"""Questions about a document as a whole ("Summarize the report.", "What are the main points of the call?").

Retrieval answers a question from the few passages most like it; a request for a summary is like no passage in
particular, so rag summarizes whichever four chunks came first (asked "Summarize the earnings call." of a financial
transcript, the 1.5 B reader described the call's safe-harbour opening). ``auto`` reads such a question's documents
whole instead (:func:`docqa.strategies.auto.ask`), as llama-index's router engines send summary questions to a
summary index rather than to a vector index.

The test is lexical, by design: it costs nothing on the questions it lets pass (every question ``auto`` answers pays
it), a user can read why a question was routed (the cue is recorded as the route), and it does not depend on the
reader. Asking the reader instead (one short forward of ~70 tokens a question, at the 1.5 B reader's ~150 prompt
tokens/s on 2 CPU cores) would add ~0.5 s to every ``auto`` question, for questions that are rare in question sets.
English only: a question in another language is never routed here, and gets rag's answer as before.

What counts (measured: benchmarks/whole_questions.py, benchmarks/RESULTS.md): a verb that asks for a summary
("summarize", "sum up", "recap", "tl;dr"), a noun for one that is asked for ("give me a summary", "an overview of",
"what is the gist"), the document's main points, themes or takeaways, "what is this document about" and "what was
discussed in the meeting". Not: "summary" or "overview" as a name ("the Summary Plan Description", "What does the
overview table say?"), and "overall"/"main" next to anything else ("Overall, does X improve Y?", "What is the main
dataset?").
"""

from __future__ import annotations

import re

_DOC = (r"(?:document|documents|doc|docs|file|files|text|texts|report|reports|paper|papers|article|articles|call|"
        r"transcript|transcripts|meeting|essay|essays|book|chapter|story|letter|memo|policy|handbook|manual|"
        r"contract|agreement|patent|filing|presentation|talk|lecture|episode|speech|thread|email|e-mail|corpus|"
        r"material|materials|content|it|this)")
# "digest" and "abstract" are left out: a message digest, an abstract class (an abstract asked for is matched
# narrowly below). A noun followed by one of _NAMED names a part of the document, not a summary asked for.
_SUMMARY_NOUN = r"(?:summary|summaries|synopsis|overview|gist|recap|rundown|précis|tl;?dr)"
_NAMED = r"(?!\s+(?:table|section|page|plan|statement|field|tab|sheet|box|column|row|screen|panel|chart)s?\b)"
_CUES: tuple[tuple[str, re.Pattern[str]], ...] = tuple((name, re.compile(rx, re.I)) for name, rx in (
    # A verb that asks for a summary: "Summarize the report", "Can you sum up the call?", "please recap".
    ("summarize", r"\b(?:summari[sz](?:e|es|ing)|sum\s+(?:it\s+|this\s+|that\s+|them\s+)?up|recap|tl;?dr)\b"),
    # A summary asked for: "Give me a short summary", "Write an abstract for this paper", "an overview of the
    # policy", "What's the gist?", "Summary of the meeting?" at the start.
    ("a summary asked for",
     r"(?:\b(?:give|write|provide|produce|create|generate|draft|prepare|make|need|want|like|show|get|share|compose)"
     r"\b[^.?!\n]{0,40}?\b" + _SUMMARY_NOUN + r"\b" + _NAMED +
     r"|^\W*(?:(?:a|an|the)\s+)?(?:(?:brief|short|quick|concise|detailed|high-level|executive|one-paragraph)\s+)?"
     + _SUMMARY_NOUN + r"\b" + _NAMED +
     r"|\bwhat(?:'s|\s+is|\s+was|\s+are)\s+(?:the\s+)?(?:(?:main|overall|general|basic)\s+)?"
     r"(?:gist|synopsis|tl;?dr|main\s+idea|big\s+picture)\b|\bin\s+a\s+nutshell\b"
     # An abstract for a paper: "Please generate the Abstract section for this paper."
     r"|\b(?:an|the)\s+abstract\s+(?:section\s+)?(?:for|of)\s+(?:(?:this|that|the|my|our)\s+)?" + _DOC + r"\b)"),
    # The main points: "What are the key takeaways of the call?", "the main themes", "the main discussion points".
    ("the main points",
     r"\b(?:main|key|major|central|principal|core|most\s+important|overarching)\s+"
     r"(?:(?:discussion|talking)\s+)?(?:points|ideas|themes|topics|takeaways|take-aways|messages|highlights|"
     r"arguments|conclusions|findings|contributions|lessons)\b"),
    # What it is about: "What is this document about?", "What are these papers about?", "what's it about".
    ("what it is about",
     r"\bwhat(?:'s|\s+is|\s+was|\s+are|\s+were)\s+(?:(?:this|that|these|those|the|your|my|our)\s+)?"
     r"(?:\w+\s+)?" + _DOC + r"\s+(?:all\s+)?about\s*[?.!]*\s*$"),
    # Described whole: "Describe the paper.", "What does the document cover?" (nothing after the verb).
    ("described whole",
     r"\b(?:describe|explain|outline)\s+(?:(?:this|that|these|those|the|your|my|our)\s+)?(?:\w+\s+)?" + _DOC
     + r"\s*[?.!]*\s*$"
     r"|\bwhat\s+(?:does|do|did)\s+(?:(?:this|that|these|those|the)\s+)?(?:\w+\s+)?" + _DOC
     + r"\s+(?:say|cover|discuss|describe|contain|talk\s+about)\s*[?.!]*\s*$"
     # "What was discussed in the meeting?", "What did the group discuss?" (nothing after it: not "… about X?")
     r"|\bwhat\s+(?:was|were|is|are|has\s+been|have\s+been)\s+(?:discussed|covered|talked\s+about)"
     r"(?:\s+(?:in|during|at|on)\s+(?:(?:this|that|the|our|today's)\s+)?(?:\w+\s+)?" + _DOC + r")?\s*[?.!]*\s*$"
     r"|\bwhat\s+did\s+(?:they|we|you|(?:the|our)\s+\w+)\s+(?:discuss|talk\s+about|cover)"
     r"(?:\s+(?:in|during|at)\s+(?:(?:this|that|the|our|today's)\s+)?(?:\w+\s+)?" + _DOC + r")?\s*[?.!]*\s*$"),
))


def whole_cue(question: str) -> str | None:
    """What marks ``question`` as one about its documents as a whole (a summary, the main points, what it is
    about), by name; None for a question about something in them. ``question`` is what retrieval would see (no
    shared instruction, no length hint)."""
    text = " ".join(question.split())
    for name, rx in _CUES:
        if rx.search(text):
            return name
    return None
