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


def change_for_second_version(docs: Path) -> None:
    """The edit between the two versions the corruption matrix damages: a rewritten handbook of many chunks, so the
    second version's own segment has enough vectors for every kind of damage (ids can only be permuted among two or
    more)."""
    (docs / "employee_handbook.md").write_text(
        "# Handbook\n\n" + "".join(f"Rule {i}: employees get {20 + i} days of vacation a year after {i} years of "
                                   f"service, and {i} extra days for every child under twelve.\n\n" for i in range(40)))


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
    assert len(ids) >= 2, "permuting ids needs two vectors or more"
    perm = np.roll(np.arange(len(ids)), 1)  # no id keeps its vector
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


def _segment_file(v: Path, role: str, kind: str) -> Path:
    """A data file of the live version: the segment it wrote itself ("new") or the one it shares with its
    predecessor by hard link ("shared"); ``kind`` is sqlite or faiss."""
    import json

    segments = sorted(json.loads((v / "manifest.json").read_text())["segments"], key=lambda s: s["name"])
    seg = segments[-1] if role == "new" else segments[0]
    return v / seg[kind]


def _manifest_segment_path(v: Path, name: str) -> None:
    import json

    m = json.loads((v / "manifest.json").read_text())
    m["segments"][0]["sqlite"] = name
    (v / "manifest.json").write_text(json.dumps(m))


def _other_segment(v: Path, role: str, kind: str) -> Path:
    return _segment_file(v, "shared" if role == "new" else "new", kind)


# name → damage(home, live version, previous version). Each must be detected: open and ingest refuse with
# IndexCorrupt, `docqa check` fails; none may be served silently. The fixture's live version has two segments: one
# it wrote, one shared with its predecessor by hard link (damage to it damages both versions).
CORRUPTIONS: dict[str, Callable[[Path, Path, Path], None]] = {}
for _role in ("new", "shared"):
    for _kind in ("sqlite", "faiss"):
        _at = f"{_role} segment's {_kind}"
        CORRUPTIONS.update({
            f"{_at}: truncated": lambda h, v, p, r=_role, k=_kind: _truncate(_segment_file(v, r, k)),
            f"{_at}: zeroed": lambda h, v, p, r=_role, k=_kind: _zero(_segment_file(v, r, k)),
            f"{_at}: 64 bytes garbled": lambda h, v, p, r=_role, k=_kind: _garble(_segment_file(v, r, k)),
            f"{_at}: deleted": lambda h, v, p, r=_role, k=_kind: _segment_file(v, r, k).unlink(),
            f"{_at}: emptied": lambda h, v, p, r=_role, k=_kind: _segment_file(v, r, k).write_bytes(b""),
            f"{_at}: copied from the other segment":
                lambda h, v, p, r=_role, k=_kind: _segment_file(v, r, k).write_bytes(
                    _other_segment(v, r, k).read_bytes()),
        })
    CORRUPTIONS.update({
        f"{_role} segment's faiss: ids permuted": lambda h, v, p, r=_role: _permute_ids(_segment_file(v, r, "faiss")),
        f"{_role} segment's sqlite: one byte changed in every chunk":
            lambda h, v, p, r=_role: _edit_chunks(_segment_file(v, r, "sqlite")),
        f"{_role} segment's sqlite: rows deleted": lambda h, v, p, r=_role: _drop_rows(_segment_file(v, r, "sqlite")),
    })
CORRUPTIONS.update({
    "manifest.json: truncated": lambda h, v, p: _truncate(v / "manifest.json"),
    "manifest.json: zeroed": lambda h, v, p: _zero(v / "manifest.json"),
    "manifest.json: 64 bytes garbled": lambda h, v, p: _garble(v / "manifest.json"),
    "manifest.json: deleted": lambda h, v, p: (v / "manifest.json").unlink(),
    "manifest.json: emptied": lambda h, v, p: (v / "manifest.json").write_bytes(b""),
    "manifest.json: copied from the previous version":
        lambda h, v, p: (v / "manifest.json").write_bytes((p / "manifest.json").read_bytes()),
    "manifest.json: a segment file outside the index": lambda h, v, p: _manifest_segment_path(v, "../../../etc/hosts"),
    "manifest.json: not JSON": lambda h, v, p: (v / "manifest.json").write_text("{not json"),
    "manifest.json: wrong types": lambda h, v, p: (v / "manifest.json").write_text('{"version": "x", "files": 3}'),
    "CURRENT: points outside the index": lambda h, v, p: (h / "CURRENT").write_text("../../elsewhere"),
    "CURRENT: garbage": lambda h, v, p: (h / "CURRENT").write_bytes(b"\xff\xfe garbage"),
    "CURRENT: names a missing version": lambda h, v, p: (h / "CURRENT").write_text("v000099"),
    "CURRENT: empty": lambda h, v, p: (h / "CURRENT").write_text(""),
    "version folder deleted": lambda h, v, p: __import__("shutil").rmtree(v),
})
