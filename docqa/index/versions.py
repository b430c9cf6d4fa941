"""Index folders and their versions: names, ``CURRENT``, reader locks, atomic writes.

Layout of ``indexes/NAME``::

    CURRENT            the name of the live version folder, e.g. "v000004" (replaced atomically)
    v000004/
        manifest.json  embedder, tokenizer, chunk settings, per-file hashes; per segment: its files, checksums,
                       sizes, counts, deleted files and vector index (integrity.Manifest)
        s000001.sqlite files, documents (full extracted text), chunks and summaries of one segment (segments.py)
        s000001.faiss  the segment's vectors (FAISS store; vector_stores/), ids = chunk ids, unit-norm
        s000004.sqlite ...  a segment this version wrote; the others are hard links to its predecessor's files
    .lock              held while an ingest writes

A writer never touches the live version (writer.py); readers hold a shared ``flock`` on their version folder, and
pruning skips any version so held. Hard links make pruning safe for shared segments: removing an old version's
folder drops one link, and the bytes stay while a newer version links them.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
from pathlib import Path

from ..errors import ConfigError, IndexCorrupt, IndexNotFound
from ..paths import replaced_atomically
from .integrity import Manifest, corrupt, read_manifest

MAX_NAME = 100  # an index name is a folder name; 255 bytes is the usual limit, and we add suffixes
VERSION = re.compile(r"^v\d{6}$")


def _suggest(name: str) -> str:
    """A valid name close to ``name`` ('my docs' → 'my-docs', 'Ünïcode' → 'Unicode'), else 'handbook'."""
    import unicodedata

    ascii_ = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", ascii_).strip("-.")[:MAX_NAME].rstrip("-.")
    return cleaned or "handbook"


def valid_name(name: str) -> str:
    """Index names are folder names: letters, digits, '-', '_' and '.', not starting with '.', at most 100 long."""
    ok = bool(name) and not name.startswith(".") and all(c.isascii() and (c.isalnum() or c in "-_.") for c in name)
    if not ok:
        shown = name if len(name) <= 60 else name[:57] + "..."
        raise ConfigError(f"Bad index name '{shown}'. Use ASCII letters, digits, '-', '_' or '.' (not first), e.g. "
                          f"--index {_suggest(name)}")
    if len(name) > MAX_NAME:
        raise ConfigError(f"Index name '{name[:40]}...' is {len(name)} characters long; use at most {MAX_NAME}, e.g. "
                          f"--index {_suggest(name)}")
    return name


def valid_root(root: Path) -> Path:
    """The folder of indexes: it may not exist yet, but it may not be a file."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--root '{root}' is a file, not a folder. Point --root at a folder of indexes "
                          f"(it is created when missing).")
    return root


def list_indexes(root: Path) -> list[str]:
    """Names of the indexes under ``root``."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "CURRENT").is_file())


def live_version(home: Path, index: str) -> Path | None:
    """The version folder ``CURRENT`` names, or None when there is no ``CURRENT``. ``CURRENT`` is data, not a path:
    it must name a version folder (``v`` and six digits) directly inside the index."""
    try:
        raw = (home / "CURRENT").read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise corrupt(index, f"CURRENT is unreadable ({e.strerror})") from e
    name = raw.decode("ascii", "replace").strip()
    if not VERSION.match(name):
        raise corrupt(index, f"CURRENT holds {name[:40]!r}, not a version name like v000001")
    path = home / name
    if not path.is_dir():
        raise corrupt(index, f"CURRENT names {name}, which does not exist")
    return path


def read_live_manifest(name: str, root: Path) -> Manifest:
    """The live version's manifest alone (no data files opened): for listings and for picking an embedder."""
    valid_name(name)
    path = live_version(valid_root(root) / name, name)
    if path is None:
        raise IndexNotFound(name, str(root), list_indexes(root))
    return read_manifest(path, name)


def shared_lock(path: Path) -> int:
    """A shared flock on a version folder, held by a reader: pruning skips folders so held."""
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def link_or_copy(src: Path, dst: Path) -> bool:
    """Share ``src`` as ``dst`` by hard link (O(1)); copy where the filesystem cannot link. True when linked."""
    try:
        os.link(src, dst)
        return True
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    shutil.copy2(src, dst)
    return False


def versions(home: Path) -> list[Path]:
    """Version folders of an index, oldest first."""
    return sorted(p for p in home.glob("v[0-9]*") if p.is_dir() and VERSION.match(p.name))


def fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, text: str) -> None:
    with replaced_atomically(path) as tmp, open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def recover(home: Path, index: str, *, keep_current: bool = False) -> Path | None:
    """Under the writer's lock: sweep what dead writers left and return the live version (None for a new index).

    Temp folders and files are always a dead writer's (the caller holds the lock). A version folder newer than the
    live one, or any version folder when there is no ``CURRENT``, was renamed by a writer killed before it updated
    ``CURRENT``: its ingest never reported success, so it is removed and this ingest redoes the work. With
    ``keep_current`` (``--rebuild``) a damaged ``CURRENT`` is not an error: it is about to be replaced."""
    for p in home.glob(".tmp-*"):
        shutil.rmtree(p, ignore_errors=True)
    for p in home.glob(".CURRENT.tmp-*"):
        p.unlink(missing_ok=True)
    try:
        live = live_version(home, index)
    except IndexCorrupt:
        if keep_current:
            return None
        raise
    live_n = int(live.name[1:]) if live else 0
    for p in home.glob("v[0-9]*"):
        if VERSION.match(p.name) and int(p.name[1:]) > live_n:
            shutil.rmtree(p, ignore_errors=True)
    return live


def prune(home: Path, keep: int) -> None:
    """Remove all but the newest ``keep`` versions, skipping any a reader holds (the next writer retries). Shared
    segments survive through their other links."""
    for old in versions(home)[:-keep]:
        try:
            fd = os.open(old, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a reader still holds it
            os.close(fd)
            continue
        try:
            shutil.rmtree(old, ignore_errors=True)
        finally:
            os.close(fd)
