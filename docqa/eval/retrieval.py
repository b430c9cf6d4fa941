"""Passage-level retrieval quality per question: did the strategy's retrieval step find the passage that holds the
answer, and how high did it rank it?

Document-level recall@k (``recall_at_k``) says whether a retrieved chunk came from the right file; in a long file
that is nearly always true and says little. Here the reference answer is located among the index's chunks — the
*gold chunks* — and the strategy's ranked chunks (the ``chunk_id`` of its sources, best first: rag, and auto when it
routed to rag; summarize's ``--map-top-k`` selection) are scored against them:

- ``context_recall``: share of the gold chunks among the retrieved ones (RAGAS's context recall with located gold);
- ``hit``: 1 when at least one gold chunk was retrieved;
- ``mrr``: 1 / rank of the first gold chunk (0 when none);
- ``ndcg``: binary-relevance nDCG over the retrieved ranks.

**How the answer is located** (:func:`gold_chunks`): a reference of at most :data:`SHORT_WORDS` content words must
appear in the chunk as a normalized substring (SQuAD normalization); a longer one marks the chunks holding at least
:data:`MIN_RECALL` of its distinct content words (stopwords left out), since references in L-Eval's financial and
scientific sets are written by people, not copied out of the text. A question whose reference is found in no chunk
gets no passage metrics (``None``), and the run says for how many questions the answer was located.
"""

from __future__ import annotations

import math

from .metrics import normalize
from .metrics import tokens as word_tokens

SHORT_WORDS = 3
MIN_RECALL = 0.6
STOPWORDS = frozenset("""a an the and or but if of to in on at by for with from as is are was were be been being it its
this that these those there their they them he she his her we our you your i me my not no do does did so than then
which who whom what when where why how all any each also into over under about after before up down out more most
such only can could would should will may might must have has had""".split())
PASSAGE_METRICS = ("context_recall", "hit", "mrr", "ndcg")


def _content(text: str) -> list[str]:
    return [w for w in word_tokens(text) if w not in STOPWORDS]


def gold_chunks(references: list[str], chunks: list[tuple[int, str]]) -> set[int]:
    """Ids of the chunks (``(id, text)`` pairs) that hold one of ``references`` (see the module's docstring)."""
    gold: set[int] = set()
    prepared = [(cid, normalize(text), set(word_tokens(text))) for cid, text in chunks]
    for ref in references:
        content = _content(ref)
        if not content:
            continue
        if len(content) <= SHORT_WORDS:
            needle = normalize(ref)
            gold |= {cid for cid, norm, _ in prepared if needle and f" {needle} " in f" {norm} "}
        else:
            wanted = set(content)
            gold |= {cid for cid, _, words in prepared if len(wanted & words) >= MIN_RECALL * len(wanted)}
    return gold


def rank_metrics(retrieved: list[int], gold: set[int]) -> dict[str, float]:
    """The passage metrics of one ranked list of chunk ids against ``gold`` (non-empty)."""
    hits = [1.0 if cid in gold else 0.0 for cid in retrieved]
    first = next((i for i, h in enumerate(hits) if h), None)
    dcg = sum(h / math.log2(i + 2) for i, h in enumerate(hits))
    ideal = sum(1 / math.log2(i + 2) for i in range(min(len(gold), len(retrieved))))
    return {"context_recall": len(gold & set(retrieved)) / len(gold), "hit": float(first is not None),
            "mrr": 0.0 if first is None else 1 / (first + 1), "ndcg": dcg / ideal if ideal else 0.0}


def add_passage_metrics(records: list[dict], chunks_for) -> dict[str, int]:
    """Add the passage metrics to every record whose question's answer is located and whose strategy retrieved
    chunks (its ``passages`` carry chunk ids); ``None`` elsewhere. ``chunks_for(record)`` gives the ``(id, text)``
    chunks of the record's index. Returns {"questions": …, "located": …} for the run's summary."""
    gold_of: dict[tuple, set[int]] = {}
    for r in records:
        key = (r.get("document"), r["id"])
        if key not in gold_of:
            gold_of[key] = gold_chunks(r.get("references") or [], chunks_for(r)) if r.get("references") else set()
        gold = gold_of[key]
        ids = r.get("retrieved") or [p["chunk_id"] for p in r.get("passages") or [] if p.get("chunk_id") is not None]
        values = rank_metrics(ids, gold) if gold and ids and not r.get("error") else dict.fromkeys(PASSAGE_METRICS)
        r.setdefault("metrics", {}).update(values)
        r["gold_chunks"] = sorted(gold)
    return {"questions": len(gold_of), "located": sum(1 for g in gold_of.values() if g)}
