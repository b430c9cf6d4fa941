"""The lexical (BM25) index: postings kept inside each segment's SQLite file, scored with corpus-wide statistics.

Why not SQLite FTS5, which docqa's segments could hold for free: its ``bm25()`` ranks with each table's own
statistics (so one corpus split over segments would rank by segment), and it scores every matching row before the
``LIMIT``. Measured here (2 cores; essay chunks, five five-word questions with stop words removed, OR-queries):
p50 32 ms at 10⁵ chunks and 317 ms at 10⁶ — thirty times the budget of a query (benchmarks/RESULTS.md, "Retrieval").
bm25s keeps eagerly scored sparse matrices: fast, but a score baked at write time depends on the corpus's average
length and document frequencies, which every update changes, so a segment written once could not stay exact.

So each segment stores, per term, its postings — chunk ids with the term's frequency and the chunk's length — as one
blob (``lex_postings``), with a CRC-32 checked at every read (a damaged blob is refused, never scored), and per file
its chunk count and total length (``lex_files``). A query reads the blobs of its terms from every segment, drops
chunks of deleted files, and scores with statistics of the live corpus at that moment: N live chunks, their average
length, and each term's live document frequency counted from the postings read. The ranking is therefore exactly
one BM25 over the whole live corpus (tests compare it with bm25s to 1e-6), whatever the segments. Writing costs a
tokenizer pass over the new chunks only (an added file costs its own chunks); a merge concatenates postings without
re-tokenizing, dropping deleted files' chunks; the blobs are in the segment file, so they are written, checksummed,
linked and pruned with it.

The analyzer: words are runs of letters or digits (a decimal number such as 1,234.5 stays one word), lowercased;
Lucene's 33 English stop words (also bm25s's list) are dropped; the rest are stemmed by the Snowball English stemmer
(PyStemmer, the C library bm25s uses). BM25 is Lucene's: idf = ln(1 + (N − df + ½) / (df + ½)), term weight
tf / (tf + k1 · (1 − b + b · len / avglen)), k1 = 1.2, b = 0.75.
"""

from __future__ import annotations

import math
import re
import sqlite3
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

ANALYZER = "words-lower/lucene-stop-en/snowball-en"  # recorded per segment; a change makes old postings unusable
K1, B = 1.2, 0.75  # Lucene's defaults
STOP_WORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no", "not", "of",
    "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was", "will", "with"))
MAX_WORD = 64  # longer "words" are hashes or base64: never a query term, and they would bloat the vocabulary
_WORD = re.compile(r"\d+(?:[.,]\d+)+|[^\W_]+")
_U16 = 65535

SCHEMA = """
CREATE TABLE IF NOT EXISTS lex_postings(term TEXT PRIMARY KEY, df INTEGER NOT NULL, base INTEGER NOT NULL,
    data BLOB NOT NULL, crc INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lex_files(file TEXT PRIMARY KEY, docs INTEGER NOT NULL, length INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS lex_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


_STEMS: dict[str, str] = {}  # word → stem; a dict lookup is ~3× cheaper than the stemmer's own cache (measured)


def analyze(text: str) -> list[str]:
    """The terms of ``text`` in order: words lowercased, stop words dropped, stemmed."""
    stems, out = _STEMS, []
    for w in _WORD.findall(text.lower()):
        s = stems.get(w)
        if s is None:
            if w in STOP_WORDS or len(w) > MAX_WORD:
                continue
            if len(stems) > 2_000_000:  # bounded: a corpus of random tokens must not grow it without end
                stems.clear()
            s = stems[w] = _stemmer().stemWord(w)
        out.append(s)
    return out


def query_terms(text: str) -> list[str]:
    """A query's distinct terms, in first-seen order (a repeated word counts once)."""
    return list(dict.fromkeys(analyze(text)))


# ------------------------------------------------------------------------------------------------ postings blobs
def encode(ids: np.ndarray, tf: np.ndarray, length: np.ndarray) -> tuple[int, bytes]:
    """(base, blob) of one term's postings sorted by id: ids as uint32 offsets from ``base``, then tf and chunk length
    as uint16 each (capped: a chunk of 65 535 words is far past any chunk size docqa writes)."""
    base = int(ids[0]) if len(ids) else 0
    off = ids - base
    if len(off) and int(off[-1]) > 0xFFFFFFFF:  # ids of one segment span < 2³² in any index docqa can write
        raise ValueError("chunk ids of one segment span more than 2**32")
    return base, (off.astype("<u4").tobytes() + np.minimum(tf, _U16).astype("<u2").tobytes()
                  + np.minimum(length, _U16).astype("<u2").tobytes())


