"""What docqa reads from a transformers checkpoint before loading it, and the devices and kernels it loads onto.

Decided from ``AutoConfig`` alone, so that a layout docqa cannot serve is refused before any weight is read: the rope
layout (plain, natively scaled, partial rotary; full and sliding-window layers, one rope or one per layer type), the
facts rope plans
need (:class:`~docqa.rope.RopeModel`), the device map and the attention implementation.
"""

from __future__ import annotations

from ..errors import ConfigError, ModelLoadError, first_line
from ..rope import RopeModel


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


def _load_config(model: str, folder: str, trust_remote_code: bool):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except Exception as e:  # noqa: BLE001 - any failure is one clear line
        raise ModelLoadError(f"Could not read the config of generator '{model}': {first_line(e)}. Pass --model "
                             f"with an HF id, a local folder or a .gguf file.") from e


def _head_dim(cfg) -> int:
    return int(getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)


def advertised_window(cfg, params: dict | None = None) -> int:
    """The window a checkpoint advertises: ``max_position_embeddings``, or what its own scaled rope reaches where that
    is larger (a Qwen2.5 config given a YaRN block keeps max_position_embeddings 32 768 with factor 4 over 32 768).
    ``params``: one rope block (of a model with one per layer type); default the config's own."""
    window = int(getattr(cfg, "max_position_embeddings", 0) or 0)
    if params is None:
        params = getattr(cfg, "rope_parameters", None) or {}
        if any(isinstance(v, dict) for v in params.values()):
            params = params.get(FULL) or {}
    original, factor = params.get("original_max_position_embeddings"), params.get("factor")
    if params.get("rope_type", "default") in ("yarn", "linear", "dynamic") and original and factor:
        window = max(window, int(original * factor))
    return window


# Layer types docqa's caches and rope plans handle: full layers attend to every position, sliding ones to their last
# ``sliding_window``. Others (Llama 4's chunked attention, linear-attention or recurrent layers) are refused by name.
FULL, SLIDING = "full_attention", "sliding_attention"


def layer_types(cfg) -> list[str]:
    """Each layer's attention type: the config's ``layer_types``, else every layer sliding where the config applies a
    sliding window to all (Mistral), else every layer full."""
    types = getattr(cfg, "layer_types", None)
    if types:
        return list(types)
    sliding = getattr(cfg, "sliding_window", None)
    uses = getattr(cfg, "use_sliding_window", sliding is not None)
    return [SLIDING if sliding and uses else FULL] * int(cfg.num_hidden_layers)


def _rope_of(cfg, params: dict, trained_window: int | None, window: int | None = None) -> RopeModel:
    import json

    partial = float(params.get("partial_rotary_factor") or getattr(cfg, "partial_rotary_factor", None) or 1.0)
    rotary_dim = int(_head_dim(cfg) * partial)
    rope_type = params.get("rope_type", "default")
    if rope_type == "default":
        window = window or params.get("original_max_position_embeddings") or cfg.max_position_embeddings
        native = ""
    else:
        window = window or advertised_window(cfg, params)
        native = json.dumps({k: v for k, v in params.items() if k != "partial_rotary_factor"}, sort_keys=True)
    return RopeModel(rotary_dim, float(params.get("rope_theta", 10000.0)), int(trained_window or window), native)


def rope_model_from_config(cfg, trained_window: int | None = None) -> "RopeModel":
    """The rotary facts of a transformers config (see :class:`~docqa.rope.RopeModel`): rotary dims (partial rotary
    included), base, L₀ and, for a checkpoint that ships scaled rope, its parameters. Plain RoPE keeps L₀ = the trained
    window (``original_max_position_embeddings`` where given); scaled rope uses the advertised window.

    Hybrid attention: with one rope per layer type (Gemma 3), the full layers' rope is the one plans stretch and the
    sliding layers' ropes are kept in ``fixed``; with one rope for all, the sliding window is recorded for the plan's
    report (and, where every layer slides, nothing is ever stretched)."""
    from dataclasses import replace

    params = dict(getattr(cfg, "rope_parameters", None) or {})
    types = layer_types(cfg)
    window = int(getattr(cfg, "sliding_window", None) or 0) if SLIDING in types else 0
    only_sliding = bool(types) and all(t == SLIDING for t in types)
    if any(isinstance(v, dict) for v in params.values()):
        main = FULL if FULL in params else sorted(params)[0]
        model = _rope_of(cfg, params[main], trained_window)
        own_window = model.trained_window
        fixed = tuple((name, _rope_of(cfg, p, trained_window, own_window)) for name, p in sorted(params.items())
                      if name != main)
        return replace(model, layer_type=main, fixed=fixed, sliding_window=window, only_sliding=only_sliding)
    return replace(_rope_of(cfg, params, trained_window), sliding_window=window, only_sliding=only_sliding)


def check_rope_layout(model: str, cfg) -> None:
    """Refuse, from the config alone (before any weight is loaded), the layouts docqa's in-process rope installation
    and caches do not handle, each in one line naming what works instead (a server). Handled: plain, natively scaled
    (llama3, yarn, longrope, linear, dynamic) and partial rotary rope; full and sliding-window layers in any mix, with
    one rope for all of them or one per layer type (Gemma 3)."""
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    window = getattr(cfg, "max_position_embeddings", None)
    where = f" (advertised window {window:,} tokens)" if isinstance(window, int) else ""
    served = ("Serve it with vLLM, SGLang or llama.cpp and use --model openai:NAME --base-url URL: the server "
              "applies the model's own rope and attention.")
    types = layer_types(cfg)
    other = sorted(set(types) - {FULL, SLIDING})
    if other:
        raise ModelLoadError(f"Model '{model}'{where} has {', '.join(other)} layers, whose caches docqa's in-process "
                             f"backend does not keep (it handles full and sliding-window attention). {served}")
    params = getattr(cfg, "rope_parameters", None) or {}
    per_type = {k: v for k, v in params.items() if isinstance(v, dict)}
    blocks = [per_type[k] for k in sorted(per_type)] if per_type else [params]
    if per_type and set(per_type) != set(types):
        raise ModelLoadError(f"Model '{model}'{where}: its layer types ({', '.join(sorted(set(types)))}) and its rope "
                             f"blocks ({', '.join(sorted(per_type))}) disagree, so some layers would have no rope. "
                             f"Fix config.json's rope_parameters or layer_types.")
    for block in blocks:
        rope_type = block.get("rope_type", "default")
        if rope_type != "default" and rope_type not in ROPE_INIT_FUNCTIONS:
            raise ModelLoadError(f"Model '{model}'{where} ships rope_type '{rope_type}', which this transformers "
                                 f"version does not know. Upgrade transformers, or: {served}")
    sliding = getattr(cfg, "sliding_window", None)
    if SLIDING in types:
        if not isinstance(sliding, int) or sliding < 1:
            raise ModelLoadError(f"Model '{model}'{where} has sliding-window layers but no sliding_window size "
                                 f"({sliding!r}). Fix config.json's sliding_window.")
        if isinstance(window, int) and sliding > window:
            raise ModelLoadError(f"Model '{model}'{where}: its sliding window ({sliding:,} tokens) is larger than "
                                 f"its window, so the config is inconsistent. Fix config.json's sliding_window or "
                                 f"max_position_embeddings.")
