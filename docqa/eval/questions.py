"""Question files: docqa's own (JSONL, one JSON array, or CSV/TSV with a header) and L-Eval's per-document format.

Every record goes through a pydantic schema, and anything wrong — the file's encoding, a line that is not JSON, a
field of the wrong type, nesting too deep, a number too long — becomes one :class:`BadQuestionFile` naming
``file:line`` (``file item N`` in an array), what is wrong and the expected shape. Lines end at ``\\n``, ``\\r\\n`` or
a lone ``\\r`` (files saved by old Mac tools; a JSON string cannot hold a raw carriage return, so none is split), and
nowhere else: JSON strings may hold U+2028, U+0085 or form feeds, which ``str.splitlines`` would also split on. A
gzip file is read as its content; a UTF-16 or UTF-32 file with a byte-order mark is decoded; anything else must be
UTF-8.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Optional, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)
from pydantic import Field as PField

from ..errors import BadQuestionFile, ConfigError, first_line
from ..lists import split_list
from ..prompts import with_options
from .metrics import reference_options

MAX_BYTES = 1 << 30  # a question file (decompressed) larger than 1 GB is a mistake, not a question set
_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
         (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))
JSONL_SHAPE = '{"question": "...", "answers": ["..."], "sources": ["file.md"], "id": "q1"}'
CSV_HEADER = "id,question,answers,sources (answers and sources: values separated by |)"
CHOICE_SHAPE = '{"question": "...", "options": ["...", "..."], "answers": ["B"]}'
# L-Eval's `evaluation` field → docqa's metric. "exam" becomes choice where the question has lettered options and
# exact match otherwise (gsm100, topic retrieval); "rouge" tasks (summaries) are scored by ROUGE-L where L-Eval reports
# the geometric mean of ROUGE-1/2/L; LLM- and human-judged documents have no automatic metric (None).
LEVAL_METRICS = {"f1": "f1", "rouge": "rouge_l", "exam": "exact_match", "llm": None, "human": None}
_OPTION_LINE = re.compile(r"^\s*\(?([A-H])[.)]\s+\S", re.M)
_TRUE_FALSE = re.compile(r"^\s*(?i:true|false)\.?\s*(?:\[fact:.*)?$", re.S)  # sci_fi: "True", "False [fact: True]"
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


def _not_blank(value: str) -> str:
    # Python's own notion of blank, the one the questions are stripped with (a pattern's \S in pydantic's regex
    # engine let "\x1f" through, which strip() then emptied).
    if not value.strip():
        raise ValueError("must not be empty")
    return value


NonBlank = Annotated[StrictStr, AfterValidator(_not_blank)]


# Other names question sets give the references: SQuAD, HotpotQA and Natural Questions "answer", RAGAS "ground_truth"
# (older) and "reference" (newer), L-Eval-like "references". Read as ``answers``: a record whose references went
# unread would be scored as a question the corpus cannot answer, every real answer counted as a false one.
ANSWER_KEYS = ("answer", "references", "reference", "ground_truths", "ground_truth")


class QuestionRecord(BaseModel):
    """One line of docqa's JSONL. Extra keys are allowed (and ignored), so richer files can be reused."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _answers_by_other_names(cls, data: object) -> object:
        if not isinstance(data, dict) or "question" not in data:
            return data  # left as written: a record without a question is refused naming the keys it has
        if "answers" not in data:
            named = [k for k in ANSWER_KEYS if k in data]
            if len(named) > 1:
                raise ValueError(f"has references under both '{named[0]}' and '{named[1]}'; give them once, as "
                                 f"'answers'")
            if named:
                data = {**data, "answers": data[named[0]]}
        answers = data.get("answers")
        if isinstance(answers, dict) and "text" in answers:  # SQuAD: {"text": [...], "answer_start": [...]}
            data = {**data, "answers": answers["text"]}
        return data

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

    input: StrictStr  # empty where the instruction carries its own material (GSM-100's few-shot prompts)
    instructions: list[NonBlank]
    outputs: list[StrictStr]
    evaluation: Optional[StrictStr] = None  # how L-Eval scores this document's questions: f1, rouge, exam, LLM, human

    @model_validator(mode="after")
    def _paired(self) -> LevalRecord:
        if len(self.instructions) != len(self.outputs):
            raise ValueError(f"has {len(self.instructions)} instructions but {len(self.outputs)} outputs (one "
                             f"reference per question, in order)")
        return self


