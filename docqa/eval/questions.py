"""Question files: docqa's JSONL and L-Eval's per-document format.

Every record goes through a pydantic schema, and anything wrong — the file's encoding, a line that is not JSON, a
field of the wrong type, nesting too deep, a number too long — becomes one :class:`BadQuestionFile` naming
``file:line``, what is wrong and the expected shape. Lines are split on ``\\n`` only: JSON strings may hold U+2028,
U+0085 or form feeds, which ``str.splitlines`` would also split on. A gzip file is read as its content; a UTF-16 or
UTF-32 file with a byte-order mark is decoded; anything else must be UTF-8.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Optional, Union

from pydantic import BaseModel, ConfigDict, StrictFloat, StrictInt, StrictStr, ValidationError, model_validator
from pydantic import Field as PField

from ..errors import BadQuestionFile
from ..prompts import with_options
from .metrics import reference_options

MAX_BYTES = 1 << 30  # a question file (decompressed) larger than 1 GB is a mistake, not a question set
_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
         (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))
JSONL_SHAPE = '{"question": "...", "answers": ["..."], "sources": ["file.md"], "id": "q1"}'
CHOICE_SHAPE = '{"question": "...", "options": ["...", "..."], "answers": ["B"]}'
# L-Eval's `evaluation` field → docqa's metric. "exam" becomes choice where the question has lettered options and
# exact match otherwise (gsm100, topic retrieval); "rouge" tasks (summaries) are scored by ROUGE-L where L-Eval reports
# the geometric mean of ROUGE-1/2/L; LLM- and human-judged documents have no automatic metric (None).
LEVAL_METRICS = {"f1": "f1", "rouge": "rouge_l", "exam": "exact_match", "llm": None, "human": None}
_OPTION_LINE = re.compile(r"^\s*\(?([A-H])[.)]\s+\S", re.M)
LEVAL_SHAPE = '{"input": "document text", "instructions": ["question", ...], "outputs": ["reference", ...]}'


@dataclass
class Question:
    id: str
    question: str
    answers: list[str] = field(default_factory=list)  # empty: the answer is not in the corpus
    sources: list[str] = field(default_factory=list)  # gold files, for retrieval recall
    document: str | None = None  # L-Eval: the document (index) this question is about
    # The metric that scores this question's answers (a name in docqa.eval.metrics.METRICS): token F1 for free text,
    # choice for lettered options. None: its source scores it by other means (L-Eval's LLM-judged and human-judged
    # documents), so an eval leaves it out.
    metric: str | None = "f1"


NonBlank = Annotated[StrictStr, PField(pattern=r"\S")]


class QuestionRecord(BaseModel):
    """One line of docqa's JSONL. Extra keys are allowed (and ignored), so richer files can be reused."""

    model_config = ConfigDict(extra="allow")

    question: NonBlank
    # References: strings; numbers are accepted as their text ("answers": [42]). One string stands for a list of one.
    answers: Union[list[Union[StrictStr, StrictInt, StrictFloat]], StrictStr] = []
    sources: list[StrictStr] = []
    id: Union[StrictStr, StrictInt, None] = None
    # Multiple choice: the options, shown to the model as lettered lines; answers are letters or options' texts.
    options: list[NonBlank] = PField(default=[], max_length=8)


class LevalRecord(BaseModel):
    """One document of an L-Eval file, with its questions and references (one reference per question)."""

    model_config = ConfigDict(extra="allow")

    input: NonBlank
    instructions: list[NonBlank]
    outputs: list[StrictStr]
    evaluation: Optional[StrictStr] = None  # how L-Eval scores this document's questions: f1, rouge, exam, LLM, human

    @model_validator(mode="after")
    def _paired(self) -> LevalRecord:
        if len(self.instructions) != len(self.outputs):
            raise ValueError(f"{len(self.instructions)} instructions but {len(self.outputs)} outputs")
        return self


