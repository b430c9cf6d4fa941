"""Answer metrics, SQuAD-style: lower-case, strip punctuation and the articles a/an/the, split on whitespace.

Every answer metric has one signature, ``fn(prediction: str, references: list[str]) -> float`` in [0, 1], and takes
the best score over the references (a question may accept several answers). They live in the ``METRICS`` registry;
``tests/test_metrics.py`` checks every entry on hand-computed cases. Questions with no reference (the answer is not in
the corpus) are scored by :func:`refusal` instead.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable

from ..prompts import is_refusal
from ..registry import Registry

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize(text: str) -> str:
    """SQuAD v1.1 normalisation: lower-case, drop punctuation, drop articles, collapse whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def tokens(text: str) -> list[str]:
    return normalize(text).split()


def _best(fn: Callable[[str, str], float]) -> Callable[[str, list[str]], float]:
    def metric(prediction: str, references: list[str]) -> float:
        return max((fn(prediction, r) for r in references), default=0.0)

    metric.__doc__ = fn.__doc__
    metric.__name__ = fn.__name__
    return metric


@_best
def exact_match(prediction: str, reference: str) -> float:
    """Exact match: 1 when the normalised prediction equals a normalised reference, else 0. Strict; short gold
    answers ("24 days") rarely match a full-sentence answer exactly, so read it beside contains and F1."""
    return float(normalize(prediction) == normalize(reference))


@_best
def token_f1(prediction: str, reference: str) -> float:
    """Token F1 (SQuAD): harmonic mean of precision and recall of the bag of normalised tokens shared by
    prediction and reference. L-Eval's open-ended tasks report it."""
    p, r = tokens(prediction), tokens(reference)
    common = sum((Counter(p) & Counter(r)).values())
    if not p or not r or common == 0:
        return float(p == r)
    precision, recall = common / len(p), common / len(r)
    return 2 * precision * recall / (precision + recall)


