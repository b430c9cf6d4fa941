"""Prompt texts, in one place so that strategies stay comparable and a reader can see every word the model sees.

Small instruction models (the embedded SmolLM2 has 135 M parameters) follow short, concrete instructions best: one
task, the material, the question last.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ConfigError
from .registry import Registry

NO_ANSWER = "I don't know."


@dataclass(frozen=True)
class AnswerStyle:
    """How long an answer should be: the instruction that asks for it and the stop strings that end it."""

    instruction: str
    stop: tuple[str, ...]
    refuse: bool = True  # offer "I don't know" when the context lacks the answer (a multiple-choice exam has one)
    # The same length as a phrase after "write it …", for prompts that ask for an answer again (summarize's refine
    # step): a paragraph-style question was told "one short sentence" there, whatever its style.
    form: str = "in one short sentence"


# Answer styles: name → AnswerStyle. "sentence" is `docqa ask`'s default; `docqa eval` picks the style that matches
# its question set's references (:func:`style_for_references`). Short and sentence answers end at a line break
# (small models go on with numbered lists or loosely related paragraphs: on examples/ with long-context, 96-token
# rambles made a question on a cached 30 k prefix cost ~20 s), except after a lead-in ("… are:", see
# docqa/generators/base.py); paragraphs end at a blank line.
STYLES: Registry[AnswerStyle] = Registry("answer style")
STYLES.register("short", AnswerStyle(
    "Answer the question from the context with the answer alone: a few words, a number or a name.", ("\n",),
    form="as the answer alone: a few words, a number or a name"))
# Chosen by trying four wordings on 8 questions of examples/questions.jsonl with SmolLM2-135M (rag, top-4): this one
# answered 4 correctly; a longer, stricter instruction made the model emit numbered lists instead of answers.
STYLES.register("sentence", AnswerStyle("Answer the question from the context in one short sentence.", ("\n",),
                                        form="in one short sentence"))
STYLES.register("paragraph", AnswerStyle(
    "Answer the question from the context in a short paragraph of two to four sentences.", ("\n\n",),
    form="in a short paragraph of two to four sentences"))
# Multiple choice (questions whose options are lettered lines, references the letters): the letter alone, which
# docqa/eval/metrics.py's choice metric reads.
STYLES.register("choice", AnswerStyle(
    "Answer with the letter of the correct option alone (the letters of all correct options if several are).", ("\n",),
    refuse=False, form="as the letter of the correct option alone"))
DEFAULT_STYLE = "sentence"


def system(style: str = DEFAULT_STYLE) -> str:
    """The system prompt of an answer in ``style``."""
    spec = STYLES.get(style)
    refuse = f' If the context does not contain the answer, say "{NO_ANSWER}"' if spec.refuse else ""
    return f"You are a helpful assistant. {spec.instruction}{refuse}"


def stop(style: str = DEFAULT_STYLE) -> tuple[str, ...]:
    return STYLES.get(style).stop


SHORT_MAX_WORDS = 4  # references up to this long are "short" answers: a few words, a number or a name


def style_for_references(references: list[list[str]]) -> str:
    """The style whose answers look like a question set's references, by their median length in words: up to 4 →
    short (examples/: "90 days", "320 USD"), up to 25 → sentence, longer → paragraph (L-Eval financial QA's
    references: a median of 57 words). Questions without references do not count."""
    lengths = sorted(len(r[0].split()) for r in references if r)
    if not lengths:
        return DEFAULT_STYLE
    median = lengths[len(lengths) // 2]
    return "short" if median <= SHORT_MAX_WORDS else "sentence" if median <= 25 else "paragraph"


def style_for_questions(references: list[list[str]], metrics: list[str]) -> str:
    """The style of a question set's free-text questions (:func:`style_for_references` over theirs alone), or choice
    when every question is multiple choice. In a mixed set, ``docqa eval`` asks each multiple-choice question in the
    choice style and the others in this one (docqa/eval/runner.py ``question_style``)."""
    free = [r for r, m in zip(references, metrics, strict=True) if m != "choice"]
    if metrics and not free:
        return "choice"
    return style_for_references(free)


def with_options(question: str, options: list[str]) -> str:
    """A question followed by its options as lettered lines (``A. …``), the shape L-Eval's exams use."""
    return "\n".join([question.strip(), *(f"{chr(65 + i)}. {o.strip()}" for i, o in enumerate(options))])


def check_style(style: str) -> str:
    if style not in STYLES:
        raise ConfigError(f"Unknown answer style '{style}'. Use {', '.join(STYLES.names())} (or auto in docqa eval).")
    return STYLES.canonical(style)


SYSTEM = system(DEFAULT_STYLE)
STOP = stop(DEFAULT_STYLE)
NOTES_STOP = ("\n\n",)  # notes of summarization chains may span lines and end at a blank line


def passages_block(passages: list[tuple[str, str]]) -> str:
    """Passages, each prefixed by its source: ``[handbook.md] text``."""
    return "\n\n".join(f"[{where}] {text.strip()}" for where, text in passages)


