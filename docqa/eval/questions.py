"""Question files: docqa's JSONL and L-Eval's per-document format."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BadQuestionFile


@dataclass
class Question:
    id: str
    question: str
    answers: list[str] = field(default_factory=list)  # empty: the answer is not in the corpus
    sources: list[str] = field(default_factory=list)  # gold files, for retrieval recall
    document: str | None = None  # L-Eval: the document (index) this question is about


def load_jsonl(path: Path) -> list[Question]:
    """One JSON object a line with ``question``, ``answers`` (list), optional ``sources`` and ``id``."""
    path = Path(path)
    if not path.is_file():
        raise BadQuestionFile(f"Question file '{path}' does not exist.")
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise BadQuestionFile(f"{path}:{n} is not valid JSON ({e.msg}). Each line must be one JSON object.") from e
        if not isinstance(row, dict) or not str(row.get("question", "")).strip():
            raise BadQuestionFile(f"{path}:{n} has no 'question'. Each line needs at least "
                                  '{"question": "...", "answers": ["..."]}.')
        answers = row.get("answers", [])
        if isinstance(answers, str):
            answers = [answers]
        if not isinstance(answers, list):
            raise BadQuestionFile(f"{path}:{n}: 'answers' must be a list of strings, got {type(answers).__name__}.")
        out.append(Question(str(row.get("id", n)), row["question"].strip(), [str(a) for a in answers],
                            [str(s) for s in row.get("sources", [])]))
    if not out:
        raise BadQuestionFile(f"Question file '{path}' holds no questions.")
    return out


def load_leval(path: Path) -> list[tuple[str, str, list[Question]]]:
    """L-Eval format: one object per document with ``input`` (the document), ``instructions`` (questions) and
    ``outputs`` (references). Returns (document name, document text, its questions) per document."""
    path = Path(path)
    if not path.is_file():
        raise BadQuestionFile(f"L-Eval file '{path}' does not exist.")
    docs = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            text, instructions, outputs = row["input"], row["instructions"], row["outputs"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise BadQuestionFile(f"{path}:{n} is not an L-Eval record with input, instructions, outputs ({e}).") from e
        name = f"doc{n:02d}"
        qs = [Question(f"{name}-q{i + 1:02d}", q.strip(), [a], [f"{name}.txt"], name)
              for i, (q, a) in enumerate(zip(instructions, outputs))]
        docs.append((name, text, qs))
    if not docs:
        raise BadQuestionFile(f"L-Eval file '{path}' holds no documents.")
    return docs
