"""Model names that are neither an embedded alias nor a local path: Hugging Face ids, checked before anything loads.

Why a check of docqa's own: with no network, transformers and sentence-transformers retry the hub with back-off
before they give up, one log line a retry (measured on this project's machine: 28 s for ``--model nomodel``, 74 s for
``--embedder minilm``, which sentence-transformers also tries as ``sentence-transformers/minilm``), and a typo of an
alias (``qwen2.5-coder-1.5``) went to the hub the same way. Here a near-miss of an alias is named at once, a path
that does not exist is said to be one, and an id the local Hugging Face cache lacks, with the hub out of reach, is
one line within a few seconds. Ids the cache holds, and every id where the hub answers, load as before.
"""

from __future__ import annotations

import difflib
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from .errors import ModelLoadError

# Seconds to wait for the hub's TCP handshake: a reachable hub answers in well under a second; a machine without a
# network fails at once (no DNS) or waits this long (a firewall that drops packets).
PROBE_TIMEOUT_S = 3.0

_reachable: dict[str, bool] = {}  # per endpoint, once a process


def _looks_like_path(name: str) -> bool:
    """A name only a file system can mean: absolute, relative with ./ or ../, from ~, a .gguf file, or with more
    than one slash (a hub id is ``org/name``)."""
    return (name.startswith(("/", "./", "../", "~", ".\\")) or name.lower().endswith(".gguf")
            or name.count("/") > 1 or "\\" in name)


def _in_hf_cache(ids: list[str], files: tuple[str, ...]) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # without huggingface_hub nothing can come from the hub either; let the loader say so
        return True
    for repo in ids:
        for file in files:
            try:
                if isinstance(try_to_load_from_cache(repo, file), str):
                    return True
            except Exception:  # noqa: BLE001 - an id the hub's rules reject (spaces, …) is not in the cache
                continue
    return False


def hub_reachable() -> bool:
    """True when the Hugging Face endpoint accepts a TCP connection (or a proxy is configured, which a direct probe
    cannot judge); measured once a process."""
    try:
        from huggingface_hub import constants
        endpoint = constants.ENDPOINT
    except ImportError:
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    if endpoint not in _reachable:
        if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
            _reachable[endpoint] = True
        else:
            url = urlparse(endpoint)
            port = url.port or (443 if url.scheme == "https" else 80)
            try:
                socket.create_connection((url.hostname or "", port), timeout=PROBE_TIMEOUT_S).close()
                _reachable[endpoint] = True
            except OSError:
                _reachable[endpoint] = False
    return _reachable[endpoint]


def check_model_name(name: str, kind: str, option: str, aliases: list[str],
                     hub_ids: list[str] | None = None, files: tuple[str, ...] = ("config.json",)) -> None:
    """Raise one clear :class:`ModelLoadError` for a ``name`` that cannot load here, before a library retries the hub.

    ``name`` is what the user passed to ``option`` (``--model``, ``--embedder``) for a ``kind`` of model; ``aliases``
    the embedded aliases of that kind (a name among them never reaches this check's hub part); ``hub_ids`` the ids
    the loader would try on the hub (default: ``name``); ``files`` one of which a cached copy holds. An offline hub
    (``HF_HUB_OFFLINE``) is left to the loader, which then fails at once."""
    name = name.strip()
    if name.lower() in aliases or Path(name).expanduser().exists():
        return
    local = ", a local folder or a .gguf file" if kind == "generator" else " or a local folder"
    listed = f"Use an embedded alias ({', '.join(aliases)}; `docqa models` lists them){local}"
    if _looks_like_path(name):
        raise ModelLoadError(f"{option} '{name}': no such file or folder. {listed}.")
    if _in_hf_cache(hub_ids or [name], files):
        return
    if "/" not in name:
        near = difflib.get_close_matches(name.lower(), aliases, n=1, cutoff=0.75)
        if near:
            raise ModelLoadError(f"{option} '{name}' is not an embedded {kind}: did you mean {near[0]}? "
                                 f"`docqa models` lists the aliases.")
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return
    if not hub_reachable():
        raise ModelLoadError(f"{option} '{name}' is not an embedded alias, a local path or a model in the Hugging Face "
                             f"cache, and the hub cannot be reached from this machine to download it. {listed}.")