def decode(base: int, data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids int64, tf uint16, length uint16) of a blob written by :func:`encode`."""
    n = len(data) // 8
    ids = np.frombuffer(data, dtype="<u4", count=n).astype(np.int64) + base
    tf = np.frombuffer(data, dtype="<u2", count=n, offset=4 * n)
    length = np.frombuffer(data, dtype="<u2", count=n, offset=6 * n)
    return ids, tf, length


def read(term: str, base: int, data: bytes, crc: int, dead: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A stored blob checked against its CRC (:class:`DamagedPostings` when it differs) and decoded, without the
    chunks in ``dead`` (ids of the segment's deleted files)."""
    if zlib.crc32(data) != crc or len(data) % 8:
        raise DamagedPostings(term)
    ids, tf, length = decode(base, data)
    if len(dead):
        keep = ~np.isin(ids, dead)
        ids, tf, length = ids[keep], tf[keep], length[keep]
    return ids, tf, length


class PostingsBuilder:
    """Postings of the chunks one segment receives, gathered in compact arrays and written in one pass."""

    def __init__(self):
        self.vocab: dict[str, int] = {}
        self._term: list[np.ndarray] = []
        self._id: list[np.ndarray] = []
        self._tf: list[np.ndarray] = []
        self._len: list[np.ndarray] = []
        self.files: dict[str, tuple[int, int]] = {}  # file → (chunks, total length)

    def add_file(self, file: str, ids, texts: list[str]) -> None:
        """One file's chunks (ids in the order of ``texts``)."""
        vocab = self.vocab
        term_ids: list[int] = []
        lengths = np.zeros(len(texts), dtype=np.int64)
        for k, text in enumerate(texts):
            words = analyze(text)
            lengths[k] = len(words)
            for w in words:
                tid = vocab.get(w)
                if tid is None:
                    tid = vocab[w] = len(vocab)
                term_ids.append(tid)
        self.files[file] = (len(texts), int(lengths.sum()))
        if not term_ids:
            return
        # (chunk, term) pairs counted with one sort instead of a Counter per chunk
        chunk_of = np.repeat(np.arange(len(texts)), lengths)
        key = chunk_of * len(vocab) + np.asarray(term_ids, dtype=np.int64)
        uniq, tf = np.unique(key, return_counts=True)
        chunk, term = np.divmod(uniq, len(vocab))
        self._term.append(term.astype(np.int32))
        self._id.append(np.asarray(ids, dtype=np.int64)[chunk])
        self._tf.append(np.minimum(tf, _U16).astype(np.uint16))
        self._len.append(np.minimum(lengths[chunk], _U16).astype(np.uint16))

    def remove_file(self, file: str, ids) -> None:
        """Forget a file added to this builder (the writer replaced or deleted it before commit)."""
        if self.files.pop(file, None) is None:
            return
        drop = np.asarray(list(ids), dtype=np.int64)
        for k in range(len(self._id)):
            keep = ~np.isin(self._id[k], drop)
            if not keep.all():
                self._term[k], self._id[k] = self._term[k][keep], self._id[k][keep]
                self._tf[k], self._len[k] = self._tf[k][keep], self._len[k][keep]

    def write(self, db: sqlite3.Connection) -> None:
        """Create the lexical tables in ``db`` (a segment being written) and fill them."""
        db.executescript(SCHEMA)
        db.execute("INSERT OR REPLACE INTO lex_meta(key, value) VALUES ('analyzer', ?)", (ANALYZER,))
        db.executemany("INSERT INTO lex_files(file, docs, length) VALUES (?, ?, ?)",
                       [(f, n, t) for f, (n, t) in self.files.items()])
        if not self._term:
            return
        # Peak memory matters at 10⁶ chunks (~7·10⁷ postings): each array is reordered and its source released
        # before the next, and the rows are streamed to SQLite rather than gathered.
        term = np.concatenate(self._term)
        self._term = []
        ids = np.concatenate(self._id)
        self._id = []
        order = np.lexsort((ids, term))
        term, ids = term[order], ids[order]
        tf = np.concatenate(self._tf)[order]
        self._tf = []
        length = np.concatenate(self._len)[order]
        self._len = []
        del order
        cuts = np.flatnonzero(np.diff(term)) + 1
        names = {tid: t for t, tid in self.vocab.items()}

        def rows():
            for a, b in zip(np.concatenate(([0], cuts)), np.concatenate((cuts, [len(term)]))):
                base, blob = encode(ids[a:b], tf[a:b], length[a:b])
                yield names[int(term[a])], int(b - a), base, blob, zlib.crc32(blob)

        db.executemany("INSERT INTO lex_postings(term, df, base, data, crc) VALUES (?, ?, ?, ?, ?)", rows())


