"""Crash and damage, done for real: a killed ingest subprocess, and a matrix of corruptions of every index file.

Shared by the reliability tests and benchmarks/reliability.py (which runs more trials and writes RESULTS.md).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

# An ingest in its own process, with the test fakes registered through the real registries (fast, no weights).
INGEST = """
import sys
sys.path.insert(0, {repo!r})
from docqa import embedder as em, generators as gm
import tests.conftest as c
em.EMBEDDERS.register("fake", c.fake_embedder, replace=True)
gm.GENERATORS.register("fake", c.fake_generator, replace=True)
import docqa
r = docqa.ingest(sys.argv[1], "t", root=sys.argv[2], embedder=c.FAKE_EMBEDDER, model=c.FAKE_MODEL, sync=True)
print("DONE", r.version, flush=True)
"""


def ingest_process(docs: Path, root: Path, fault: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "DOCQA_FAULT": fault or ""}
    return subprocess.Popen([sys.executable, "-c", INGEST.format(repo=str(REPO)), str(docs), str(root)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_ingest(docs: Path, root: Path, fault: str | None = None, timeout: float = 120) -> tuple[int, str, str]:
    p = ingest_process(docs, root, fault)
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


def kill_at_random(docs: Path, root: Path, rng: random.Random, span: float) -> float:
    """Start an ingest and SIGKILL it after a random delay in [0, span) seconds; returns the delay."""
    delay = rng.uniform(0, span)
    p = ingest_process(docs, root)
    time.sleep(delay)
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=60)
    return delay


def live(home: Path) -> Path:
    return home / (home / "CURRENT").read_text().strip()


def _garble(path: Path, n: int = 64, seed: int = 1) -> None:
    data = bytearray(path.read_bytes())
    rng = random.Random(seed)
    mid = len(data) // 2
    for i in range(mid, min(mid + n, len(data))):
        data[i] = (data[i] + rng.randrange(1, 256)) % 256
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _zero(path: Path) -> None:
    path.write_bytes(b"\0" * path.stat().st_size)


def _permute_ids(path: Path) -> None:
    """Swap the ids of the vectors (same set, different assignment): answers would cite the wrong chunks."""
    import faiss

    index = faiss.read_index(str(path))
    ids = faiss.vector_to_array(index.id_map)
    vecs = np.vstack([index.reconstruct(int(i)) for i in ids])
    perm = np.random.default_rng(0).permutation(len(ids))
    new = faiss.IndexIDMap2(faiss.IndexFlatIP(index.d))
    new.add_with_ids(vecs, ids[perm])
    faiss.write_index(new, str(path))


def _edit_chunks(path: Path) -> None:
    """One byte changed in every chunk's text, through SQLite (the file stays a valid database)."""
    db = sqlite3.connect(path)
    db.execute("UPDATE chunks SET text = substr(text, 1, 5) || 'X' || substr(text, 7)")
    db.commit()
    db.close()


def _drop_rows(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("DELETE FROM chunks WHERE id IN (SELECT id FROM chunks LIMIT 3)")
    db.commit()
    db.close()


# name → damage(home, live version, previous version). Each must be detected: open and ingest refuse with
# IndexCorrupt, `docqa check` fails; none may be served silently.
CORRUPTIONS: dict[str, Callable[[Path, Path, Path], None]] = {}
for _file in ("index.sqlite", "vectors.faiss", "manifest.json"):
    CORRUPTIONS.update({
        f"{_file}: truncated": lambda h, v, p, f=_file: _truncate(v / f),
        f"{_file}: zeroed": lambda h, v, p, f=_file: _zero(v / f),
        f"{_file}: 64 bytes garbled": lambda h, v, p, f=_file: _garble(v / f),
        f"{_file}: deleted": lambda h, v, p, f=_file: (v / f).unlink(),
        f"{_file}: emptied": lambda h, v, p, f=_file: (v / f).write_bytes(b""),
        f"{_file}: copied from the previous version":
            lambda h, v, p, f=_file: (v / f).write_bytes((p / f).read_bytes()),
    })
CORRUPTIONS.update({
    "vectors.faiss: ids permuted": lambda h, v, p: _permute_ids(v / "vectors.faiss"),
    "index.sqlite: one byte changed in every chunk": lambda h, v, p: _edit_chunks(v / "index.sqlite"),
    "index.sqlite: rows deleted": lambda h, v, p: _drop_rows(v / "index.sqlite"),
    "manifest.json: not JSON": lambda h, v, p: (v / "manifest.json").write_text("{not json"),
    "manifest.json: wrong types": lambda h, v, p: (v / "manifest.json").write_text('{"version": "x", "files": 3}'),
    "CURRENT: points outside the index": lambda h, v, p: (h / "CURRENT").write_text("../../elsewhere"),
    "CURRENT: garbage": lambda h, v, p: (h / "CURRENT").write_bytes(b"\xff\xfe garbage"),
    "CURRENT: names a missing version": lambda h, v, p: (h / "CURRENT").write_text("v000099"),
    "CURRENT: empty": lambda h, v, p: (h / "CURRENT").write_text(""),
    "version folder deleted": lambda h, v, p: __import__("shutil").rmtree(v),
})
