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
