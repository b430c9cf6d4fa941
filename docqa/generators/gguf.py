"""Where a generator's weights come from: an embedded alias, a .gguf file (converted once to safetensors), an HF id
or a local folder."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from ..errors import ModelLoadError, first_line
from ..paths import cache_dir, embedded_model_path, quiet_transformers


def _gguf_cache_folder(gguf: Path) -> Path:
    import transformers

    st = gguf.stat()
    key = hashlib.sha1(f"{gguf.resolve()}|{st.st_size}|{st.st_mtime_ns}|{transformers.__version__}".encode())
    return cache_dir() / "models" / f"{gguf.stem}-{key.hexdigest()[:12]}"


def materialize_gguf(gguf: Path) -> Path:
    """Convert a GGUF file once to a safetensors folder (model + tokenizer) under the cache and return it.

    transformers dequantizes GGUF weights and rebuilds the tokenizer from GGUF metadata on every load (≈ 19 s here,
    mostly the tokenizer); the saved folder loads in about a second. The folder is written under a temporary name
    and renamed into place, so an interrupted conversion never leaves a half-written cache.
    """
    out = _gguf_cache_folder(gguf)
    if (out / "config.json").exists():
        return out
    quiet_transformers()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    silenced = _silence_gguf_bar()
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype="float32")
        # The loaded weights are already dequantized; drop the GGUF quantizer so save_pretrained accepts them.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        try:
            os.replace(tmp, out)
        except OSError:  # another process finished first
            shutil.rmtree(tmp, ignore_errors=True)
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        silenced()
    return out


def _silence_gguf_bar():
    """transformers' GGUF loader draws "Converting and de-quantizing GGUF tensors" with plain tqdm, which its own
    progress switch does not reach: it leaked into piped and --json output. Off for the conversion; returns the undo.
    (docqa's own spinner shows that models are loading, on a terminal only.)"""
    import functools

    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    original = gguf_utils.tqdm
    gguf_utils.tqdm = functools.partial(original, disable=True)

    def undo() -> None:
        gguf_utils.tqdm = original

    return undo



def resolve_model(model: str) -> str:
    """The folder or HF id to load for ``model``: embedded aliases and .gguf files become converted folders."""
    path = embedded_model_path(model)
    if path is None and model.endswith(".gguf") and Path(model).is_file():
        path = Path(model)
    if path is not None and path.suffix == ".gguf":
        try:
            return str(materialize_gguf(path))
        except Exception as e:  # noqa: BLE001 - any conversion failure is one clear line
            raise ModelLoadError(f"Could not convert GGUF model {path}: {first_line(e)}.") from e
    return str(path) if path is not None else model