def _lcs(a: list[str], b: list[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


@_best
def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure (Lin 2004): precision and recall of the longest common subsequence of normalised tokens,
    combined with β = 1. Rewards answers that keep the reference's words in order."""
    p, r = tokens(prediction), tokens(reference)
    if not p or not r:
        return float(p == r)
    lcs = _lcs(p, r)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


@_best
def contains(prediction: str, reference: str) -> float:
    """Answer-contains: 1 when the normalised reference appears in the normalised prediction (on token
    boundaries). The fairest single number for short gold answers and one-sentence predictions."""
    ref, pred = normalize(reference), normalize(prediction)
    return float(bool(ref) and f" {ref} " in f" {pred} ")


# Option letters: A-H (L-Eval's exams use A-D; a few question sets go further). "I" is left out on purpose: it is
# far more often the pronoun than an option.
_LETTERS = "ABCDEFGH"
# Where an answer names its option(s): at the start ("B", "(B)", "B.", "B and D", "BD", "Answer: B"), or after
# "answer/option/choice is" anywhere, or in parentheses. A capital letter elsewhere ("A tall man") is not a choice.
_LEAD = re.compile(r"^\s*(?i:(?:the\s+)?(?:correct\s+)?(?:answer|option|choice)s?\s*(?:is|are|:)?\s*)?\(?([A-H](?:"
                   r"\)?(?:\s*(?:,|and|&)\s*|\s+)?\(?[A-H]){0,7})\)?(?=[\s.,;:)!]|$)")
_NAMED = re.compile(r"\b(?i:answer|option|choice)s?\s*(?i:is|are|:)?\s*\(?([A-H])\)?(?![A-Za-z])|\(([A-H])\)")


def chosen_options(text: str) -> frozenset[str]:
    """The option letters an answer chooses (``"(B) and D."`` → {B, D}); empty when it names none."""
    m = _LEAD.match(text)
    if m:
        return frozenset(ch for ch in m.group(1) if ch in _LETTERS)
    return frozenset(g for pair in _NAMED.findall(text) for g in pair if g)


def reference_options(reference: str) -> frozenset[str]:
    """The option letters of a reference ("B", "BD", "A C"): as L-Eval reads its exam references, the letters of the
    first word — all of the words when each is a lone letter."""
    words = reference.split()
    if words and all(len(w.strip(".,;)(")) == 1 for w in words):
        return frozenset(w.strip(".,;)(") for w in words) & frozenset(_LETTERS)
    return frozenset(ch for ch in (words[0] if words else "") if ch in _LETTERS)


@_best
def choice(prediction: str, reference: str) -> float:
    """Multiple-choice accuracy: 1 when the answer chooses exactly the reference's option letters (all of them, and
    no others, where several are correct), else 0. For questions whose options are lettered lines ("A. …") and whose
    references are the letters, as in L-Eval's exam tasks. Unlike L-Eval's scorer, an answer that names no option
    scores 0 (L-Eval counts it as a guess of "A")."""
    want = reference_options(reference)
    return float(bool(want) and chosen_options(prediction) == want)


def names_option(prediction: str, references: list[str]) -> float:
    """Format of a multiple-choice answer: 1 when it names at least one option letter, right or wrong, else 0. Read
    beside accuracy, it separates a model that picks wrong options from one that does not answer in letters."""
    return float(bool(chosen_options(prediction)))


def _true_or_false(text: str) -> str | None:
    """"true" or "false": the first word that contains one of them, as L-Eval's scorer reads a True/False answer."""
    for word in text.lower().split():
        if "true" in word:
            return "true"
        if "false" in word:
            return "false"
    return None


@_best
def true_false(prediction: str, reference: str) -> float:
    """True/False accuracy (L-Eval's sci_fi): 1 when the first word of the answer containing "true" or "false" agrees
    with the reference, 0 when it disagrees or no word does ("True. The document states …" reads as true). A
    reference's "[fact: …]" part, which L-Eval scores as a second question, is left out."""
    want = _true_or_false(reference.split("[fact:")[0])
    return float(want is not None and _true_or_false(prediction.split("[fact:")[0]) == want)


def refusal(prediction: str, references: list[str]) -> float:
    """Correct refusal: for questions whose answer is not in the corpus (no reference), 1 when the model declines
    to answer. Undefined (not scored) for answerable questions."""
    return float(is_refusal(prediction))


def recall_at_k(retrieved: list[str], gold: list[str]) -> float:
    """Share of the gold source files found among the sources an answer used (retrieval recall@k for rag)."""
    if not gold:
        return float("nan")
    got = set(retrieved)
    return sum(1 for g in gold if g in got) / len(gold)


# Answer metrics scored on questions with references; name → fn(prediction, references) -> [0, 1].
METRICS: Registry[Callable[[str, list[str]], float]] = Registry("metric")
METRICS.register("exact_match", exact_match, aliases=("em",))
METRICS.register("f1", token_f1, aliases=("token_f1",))
METRICS.register("rouge_l", rouge_l, aliases=("rouge",))
METRICS.register("contains", contains)
METRICS.register("choice", choice)
METRICS.register("names_option", names_option)
METRICS.register("true_false", true_false)
# Metrics that only mean something for one kind of question (metric → the question metric of that kind): the option
# metrics for multiple choice, true_false for True/False questions. The others score any answer.
KIND_METRICS = {"choice": "choice", "names_option": "choice", "true_false": "true_false"}
OPTION_METRICS = frozenset(name for name, kind in KIND_METRICS.items() if kind == "choice")
TEXT_METRICS = tuple(name for name in METRICS.names() if name not in KIND_METRICS)

# How a metric is named in tables and sentences; "mixed" is a question set scored by more than one.
LABELS = {"f1": "F1", "exact_match": "EM", "rouge_l": "ROUGE-L", "contains": "contains", "choice": "accuracy",
          "true_false": "accuracy", "mixed": "score"}


def label(rows: list[dict]) -> str:
    """The name of the score an eval's summary rows share ("F1", "accuracy", …)."""
    return LABELS.get(rows[0].get("metric", "f1"), "score") if rows else LABELS["f1"]


def primary(metrics: dict[str, float | None]) -> float | None:
    """An answer's score on its question's own metric (``score``); records written before it existed: token F1."""
    return metrics["score"] if "score" in metrics else metrics.get("f1")