def _decode(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise BadQuestionFile(f"Cannot read '{path}' ({e.strerror}).") from e
    if data[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as g:
                data = g.read(MAX_BYTES + 1)
        except (OSError, EOFError, zlib.error) as e:
            raise BadQuestionFile(f"'{path}' is a damaged gzip file ({first_line(e)}). Decompress or re-create "
                                  f"it.") from e
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
        # Not guessed as Windows-1252 the way documents are: a wrong guess would change questions and references,
        # and so the scores, without a word. Spreadsheets are the usual source of such files.
        how = (" (in Excel: Save As → 'CSV UTF-8 (Comma delimited)')" if path.suffix.lower() in (".csv", ".tsv")
               else "")
        raise BadQuestionFile(f"{path}:{line}: not UTF-8 (byte 0x{data[e.start]:02x} at column {col}). Save the "
                              f"file as UTF-8{how}.") from e


def _rows(path: Path, what: str) -> tuple[list[tuple[int, object]], str]:
    """The records of a question file and what a position in it is called: (line number, parsed JSON) for every
    non-blank line of a JSONL file, (item number, element) for a file holding one JSON array, (line number, row) for
    a CSV file (``.csv``/``.tsv``)."""
    path = Path(path)
    if not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file" if path.exists() else "does not exist"
        verb = kind if kind == "does not exist" else f"is {kind}"
        raise BadQuestionFile(f"{what} '{path}' {verb}. Pass a JSONL, JSON or CSV file.")
    text = _decode(path)
    if path.suffix.lower() in (".csv", ".tsv"):
        return _csv_rows(path, text, "\t" if path.suffix.lower() == ".tsv" else _csv_delimiter(text)), "line"
    if text.lstrip("\ufeff \t\r\n").startswith("["):  # a JSON array of objects, as many tools export
        return _json_array(path, text), "item"
    return _jsonl_rows(path, text), "line"


def _loads(text: str, where: str, shape_hint: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise BadQuestionFile(f"{where}: not valid JSON ({e.msg} at column {e.colno}). {shape_hint}") from e
    except RecursionError as e:
        raise BadQuestionFile(f"{where}: JSON nested too deeply. {shape_hint}") from e
    except ValueError as e:  # e.g. an integer of more than 4 300 digits
        raise BadQuestionFile(f"{where}: unreadable JSON value ({str(e)[:120]}).") from e


_LINE_END = re.compile(r"\r\n|\r|\n")


def _jsonl_rows(path: Path, text: str) -> list[tuple[int, object]]:
    out = []
    for n, line in enumerate(_LINE_END.split(text), 1):
        if line.strip():
            out.append((n, _loads(line, f"{path}:{n}", "Each line must be one JSON object.")))
    return out


def _json_array(path: Path, text: str) -> list[tuple[int, object]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadQuestionFile(f"{path}:{e.lineno}: not valid JSON ({e.msg} at column {e.colno}). The file starts "
                              f"with '[': it must be one JSON array of objects (or JSONL: one object a line).") from e
    except (RecursionError, ValueError) as e:
        raise BadQuestionFile(f"{path}: unreadable JSON ({type(e).__name__}). Use one flat object per question.") from e
    return list(enumerate(data, 1))


# CSV: one question a row under a header naming the fields; list fields (answers, sources, options) hold their
# values separated by "|", and an empty answers cell is a question whose answer is not in the corpus.
CSV_LISTS = ("answers", "sources", "options", "references", "ground_truths")


def _csv_delimiter(text: str) -> str:
    """A CSV file's delimiter: ',' — or ';' where the header's fields are separated by semicolons, as spreadsheets
    write CSV in locales whose decimal mark is a comma."""
    first = _LINE_END.split(text.lstrip("\ufeff"), 1)[0]
    names = lambda d: [c.strip().strip('"').strip().lower() for c in first.split(d)]  # noqa: E731
    return ";" if "question" not in names(",") and "question" in names(";") else ","


def _csv_rows(path: Path, text: str, delimiter: str) -> list[tuple[int, object]]:
    extra = "\0extra"  # where DictReader puts the fields of a row longer than the header
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True, restkey=extra)
    try:
        if reader.fieldnames:  # "Question", " answers " name the same fields as question, answers
            reader.fieldnames = [h.strip().lower() for h in reader.fieldnames]
        header = reader.fieldnames or []
        if "question" not in header:
            raise BadQuestionFile(f"{path}:1: no 'question' column in the header ({header!r:.120}). Expected a header "
                                  f"such as: {CSV_HEADER}")
        out = []
        for row in reader:
            if extra in row:
                raise BadQuestionFile(f"{path}:{reader.line_num}: {len(header) + len(row[extra])} fields under a "
                                      f"header of {len(header)}. Quote fields that hold a '{delimiter}'.")
            if not any((v or "").strip() for v in row.values()):
                continue  # a blank row
            rec: dict[str, object] = {}
            for key, value in row.items():
                value = value or ""
                if key in CSV_LISTS:
                    rec[key] = _csv_list(value, f"{path}:{reader.line_num}: {key}")
                elif key == "id":
                    if value.strip():
                        rec[key] = value.strip()
                else:
                    rec[key] = value
            out.append((reader.line_num, rec))
        return out
    except csv.Error as e:
        # line_num still counts the lines before the record that failed
        raise BadQuestionFile(f"{path}:{reader.line_num + 1}: not valid CSV ({first_line(e)}). Quote fields that "
                              f"hold a '{delimiter}', a quote or a line break, and double the quotes inside "
                              f"them.") from e


def _csv_list(value: str, where: str) -> list[str]:
    """A CSV list cell ("a|b"): an empty cell is no items; an empty item between bars is refused, naming it."""
    if not value.strip():
        return []
    try:
        return split_list(value, where, sep="|", example="12 days|twelve days")
    except ConfigError as e:
        raise BadQuestionFile(str(e)) from None


def _at(path: Path, n: int, unit: str) -> str:
    """Where a record is: ``file:line`` or ``file item N`` (a JSON array)."""
    return f"{path}:{n}" if unit == "line" else f"{path} item {n}"


def _schema_error(path: Path, n: int, e: ValidationError, shape: str, unit: str = "line") -> BadQuestionFile:
    err = e.errors()[0]
    where = ".".join(str(x) for x in err["loc"])
    got = err.get("input")
    got_s = type(got).__name__ if not isinstance(got, str) else repr(got[:40])
    msg = err["msg"].removeprefix("Value error, ")
    expected = "one object a line" if unit == "line" else "an array of objects like"
    if not err["loc"]:  # the record as a whole: not an object, or its fields disagree (instructions vs outputs)
        what = (f"is not a JSON object (got {type(got).__name__})" if err["type"] in ("model_type", "dict_type")
                else msg[0].lower() + msg[1:])
        return BadQuestionFile(f"{_at(path, n, unit)}: the record {what}. Expected {expected}: {shape}")
    if err["type"] == "missing":  # say what the record has instead: a field named "q" or "Question" is the usual cause
        keys = ", ".join(repr(k) for k in got) if isinstance(got, dict) and got else "nothing"
        return BadQuestionFile(f"{_at(path, n, unit)}: no field '{where}' (the record has {keys[:200]}). "
                               f"Expected {expected}: {shape}")
    return BadQuestionFile(f"{_at(path, n, unit)}: field '{where}' {msg[0].lower() + msg[1:]} (got {got_s}). "
                           f"Expected {expected}: {shape}")


def load_jsonl(path: Path) -> list[Question]:
    """docqa's question file: one JSON object a line with ``question``, ``answers`` (list), optional ``sources``,
    ``id`` and ``options`` (multiple choice). The same objects are read from a file holding one JSON array of them,
    and from a CSV file (``.csv``, ``.tsv``) with a header naming the fields, list fields separated by ``|``."""
    path = Path(path)
    out: list[Question] = []
    seen: dict[str, int] = {}
    rows, unit = _rows(path, "Question file")
    for n, row in rows:
        if isinstance(row, dict) and "question" not in row and {"input", "instructions"} <= set(row):
            raise BadQuestionFile(f"{_at(path, n, unit)}: an L-Eval document ('input', 'instructions'), not a docqa "
                                  f"question. Pass the file with --leval: docqa eval --leval {path}")
        try:
            rec = QuestionRecord.model_validate(row)
        except ValidationError as e:
            raise _schema_error(path, n, e, JSONL_SHAPE, unit) from e
        qid = str(rec.id) if rec.id is not None else str(n)
        if qid in seen:
            raise BadQuestionFile(f"{_at(path, n, unit)}: id '{qid[:40]}' is also the id of {unit} {seen[qid]}. Ids "
                                  f"must be unique (results and --resume are keyed by id).")
        seen[qid] = n
        answers = [rec.answers] if isinstance(rec.answers, str) else [str(a) for a in rec.answers]
        if rec.options:
            answers = [_letter(_at(path, n, unit), a, rec.options) for a in answers]
            out.append(Question(qid, with_options(rec.question, rec.options), answers, list(rec.sources),
                                metric="choice"))
        else:
            out.append(Question(qid, rec.question.strip(), answers, list(rec.sources)))
    if not out:
        raise BadQuestionFile(f"Question file '{path}' holds no questions. Expected one object a line: {JSONL_SHAPE}")
    return out


def _letter(at: str, answer: str, options: list[str]) -> str:
    """A multiple-choice reference as option letters: letters as they are ("B", "BD"), an option's text as its
    letter."""
    letters = "".join(chr(65 + i) for i in range(len(options)))
    squeezed = re.sub(r"[\s,]+", "", answer.strip())
    if squeezed and all(ch in letters for ch in squeezed):
        return squeezed
    for i, option in enumerate(options):
        if answer.strip().casefold() == option.strip().casefold():
            return letters[i]
    raise BadQuestionFile(f"{at}: answer {answer[:40]!r} is neither an option letter ({', '.join(letters)}) nor "
                          f"the text of one of the {len(options)} options. Expected: {CHOICE_SHAPE}")


def leval_metric(evaluation: str | None, instruction: str, reference: str) -> str | None:
    """The metric for one L-Eval question (:data:`LEVAL_METRICS`); an exam question with at least two lettered
    options and a letter reference is multiple choice, one whose reference is True or False is true_false (as
    L-Eval's scorer reads sci_fi). A file without the field is scored by token F1."""
    if evaluation is None:
        return "f1"
    metric = LEVAL_METRICS.get(evaluation.strip().lower(), "f1")
    if metric == "exact_match" and len(_OPTION_LINE.findall(instruction)) >= 2 and reference_options(reference):
        return "choice"
    if metric == "exact_match" and _TRUE_FALSE.match(reference):
        return "true_false"
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
    rows, unit = _rows(path, "L-Eval file")
    for n, row in rows:
        try:
            rec = LevalRecord.model_validate(row)
        except ValidationError as e:
            if isinstance(row, dict) and "question" in row and "input" not in row:
                raise BadQuestionFile(f"{_at(path, n, unit)}: a docqa question ('question'), not an L-Eval document "
                                      f"('input', 'instructions', 'outputs'). Pass the file without --leval, with "
                                      f"--index NAME.") from None
            raise _schema_error(path, n, e, LEVAL_SHAPE, unit) from e
        name = f"{tag}-doc{len(docs) + 1:02d}"
        qs = [Question(f"{name}-q{i + 1:02d}", q.strip(), [a], [f"{name}.txt"], name,
                       metric=leval_metric(rec.evaluation, q, a))
              for i, (q, a) in enumerate(zip(rec.instructions, rec.outputs))]
        docs.append((name, rec.input, qs))
    if not docs:
        raise BadQuestionFile(f"L-Eval file '{path}' holds no documents. Expected one object a line: {LEVAL_SHAPE}")
    return docs


# A shared lead-in ends a clause: "…and answer the question:" — never mid-phrase ("What is the", shared by chance).
_CLAUSE_END = re.compile(r"[:.?!;]\s")
MIN_INSTRUCTION_WORDS = 4


def shared_instruction(questions: list[str]) -> str | None:
    """The instruction every question of a set starts with, or None: the longest common prefix of the questions, cut
    back to its last clause end (``:``, ``.``, ``?``, ``!``, ``;`` followed by a space), of at least
    ``MIN_INSTRUCTION_WORDS`` words, with something left of every question after it. L-Eval's financial QA prefixes
    each question with an 18-word role line; scientific QA's questions share nothing, so nothing is cut there."""
    texts = [q.strip() for q in questions if q and q.strip()]
    if len(texts) < 2:
        return None
    lo, hi = min(texts), max(texts)  # the common prefix of a set is that of its least and greatest strings
    n = next((i for i, (a, b) in enumerate(zip(lo, hi)) if a != b), min(len(lo), len(hi)))
    common = lo[:n]
    ends = [m.end() for m in _CLAUSE_END.finditer(common + " ")]  # a prefix may end exactly at the clause end
    if not ends:
        return None
    prefix = common[: ends[-1]].rstrip()
    if len(prefix.split()) < MIN_INSTRUCTION_WORDS or any(not t[len(prefix):].strip() for t in texts):
        return None
    return prefix
