"""What docqa's llama.cpp backend reads from a GGUF file before it runs it: the file behind an alias, the shapes and
rope settings in its metadata (and the models it refuses), and its chat template; and llama.cpp's load log, silenced.

Kept apart from :mod:`docqa.generators.llamacpp` so that the backend module holds the generator alone; nothing here
imports llama-cpp-python at import time (``llama_cpp_available`` answers without importing it).
"""

from __future__ import annotations

import ctypes
from pathlib import Path

from ..errors import ModelLoadError, first_line


class Silence:
    """llama.cpp logs model loading to stderr; docqa draws its own progress. One no-op log callback, kept alive."""

    callback = None

    @classmethod
    def install(cls) -> None:
        if cls.callback is None:
            import llama_cpp

            cls.callback = llama_cpp.llama_log_callback(lambda level, text, data: None)
            llama_cpp.llama_log_set(cls.callback, ctypes.c_void_p(0))


def gguf_facts(meta: dict[str, str], spec: str) -> dict:
    """The shapes docqa needs, read from GGUF metadata (architecture-prefixed keys)."""
    arch = meta.get("general.architecture", "")
    def get(key: str, default=None):
        return meta.get(f"{arch}.{key}", default)

    if get("attention.sliding_window") is not None:
        raise ModelLoadError(f"Model '{spec}' ({arch}) uses sliding-window attention, whose prefix docqa's llama.cpp "
                             f"backend cannot reuse. Run it on the transformers backend (--model transformers:"
                             f"{spec.split(':', 1)[-1]}), or serve it: --model openai:NAME --base-url URL.")
    try:
        n_layer = int(get("block_count"))
        n_embd = int(get("embedding_length"))
        n_head = int(get("attention.head_count"))
        n_head_kv = int(get("attention.head_count_kv", n_head))
        head_dim = int(get("attention.key_length", n_embd // n_head))
        window = int(get("context_length"))
    except (TypeError, ValueError) as e:
        raise ModelLoadError(f"Model '{spec}' is a GGUF file without the {arch}.* shape keys docqa reads "
                             f"({first_line(e)}). Use a GGUF converted by llama.cpp's convert_hf_to_gguf.py.") from None
    scaling = get("rope.scaling.type", "none")
    if scaling not in ("none", "", None):
        raise ModelLoadError(f"Model '{spec}' ships its own rope scaling ({scaling}); docqa's llama.cpp backend runs "
                             f"plain-rope GGUF models only. Use --model transformers:{spec} instead.")
    return {"arch": arch, "n_layer": n_layer, "n_head_kv": n_head_kv, "head_dim": head_dim, "window": window,
            "rope_dims": int(get("rope.dimension_count", head_dim)), "rope_theta": float(get("rope.freq_base", 1e4)),
            "template": meta.get("tokenizer.chat_template")}


class ChatTemplate:
    """A GGUF's chat template with the interface :func:`~docqa.generators.base.render_chat` uses (transformers'
    ``apply_chat_template``): rendered by jinja2 in a sandbox, with the settings transformers uses."""

    def __init__(self, source: str | None, bos: str, eos: str):
        self.chat_template = source
        self.bos, self.eos = bos, eos
        self._compiled = None

    def apply_chat_template(self, messages, tokenize: bool = False, add_generation_prompt: bool = True) -> str:
        if self._compiled is None:
            from jinja2.exceptions import TemplateError
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            def raise_exception(message):
                raise TemplateError(message)

            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                extensions=["jinja2.ext.loopcontrols"])
            env.globals["raise_exception"] = raise_exception
            self._compiled = env.from_string(self.chat_template)
        return self._compiled.render(messages=messages, add_generation_prompt=add_generation_prompt,
                                     bos_token=self.bos, eos_token=self.eos)


def gguf_path(model: str) -> Path:
    """The GGUF file behind ``model``: an embedded alias (assembled and verified) or a path to a .gguf file."""
    from ..models import model_path

    path = model_path(model)
    if path is None:
        path = Path(model).expanduser()
    if path.suffix == ".gguf" and not path.is_file():
        raise ModelLoadError(f"No GGUF file at '{model}'. Check the path, or pass an embedded alias (docqa models).")
    if path.suffix != ".gguf" or not path.is_file():
        raise ModelLoadError(f"The llama.cpp backend runs GGUF files; '{model}' is not one. Pass an embedded alias "
                             f"(docqa models) or a path to a .gguf file.")
    return path


def llama_cpp_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None
