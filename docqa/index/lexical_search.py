"""The lexical (BM25) index, read side: a query's terms looked up in every segment's postings and scored with the
live corpus's statistics, exactly one BM25 over the whole live corpus (:mod:`.lexical` holds the analyzer, the
postings format and the write side). Split from it because reading is its own concern: a per-version cache of
weighed postings and MaxScore pruning, neither of which a writer needs.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .lexical import K1, MAX_U16, B, DamagedPostings, query_terms, read


@dataclass
class LexicalHit:
    ids: np.ndarray
    scores: np.ndarray
    terms: list[str]  # the query's terms that were searched (empty: nothing searchable, only stop words)


class LexicalSearcher:
    """BM25 over the live chunks of a version's segments, exact against one BM25 over the whole live corpus."""

    def __init__(self, segments: list[tuple[sqlite3.Connection, np.ndarray, list[str]]], n_docs: int):
        """``segments``: (read-only connection, chunk ids of its deleted files, its deleted file names)."""
        self.segments = segments
        self.n_docs = int(n_docs)
        total = 0
        for db, _, dead_files in segments:
            marks = ",".join("?" * len(dead_files))
            total += int(db.execute(f"SELECT COALESCE(SUM(length), 0) FROM lex_files WHERE file NOT IN ({marks})",
                                    dead_files).fetchone()[0])
        self.total_length = total
        self.avg_length = total / self.n_docs if self.n_docs else 0.0
        # k1 · (1 − b + b · len / avglen) for every length a blob can hold: one gather per posting at query time
        self._norm = K1 * (1 - B + B * np.arange(MAX_U16 + 1, dtype=np.float64) / max(self.avg_length, 1e-9))
        self._cache: OrderedDict[str, _Term] = OrderedDict()
        self._cache_bytes = 0
        self._lock = threading.Lock()  # one opened index serves concurrent questions (eval --concurrency)

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, tf, length) of ``term`` over the live chunks of every segment."""
        parts = []
        for db, dead, _ in self.segments:
            row = db.execute("SELECT base, data, crc, df FROM lex_postings WHERE term = ?", (term,)).fetchone()
            if row is None:
                continue
            base, data, crc, df = row
            if len(data) != 8 * df:
                raise DamagedPostings(term)
            parts.append(read(term, base, data, crc, dead))
        if not parts:
            return np.zeros(0, np.int64), np.zeros(0, np.uint16), np.zeros(0, np.uint16)
        if len(parts) == 1:
            return parts[0]
        return tuple(np.concatenate(x) for x in zip(*parts, strict=True))  # type: ignore[return-value]

    def idf(self, df: int) -> float:
        return math.log(1 + (self.n_docs - df + 0.5) / (df + 0.5))

    def term(self, term: str) -> _Term | None:
        """A term's live postings as (sorted chunk ids, BM25 weights, their maximum), computed once per opened version
        and kept within :data:`CACHE_BYTES` (least recently used first out): a common word's postings are decoded
        and weighed once, not at every question that uses it."""
        with self._lock:
            hit = self._cache.get(term)
            if hit is not None:
                self._cache.move_to_end(term)
                return hit
        ids, tf, length = self.postings(term)
        if not len(ids):
            return None
        if len(ids) > 1 and not bool(np.all(ids[1:] > ids[:-1])):  # segments' ranges interleave after merges
            order = np.argsort(ids, kind="stable")
            ids, tf, length = ids[order], tf[order], length[order]
        tf = tf.astype(np.float64)
        weights = self.idf(len(ids)) * tf / (tf + self._norm[length])
        entry = _Term(ids, weights, float(weights.max()))
        with self._lock:
            self._cache[term] = entry
            self._cache_bytes += ids.nbytes + weights.nbytes
            while self._cache_bytes > CACHE_BYTES and len(self._cache) > 1:
                _, old = self._cache.popitem(last=False)
                self._cache_bytes -= old.ids.nbytes + old.weights.nbytes
        return entry

    def search(self, query: str, k: int) -> LexicalHit:
        """The ``k`` best chunks for ``query`` by BM25, best first, and the terms searched (none: only stop words).

        Every term's weighed postings are summed per chunk over the id range; where a query reads more than
        :data:`PRUNE_FROM` postings, :meth:`_maxscore` (Turtle & Flood 1995) gives the same top k while leaving the
        common words' long postings out of the sum."""
        terms = query_terms(query)
        empty = LexicalHit(np.zeros(0, np.int64), np.zeros(0), terms)
        if not terms or k <= 0 or not self.n_docs:
            return empty
        entries = [e for e in (self.term(t) for t in terms) if e is not None]
        if not entries:
            return empty
        total = sum(len(e.ids) for e in entries)
        if total > PRUNE_FROM and len(entries) > 1:
            pruned = self._maxscore(entries, k)
            if pruned is not None:
                return LexicalHit(*pruned, terms)
        ids = np.concatenate([e.ids for e in entries])
        weights = np.concatenate([e.weights for e in entries])
        if len(entries) == 1:
            uniq, scores = ids, weights
        else:  # sum per chunk: a dense accumulator over the id range is cheaper than sorting the postings
            lo = int(ids.min())
            acc = np.bincount(ids - lo, weights=weights)
            uniq = np.flatnonzero(acc) + lo
            scores = acc[uniq - lo]
        return LexicalHit(*_top(uniq, scores, k), terms)

    def _maxscore(self, entries: list[_Term], k: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Exact top-k by MaxScore, or None where no term can be left out.

        1. The rarest term's chunks, scored in full, give θ, a lower bound of the k-th best score.
        2. Terms whose bounds add up to less than θ (the common ones) are *non-essential*: a chunk holding none of the
           other, *essential* terms scores below θ, so the candidates are the essential terms' chunks, summed over
           the id range as the plain path does.
        3. Of those, the ones that could still reach θ with every non-essential term's bound get the non-essential
           terms' weights, by binary search in their postings."""
        rarest = min(entries, key=lambda e: len(e.ids))
        if len(rarest.ids) < k:
            return None
        theta = _top(rarest.ids, _lookup(entries, rarest.ids), k)[1][-1]
        by_bound = sorted(entries, key=lambda e: e.bound)
        spare, cut = 0.0, 0
        while cut < len(by_bound) and spare + by_bound[cut].bound < theta - _EPS:
            spare += by_bound[cut].bound
            cut += 1
        if cut == 0:
            return None
        side, essential = by_bound[:cut], by_bound[cut:]
        ids = np.concatenate([e.ids for e in essential])
        weights = np.concatenate([e.weights for e in essential])
        lo = int(ids.min())
        acc = np.bincount(ids - lo, weights=weights)
        # Only a candidate that could still reach θ with every non-essential term is looked up in their postings.
        cand = np.flatnonzero(acc + spare >= theta - _EPS) + lo
        scores = acc[cand - lo] + _lookup(side, cand)
        return _top(cand, scores, k)


def _lookup(entries: list[_Term], ids: np.ndarray) -> np.ndarray:
    """Sum of the weights ``entries`` give each of ``ids`` (sorted), found by binary search in their postings."""
    scores = np.zeros(len(ids))
    for e in entries:
        pos = np.minimum(np.searchsorted(e.ids, ids), len(e.ids) - 1)
        scores += np.where(e.ids[pos] == ids, e.weights[pos], 0.0)
    return scores


@dataclass
class _Term:
    ids: np.ndarray  # sorted live chunk ids holding the term
    weights: np.ndarray  # their BM25 weight for it
    bound: float  # the largest of them


# Weighed postings kept per opened version. 400 random questions over 10⁶ chunks touched 554 MB of them; at 256 MB
# the cache thrashed (p50 12.3 ms on a repeated set, against 8.3 ms with all of it kept; benchmarks/RESULTS.md).
CACHE_BYTES = 1 << 30
# Postings a query reads before MaxScore is tried. Below it the plain sum is cheap (p50 1.6 ms at 10⁵ chunks, where
# questions read up to ~10⁵ postings) and pruning's extra passes would not pay.
PRUNE_FROM = 200_000
_EPS = 1e-9  # sums in another order may differ in the last bits: a bound is never trusted closer than this


def _top(ids: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best (id, score) pairs, best first, ties to the lower id."""
    if len(ids) > k:
        keep = np.argpartition(-scores, k - 1)[:k]
        ids, scores = ids[keep], scores[keep]
    order = np.lexsort((ids, -scores))
    return ids[order], scores[order]
