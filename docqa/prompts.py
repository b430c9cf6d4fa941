"""Prompt texts, in one place so that strategies stay comparable and a reader can see every word the model sees.

Small instruction models (the embedded SmolLM2 has 135 M parameters) follow short, concrete instructions best: one
task, the material, the question last.
"""

from __future__ import annotations

import re

NO_ANSWER = "I don't know."

# Chosen by trying four wordings on 8 questions of examples/questions.jsonl with SmolLM2-135M (rag, top-4): this one
# answered 4 correctly; a longer, stricter instruction made the model emit numbered lists instead of answers.
SYSTEM = (
    "You are a helpful assistant. Answer the question from the context in one short sentence. If the context does "
    f'not contain the answer, say "{NO_ANSWER}"'
)


# Answers are one sentence, so the first line break ends them. Small models tend to go on with numbered lists or new
# paragraphs of loosely related text: on examples/ with long-context, 96-token rambles made a question on a cached
# 30 k prefix cost ~20 s, nearly all of it decoding. Notes of summarization chains may span lines and stop at a blank
# line instead (NOTES_STOP).
STOP = ("\n",)
NOTES_STOP = ("\n\n",)


def passages_block(passages: list[tuple[str, str]]) -> str:
    """Passages, each prefixed by its source: ``[handbook.md] text``."""
    return "\n\n".join(f"[{where}] {text.strip()}" for where, text in passages)


def documents_block(documents: list[tuple[str, str]]) -> str:
    """Whole documents, each under a title line, for long-context prompts."""
    return "\n\n".join(f"=== Document: {title} ===\n{text.strip()}" for title, text in documents)


def question_block(question: str) -> str:
    return f"Question: {question.strip()}"


def context_user(question: str, context: str, split: str = "") -> str:
    """The user turn of every answer-from-context prompt: the context, then the question (``split``, if given, marks
    where the cacheable part ends)."""
    return f"Context:\n{context}\n\n{split}{question_block(question)}"


def rag_user(question: str, passages: list[tuple[str, str]]) -> str:
    return context_user(question, passages_block(passages))


# Long-context prompts are split at the question so the document part is a fixed, cacheable token prefix.
LONG_CONTEXT_HEAD = "Context:\n"
LONG_CONTEXT_TAIL = "\n\n"


_REFUSALS = re.compile(
    r"\b(i (do not|don t) know|not (mentioned|stated|provided|specified|available|found|in the (context|documents?))"
    r"|no information|cannot (be )?(answer|determine|found)|unanswerable"
    r"|does not (say|mention|contain|specify|provide))\b"
)


def is_refusal(answer: str) -> bool:
    """True when an answer declines ("I don't know.", "not mentioned in the context", …). Used by the auto strategy
    to route, and by evaluation to score questions whose answer is not in the corpus."""
    text = answer.lower().replace("’", "'").replace("'", " ")
    return bool(_REFUSALS.search(text))
