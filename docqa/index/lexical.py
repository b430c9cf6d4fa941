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

import re
import sqlite3
import zlib
from functools import lru_cache

import numpy as np

ANALYZER = "words-lower/lucene-stop-en/snowball-en"  # recorded per segment; a change makes old postings unusable
K1, B = 1.2, 0.75  # Lucene's defaults
STOP_WORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no", "not", "of",
    "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was", "will", "with"))
MAX_WORD = 64  # longer "words" are hashes or base64: never a query term, and they would bloat the vocabulary
_WORD = re.compile(r"\d+(?:[.,]\d+)+|[^\W_]+")
MAX_U16 = 65535

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
    return base, (off.astype("<u4").tobytes() + np.minimum(tf, MAX_U16).astype("<u2").tobytes()
                  + np.minimum(length, MAX_U16).astype("<u2").tobytes())


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
        self._tf.append(np.minimum(tf, MAX_U16).astype(np.uint16))
        self._len.append(np.minimum(lengths[chunk], MAX_U16).astype(np.uint16))

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
