"""What docqa reads from a transformers checkpoint before loading it, and the devices and kernels it loads onto.

Decided from ``AutoConfig`` alone, so that a layout docqa cannot serve is refused before any weight is read: the rope
layout (plain, natively scaled, partial rotary; per-layer-type rope and sliding windows refused), the facts rope plans
need (:class:`~docqa.rope.RopeModel`), the device map and the attention implementation.
"""

from __future__ import annotations

from ..errors import ConfigError, ModelLoadError, first_line
from ..rope import RopeModel, RopePlan, inv_freq_for


def resolve_device(requested: str | None) -> tuple[str | dict, str]:
    """(device_map for from_pretrained, the device inputs go to) for ``--device``: None (CUDA when present, else
    CPU), cpu, cuda, cuda:N, or auto (every GPU, layers spread by accelerate)."""
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    dev = (requested or ("cuda" if gpus else "cpu")).strip().lower()
    if dev == "auto":
        return ("auto", "cuda:0") if gpus else ("cpu", "cpu")
    if dev == "cpu":
        return "cpu", "cpu"
    if dev == "cuda" or dev.startswith("cuda:"):
        index = dev.partition(":")[2]
        if not gpus:
            raise ConfigError(f"--device {dev}: torch sees no CUDA GPU here. Use --device cpu, or install a CUDA "
                              f"build of torch.")
        if index and (not index.isdigit() or int(index) >= gpus):
            raise ConfigError(f"--device {dev}: there are {gpus} GPU(s) (cuda:0..cuda:{gpus - 1}).")
        dev = dev if index else "cuda:0"
        return {"": dev}, dev
    raise ConfigError(f"Unknown device '{requested}'. Use cpu, cuda, cuda:N or auto (spread over every GPU).")


def resolve_attn(requested: str | None, device: str) -> str | None:
    """The attention implementation to load with (None: transformers' default, sdpa)."""
    if requested in (None, "", "sdpa"):
        return None
    if requested == "eager":
        return "eager"
    if requested in ("flash_attention_2", "flash-attention-2", "fa2"):
        import importlib.util

        if not device.startswith("cuda"):
            raise ConfigError("--attn flash_attention_2 needs a CUDA GPU; on CPU use sdpa (the default).")
        if importlib.util.find_spec("flash_attn") is None:
            raise ConfigError("--attn flash_attention_2: the flash-attn package is not installed. Install it with "
                              "pip install flash-attn --no-build-isolation, or use sdpa (the default).")
        return "flash_attention_2"
    raise ConfigError(f"Unknown attention '{requested}'. Use sdpa, flash_attention_2 or eager.")


def _rotation_key(plan: RopePlan, rope_model: RopeModel) -> tuple:
    """What a plan computes: its frequencies and attention factor (plans of different lengths often agree)."""
    inv, attention = inv_freq_for(plan, rope_model)
    return tuple(inv.tolist()), attention


def _load_config(model: str, folder: str, trust_remote_code: bool):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except Exception as e:  # noqa: BLE001 - any failure is one clear line
        raise ModelLoadError(f"Could not read the config of generator '{model}': {first_line(e)}. Pass --model "
                             f"with an HF id, a local folder or a .gguf file.") from e


def _head_dim(cfg) -> int:
    return int(getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)


def advertised_window(cfg) -> int:
    """The window a checkpoint advertises: ``max_position_embeddings``, or what its own scaled rope reaches where that
    is larger (a Qwen2.5 config given a YaRN block keeps max_position_embeddings 32 768 with factor 4 over 32 768)."""
    window = int(getattr(cfg, "max_position_embeddings", 0) or 0)
    params = getattr(cfg, "rope_parameters", None) or {}
    original, factor = params.get("original_max_position_embeddings"), params.get("factor")
    if params.get("rope_type", "default") in ("yarn", "linear", "dynamic") and original and factor:
        window = max(window, int(original * factor))
    return window


def rope_model_from_config(cfg, trained_window: int | None = None) -> "RopeModel":
    """The rotary facts of a transformers config (see :class:`~docqa.rope.RopeModel`): rotary dims (partial rotary
    included), base, L₀ and, for a checkpoint that ships scaled rope, its parameters. Plain RoPE keeps L₀ = the trained
    window (``original_max_position_embeddings`` where given); scaled rope uses the advertised window."""
    import json

    params = dict(getattr(cfg, "rope_parameters", None) or {})
    partial = float(params.get("partial_rotary_factor") or getattr(cfg, "partial_rotary_factor", None) or 1.0)
    rotary_dim = int(_head_dim(cfg) * partial)
    rope_type = params.get("rope_type", "default")
    if rope_type == "default":
        window = params.get("original_max_position_embeddings") or cfg.max_position_embeddings
        native = ""
    else:
        window = advertised_window(cfg)
        native = json.dumps({k: v for k, v in params.items() if k != "partial_rotary_factor"}, sort_keys=True)
    return RopeModel(rotary_dim, float(params.get("rope_theta", 10000.0)), int(trained_window or window), native)


def check_rope_layout(model: str, cfg) -> None:
    """Refuse, from the config alone (before any weight is loaded), the rope layouts docqa's in-process rope
    installation does not handle: it rotates every layer with one set of frequencies it installs per request, so a
    rope per layer type (Gemma 3) would get frequencies for the wrong layers, and a sliding-window cache drops the
    document prefix it is meant to keep. Plain, natively scaled (llama3, yarn, longrope, linear, dynamic) and partial
    rotary are handled. Each refusal names the model's window and what works instead: a server."""
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    window = getattr(cfg, "max_position_embeddings", None)
    where = f" (advertised window {window:,} tokens)" if isinstance(window, int) else ""
    served = ("Serve it with vLLM, SGLang or llama.cpp and use --model openai:NAME --base-url URL: the server "
              "applies the model's own rope and attention.")
    params = getattr(cfg, "rope_parameters", None) or {}
    per_type = [k for k, v in params.items() if isinstance(v, dict)]
    if per_type:
        raise ModelLoadError(f"Model '{model}'{where} has a rope per layer type ({', '.join(per_type)}), which docqa's "
                             f"in-process backend does not support. {served}")
    rope_type = params.get("rope_type", "default")
    if rope_type != "default" and rope_type not in ROPE_INIT_FUNCTIONS:
        raise ModelLoadError(f"Model '{model}'{where} ships rope_type '{rope_type}', which this transformers version "
                             f"does not know. Upgrade transformers, or: {served}")
    sliding = getattr(cfg, "sliding_window", None)
    uses_sliding = getattr(cfg, "use_sliding_window", sliding is not None) or "sliding_attention" in (
        getattr(cfg, "layer_types", None) or [])
    if sliding and uses_sliding:
        raise ModelLoadError(f"Model '{model}'{where} uses sliding-window attention ({sliding:,} tokens), whose cache "
                             f"drops the document prefix docqa reuses. {served}")
