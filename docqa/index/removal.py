"""Removing a whole index (``docqa remove``) and measuring what it holds on disk: under the writer's lock, refused
while a reader holds a version, one rename as the commit point, then the Milvus collections its manifests name
outside the folder. Split from :mod:`.store` (the read side), which re-exports these names.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, DocQAError, IndexCorrupt, IndexNotFound, IndexWriteError
from .integrity import read_manifest
from .vector_stores import vector_store
from .versions import fsync_dir, list_indexes, valid_name, valid_root, versions


@dataclass
class Removed:
    """What ``docqa remove`` took away."""

    index: str
    bytes: int  # on disk under the index folder (hard-linked segments counted once)
    collections: list[str] = field(default_factory=list)  # Milvus collections dropped outside the folder
    left: list[str] = field(default_factory=list)  # ones that could not be dropped (server unreachable)


def remove_index(name: str, root: Path, *, force: bool = False) -> Removed:
    """Delete the index ``name`` (``docqa remove``). Under the writer's lock, so never during an ingest; refused while
    another reader holds one of its versions (an open index, in this process or another) unless ``force``. The folder
    is renamed away in one step, so a crash leaves the whole index or none of it under its name (the next remove
    sweeps the rest); then the Milvus collections its manifests name outside the folder are dropped (``left`` names
    any whose server could not be reached) and the folder is deleted."""
    valid_name(name)
    root = valid_root(Path(root))
    for leftover in root.glob(".removing-*") if root.is_dir() else []:  # a remove killed before it finished
        shutil.rmtree(leftover, ignore_errors=True)
    home = root / name
    if not home.is_dir():
        raise IndexNotFound(name, str(root), list_indexes(root))
    try:
        return _remove(name, root, home, force)
    except OSError as e:  # permissions, a read-only disk: the index is still whole under its name
        raise IndexWriteError(f"Cannot remove index '{name}' ({e.strerror or e}); nothing was removed. Check the "
                              f"permissions of {home}.") from None


def _remove(name: str, root: Path, home: Path, force: bool) -> Removed:
    lock = open(home / ".lock", "w")  # noqa: SIM115 - held until the folder is gone
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"Index '{name}' is being written by an ingest; remove it when that ends.") from None
        held = [v.name for v in versions(home) if _held(v)]
        if held and not force:
            raise ConfigError(f"Index '{name}' is open (version {held[0]} is held by a reader, in this process or "
                              f"another). Close it first, or pass --force: its readers then fail on their next read.")
        removed = Removed(name, disk_bytes(home))
        specs = []
        for folder in versions(home):
            try:
                spec = read_manifest(folder, name).vector_store or {}
            except IndexCorrupt:  # a damaged manifest names no collection we could drop
                continue
            if spec.get("type") == "milvus" and spec not in specs:
                specs.append(spec)
        outside = [sp for sp in specs if "://" in str(sp.get("uri", ""))
                   or not Path(str(sp.get("uri", ""))).resolve().is_relative_to(home.resolve())]
        trash = root / f".removing-{name}-{os.getpid()}"
        os.replace(home, trash)  # the commit point: from here the index is gone under its name
        with contextlib.suppress(OSError):
            fsync_dir(root)
        for spec in outside:  # a Milvus Lite file inside the folder goes with it
            where = f"{spec.get('collection')} at {spec.get('uri')}"
            store = vector_store(spec, home=trash, index=name)
            try:
                store.drop()
                removed.collections.append(where)
            except DocQAError:  # an unreachable server: the index is gone; say what is left there
                removed.left.append(where)
            finally:
                store.close()
        shutil.rmtree(trash, ignore_errors=True)
        return removed
    finally:
        lock.close()


def _held(folder: Path) -> bool:
    """True when a reader holds ``folder`` (its shared flock)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def disk_bytes(folder: Path) -> int:
    """Bytes of the files under ``folder``, each hard-linked file once (versions share their segments)."""
    seen, total = set(), 0
    for f in folder.rglob("*"):
        try:
            st = f.lstat()
        except OSError:
            continue
        if f.is_file() and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total