def merge_into(db: sqlite3.Connection, sources: list[tuple[sqlite3.Connection, np.ndarray, list[str]]]) -> None:
    """Write into ``db`` (a merged segment) the postings of ``sources`` — (read-only connection, chunk ids of its
    deleted files, its deleted file names) — without the deleted chunks. Streams term by term (each source is read
    in term order), so memory holds one term's postings, not the segments'."""
    import heapq

    db.executescript(SCHEMA)
    db.execute("INSERT OR REPLACE INTO lex_meta(key, value) VALUES ('analyzer', ?)", (ANALYZER,))
    for src, _, dead_files in sources:
        marks = ",".join("?" * len(dead_files))
        db.executemany("INSERT OR REPLACE INTO lex_files(file, docs, length) VALUES (?, ?, ?)",
                       src.execute(f"SELECT file, docs, length FROM lex_files WHERE file NOT IN ({marks})",
                                   dead_files).fetchall())

    def rows(k: int):
        src, dead, _ = sources[k]
        for term, base, data, crc in src.execute("SELECT term, base, data, crc FROM lex_postings ORDER BY term"):
            yield term, k, read(term, base, data, crc, dead)

    out, current, parts = [], None, []

    def flush():
        ids, tf, length = (np.concatenate(x) for x in zip(*parts, strict=True))
        order = np.argsort(ids, kind="stable")
        if len(ids):
            base, blob = encode(ids[order], tf[order], length[order])
            out.append((current, len(ids), base, blob, zlib.crc32(blob)))

    for term, _, postings in heapq.merge(*(rows(k) for k in range(len(sources))), key=lambda r: r[:2]):
        if term != current:
            if parts:
                flush()
            current, parts = term, []
        parts.append(postings)
        if len(out) >= 4096:
            db.executemany("INSERT INTO lex_postings(term, df, base, data, crc) VALUES (?, ?, ?, ?, ?)", out)
            out = []
    if parts:
        flush()
    db.executemany("INSERT INTO lex_postings(term, df, base, data, crc) VALUES (?, ?, ?, ?, ?)", out)


class DamagedPostings(Exception):
    """A postings blob whose CRC does not match (the caller turns it into the index's damage message)."""

    def __init__(self, term: str):
        super().__init__(term)
        self.term = term


def has_lexical(db: sqlite3.Connection) -> bool:
    """True where the segment holds postings written by this analyzer."""
    try:
        row = db.execute("SELECT value FROM lex_meta WHERE key = 'analyzer'").fetchone()
    except sqlite3.OperationalError:
        return False
    return row is not None and row[0] == ANALYZER


def verify(db: sqlite3.Connection, files: dict[str, int]) -> list[str]:
    """Problems of one segment's lexical tables against its ``files`` (name → chunks): every file listed with its
    chunk count, every blob's CRC and shape. ``docqa check`` runs this; a query checks the blobs it reads."""
    problems = []
    listed = dict((f, n) for f, n, _ in db.execute("SELECT file, docs, length FROM lex_files"))
    if listed != {f: n or 0 for f, n in files.items()}:
        problems.append("its lexical index lists other files than its chunks")
    for term, df, data, crc in db.execute("SELECT term, df, data, crc FROM lex_postings"):
        if zlib.crc32(data) != crc or len(data) != 8 * df:
            problems.append(f"its lexical postings of term {term!r} are damaged")
            break
    return problems


# ------------------------------------------------------------------------------------------------ search
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
        self._norm = K1 * (1 - B + B * np.arange(_U16 + 1, dtype=np.float64) / max(self.avg_length, 1e-9))
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