def _decode(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise BadQuestionFile(f"Cannot read '{path}' ({e.strerror}).") from e
    if data[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=__import__("io").BytesIO(data)) as g:
                data = g.read(MAX_BYTES + 1)
        except (OSError, EOFError, zlib.error) as e:
            raise BadQuestionFile(f"'{path}' is a damaged gzip file ({e}). Decompress or re-create it.") from e
    if len(data) > MAX_BYTES:
        raise BadQuestionFile(f"'{path}' is over {MAX_BYTES >> 20} MB; split it into smaller question files.")
    for bom, enc in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(enc)
            except UnicodeDecodeError as e:
                raise BadQuestionFile(f"'{path}' starts with a {enc} byte-order mark but is not valid {enc} "
                                      f"({e.reason}). Save it as UTF-8.") from e
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise BadQuestionFile(f"{path}:{line}: not UTF-8 (byte 0x{data[e.start]:02x} at column {col}). Save the "
                              f"file as UTF-8.") from e


def _lines(path: Path, what: str) -> list[tuple[int, object]]:
    """(line number, parsed JSON) for every non-blank line of a JSONL file."""
    path = Path(path)
    if not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file" if path.exists() else "does not exist"
        verb = kind if kind == "does not exist" else f"is {kind}"
        raise BadQuestionFile(f"{what} '{path}' {verb}. Pass a JSONL file.")
    out = []
    for n, line in enumerate(_decode(path).split("\n"), 1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        try:
            out.append((n, json.loads(line)))
        except json.JSONDecodeError as e:
            raise BadQuestionFile(f"{path}:{n}: not valid JSON ({e.msg} at column {e.colno}). Each line must be one "
                                  f"JSON object.") from e
        except RecursionError as e:
            raise BadQuestionFile(f"{path}:{n}: JSON nested too deeply. Each line must be one flat JSON object.") from e
        except ValueError as e:  # e.g. an integer of more than 4 300 digits
            raise BadQuestionFile(f"{path}:{n}: unreadable JSON value ({str(e)[:120]}).") from e
    return out


def _schema_error(path: Path, n: int, e: ValidationError, shape: str) -> BadQuestionFile:
    err = e.errors()[0]
    where = ".".join(str(x) for x in err["loc"]) or "(the line)"
    got = err.get("input")
    got_s = type(got).__name__ if not isinstance(got, str) else repr(got[:40])
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "string_pattern_mismatch":
        msg = "must not be empty"
    return BadQuestionFile(f"{path}:{n}: field '{where}' {msg[0].lower() + msg[1:]} (got {got_s}). "
                           f"Expected one object a line: {shape}")


def load_jsonl(path: Path) -> list[Question]:
    """One JSON object a line with ``question``, ``answers`` (list), optional ``sources`` and ``id``."""
    path = Path(path)
    out: list[Question] = []
    seen: dict[str, int] = {}
    for n, row in _lines(path, "Question file"):
        try:
            rec = QuestionRecord.model_validate(row)
        except ValidationError as e:
            raise _schema_error(path, n, e, JSONL_SHAPE) from e
        qid = str(rec.id) if rec.id is not None else str(n)
        if qid in seen:
            raise BadQuestionFile(f"{path}:{n}: id '{qid[:40]}' is also the id of line {seen[qid]}. Ids must be unique "
                                  f"(results and --resume are keyed by id).")
        seen[qid] = n
        answers = [rec.answers] if isinstance(rec.answers, str) else [str(a) for a in rec.answers]
        if rec.options:
            answers = [_letter(path, n, a, rec.options) for a in answers]
            out.append(Question(qid, with_options(rec.question, rec.options), answers, list(rec.sources),
                                metric="choice"))
        else:
            out.append(Question(qid, rec.question.strip(), answers, list(rec.sources)))
    if not out:
        raise BadQuestionFile(f"Question file '{path}' holds no questions. Expected one object a line: {JSONL_SHAPE}")
    return out


def _letter(path: Path, n: int, answer: str, options: list[str]) -> str:
    """A multiple-choice reference as option letters: letters as they are ("B", "BD"), an option's text as its
    letter."""
    letters = "".join(chr(65 + i) for i in range(len(options)))
    squeezed = re.sub(r"[\s,]+", "", answer.strip())
    if squeezed and all(ch in letters for ch in squeezed):
        return squeezed
    for i, option in enumerate(options):
        if answer.strip().casefold() == option.strip().casefold():
            return letters[i]
    raise BadQuestionFile(f"{path}:{n}: answer {answer[:40]!r} is neither an option letter ({', '.join(letters)}) nor "
                          f"the text of one of the {len(options)} options. Expected: {CHOICE_SHAPE}")


def leval_metric(evaluation: str | None, instruction: str, reference: str) -> str | None:
    """The metric for one L-Eval question (:data:`LEVAL_METRICS`); an exam question with at least two lettered
    options and a letter reference is multiple choice. A file without the field is scored by token F1."""
    if evaluation is None:
        return "f1"
    metric = LEVAL_METRICS.get(evaluation.strip().lower(), "f1")
    if metric == "exact_match" and len(_OPTION_LINE.findall(instruction)) >= 2 and reference_options(reference):
        return "choice"
    return metric


def file_tag(path: Path) -> str:
    """A short, index-name-safe tag from a file's stem, so two L-Eval files never share ids or index names."""
    stem = Path(path).name.split(".")[0] or "leval"
    return re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-")[:40] or "leval"


def load_leval(path: Path) -> list[tuple[str, str, list[Question]]]:
    """L-Eval format: one object per document with ``input`` (the document), ``instructions`` (questions) and
    ``outputs`` (references). Returns (document name, document text, its questions) per document; names and ids
    carry the file's stem (``financial_qa-doc01``, ``financial_qa-doc01-q03``). Each question's metric follows the
    document's ``evaluation`` field (:func:`leval_metric`); None for documents L-Eval has judged by an LLM or humans."""
    path = Path(path)
    tag = file_tag(path)
    docs = []
    for n, row in _lines(path, "L-Eval file"):
        try:
            rec = LevalRecord.model_validate(row)
        except ValidationError as e:
            raise _schema_error(path, n, e, LEVAL_SHAPE) from e
        name = f"{tag}-doc{len(docs) + 1:02d}"
        qs = [Question(f"{name}-q{i + 1:02d}", q.strip(), [a], [f"{name}.txt"], name,
                       metric=leval_metric(rec.evaluation, q, a))
              for i, (q, a) in enumerate(zip(rec.instructions, rec.outputs))]
        docs.append((name, rec.input, qs))
    if not docs:
        raise BadQuestionFile(f"L-Eval file '{path}' holds no documents. Expected one object a line: {LEVAL_SHAPE}")
    return docs