def documents_block(documents: list[tuple[str, str]]) -> str:
    """Whole documents, each under a title line, for long-context prompts."""
    return "\n\n".join(f"=== Document: {title} ===\n{text.strip()}" for title, text in documents)


def with_length(question: str, length_hint: int | None) -> str:
    """The question as the model reads it: with ``length_hint``, followed on its own line by an instruction to answer
    in about that many words.

    Why not L-Eval's own sentence after the question ("The suggested output length is around N words.", as its
    baselines were asked): the 1.5 B reader answered 4-6 % of questions of every strategy with that sentence itself,
    an answer that scores ~0. Worded as an instruction on its own line it never did, and every strategy (and
    llama-index's default engine) scored higher by the mean on both question sets measured (benchmarks/RESULTS.md,
    "The length hint reworded, every row"; ``benchmarks/hint_wording.py`` runs either wording)."""
    question = question.strip()
    return f"{question}\nAnswer in about {length_hint} words." if length_hint else question


def question_block(question: str, length_hint: int | None = None) -> str:
    return f"Question: {with_length(question, length_hint)}"


def context_user(question: str, context: str, split: str = "", length_hint: int | None = None) -> str:
    """The user turn of every answer-from-context prompt: the context, then the question (``split``, if given, marks
    where the cacheable part ends)."""
    return f"Context:\n{context}\n\n{split}{question_block(question, length_hint)}"


def rag_user(question: str, passages: list[tuple[str, str]], length_hint: int | None = None) -> str:
    return context_user(question, passages_block(passages), length_hint=length_hint)


# Long-context prompts are split at the question so the document part is a fixed, cacheable token prefix.
LONG_CONTEXT_HEAD = "Context:\n"
LONG_CONTEXT_TAIL = "\n\n"


# What a decline refers to: the material the model was given. Only with such a referent do "not mentioned",
# "does not contain" and the like decline; without it they are answers ("The X3 is not available in red.",
# "The contract does not contain a license grant."). tests/test_refusal.py holds the table both ways.
_REF = (r"(?:the |this |these |that |provided |given |above |available |supplied |retrieved )*"
        r"(?:context|documents?|texts?|passages?|excerpts?|information|notes|materials?|sources?)\b")
_VERB = (r"(?:say|says|mention|mentions|contain|contains|specify|specifies|provide|provides|include|includes|state|"
         r"states|give|gives|discuss|address|indicate|list|describe|cover|answer|tell|have|mentioned)")
_REFUSALS = re.compile("|".join([
    r"\bi (?:do not|don t|dont) know\b",
    r"\bi(?: m| am) (?:not sure|unsure|unable|not able)\b",
    r"\b(?:i|we) (?:cannot|can t|can not|could not|couldn t|am unable to|was unable to|are unable to) "
    r"(?:find|answer|determine|tell|say|locate|provide|see|identify)",
    r"\b(?:cannot|can t|can not|could not|couldn t) be (?:determined|answered|inferred|deduced|established)\b",
    r"\b(?:answer|information) (?:cannot|can t|could not|couldn t) be found\b",
    r"\bunable to (?:answer|determine|find|locate|tell)\b",
    r"\b(?:not enough|insufficient|no relevant|no specific) (?:information|details|data|context)\b",
    r"\bthere (?:is|was) no (?:information|mention|data|details?|reference|indication)\b",
    r"\bno (?:information|details) (?:about|on|regarding|in|is given|is provided|was provided|available)\b",
    r"\b(?:makes|made|is) no (?:mention|reference)\b|\bno mention (?:of|about|is made)\b",
    rf"\b{_REF} (?:does not|doesn t|do not|don t|did not|didn t) (?:(?:appear|seem) to )?{_VERB}\b",
    rf"\bnone of the {_REF} {_VERB}\b",
    r"\bnot (?:mentioned|stated|specified|provided|given|included|found|listed|available|discussed|addressed|"
    rf"covered|present|indicated|described|clear|known) (?:in|by|within|from) {_REF}",
    rf"\b(?:unclear|not clear) (?:from|in|based on) {_REF}",
    rf"\banswer (?:is|was) not (?:in|found in|contained in|part of|present in|available in) {_REF}",
    r"\bnot (?:possible|able) to (?:answer|determine|say|tell|know)\b",
    r"\bunanswerable\b|\bnothing relevant\b",
    r"^\W*(?:unknown|not (?:mentioned|stated|specified|provided|available|given|known)|n a|na|none given|"
    r"no answer|no information)\W*$",
]))


def is_refusal(answer: str) -> bool:
    """True when an answer declines ("I don't know.", "not mentioned in the context", …) rather than answering.
    Used by the auto strategy to route, by chains to drop empty notes, and by evaluation to score questions whose
    answer is not in the corpus. A table of phrasings, both ways, pins it (tests/test_refusal.py)."""
    text = re.sub(r"[’'`/]", " ", answer.lower()).strip()
    return bool(_REFUSALS.search(text))
