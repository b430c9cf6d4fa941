"""Rotary position embedding (RoPE) methods that stretch a model's trained window.

Every method has one signature, ``fn(model: RopeModel, factor: float, seq_len: int) -> (inv_freq, attention_factor)``,
like transformers' ``modeling_rope_utils.py``: ``inv_freq`` is the (head_dim/2,) float32 tensor of inverse
frequencies and ``attention_factor`` multiplies cos/sin (1.0 except for YaRN). ``factor`` is the scale s for
linear, ntk and yarn, and α for dynamic (whose scale follows ``seq_len``). Where transformers implements a method
(linear, dynamic, yarn) we call its function; ntk (static NTK-aware) it does not have, so it is written here.

docqa fixes one plan per request (:func:`plan_for`), sized for the request's final length (prompt + answer budget),
so that the prefill and every decode step rotate with the same frequencies. transformers' own ``dynamic`` type
instead recomputes the base whenever generation crosses a new length, which leaves cached keys rotated with an older
base than new queries (transformers issue #25104).

Hybrid-attention models (Gemma 3, gpt-oss, Mistral or Qwen2 with sliding windows) mix sliding-window layers, which
never attend further back than their window, with full layers. Only the full layers ever see a position difference
past the trained window, so only their rope is stretched: a :class:`RopeModel` describes that rope, and
``RopeModel.fixed`` keeps the other layer types' ropes (Gemma 3's sliding layers: base 10 000), which every plan
leaves as they are. Where every layer slides (Mistral 7B v0.1), nothing is ever stretched. A plan's
:meth:`RopePlan.to_dict` says what each layer type does.

To add a method: write ``_compute_<name>(model, factor, seq_len)`` with the docstring layout below (formula and
source), and register it in ``ROPE_METHODS``. ``tests/test_rope.py`` loops over the registry.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .registry import Registry

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class RopeModel:
    """The rotary facts of a model that every method needs.

    A checkpoint that ships its own scaled rope (Llama 3.x ``llama3``, Qwen2.5/DeepSeek ``yarn``, Phi-3.5 ``longrope``,
    ``linear``, ``dynamic``) carries those parameters in ``native``; its ``trained_window`` is then the window it
    advertises, within which its own rope is used unchanged (method ``native``), and past which docqa's methods
    stretch *its* frequencies with that window as L₀.
    """

    head_dim: int  # rotary dimensions per head: head_dim × partial_rotary_factor (Phi-2: 32 of 64)
    rope_theta: float  # the base b of the trained model (SmolLM2: 100000)
    trained_window: int  # L₀, the length the model was trained on (SmolLM2: 8192), or its advertised window
    native: str = ""  # JSON of the checkpoint's own rope parameters when they are scaled; "" for plain RoPE
    # Hybrid attention. ``layer_type``: the layer type this rope rotates when the model keeps one rope per layer type
    # (Gemma 3: "full_attention"); "" when one rope rotates every layer. ``fixed``: the other layer types' ropes,
    # never stretched. ``sliding_window``: the tokens a sliding layer attends to (0: no sliding layers);
    # ``only_sliding``: every layer slides, so no position difference ever passes the window.
    layer_type: str = ""
    fixed: tuple[tuple[str, RopeModel], ...] = ()
    sliding_window: int = 0
    only_sliding: bool = False

    @property
    def native_type(self) -> str:
        return json.loads(self.native).get("rope_type", "default") if self.native else "default"

    def layer_frequencies(self, plan: RopePlan) -> dict[str, tuple[torch.Tensor, float]]:
        """Inverse frequencies and attention factor per layer type for ``plan`` ("" when one rope rotates every
        layer): the planned rope for this rope's layers, each fixed layer type's own rope unchanged."""
        out = {self.layer_type: inv_freq_for(plan, self)}
        for name, own in self.fixed:
            # ``METHOD@all`` (plan.every_layer): the same stretch on these layers too, for comparison
            out[name] = inv_freq_for(plan, own) if plan.every_layer else native_inv_freq(own, plan.seq_len)
        return out

    def rotation(self, plan: RopePlan) -> tuple:
        """What ``plan`` computes on this model, hashable and JSON-able: ``(inv_freq, attention)`` for one rope, else
        ``(layer type, inv_freq, attention)`` per layer type. Plans with equal rotations rotate alike (plans sized for
        different lengths within the window do), so prefixes, batches and benchmark cells are keyed by it."""
        per_type = sorted(self.layer_frequencies(plan).items())
        if len(per_type) == 1 and per_type[0][0] == "":
            inv, attention = per_type[0][1]
            return tuple(inv.tolist()), float(attention)
        return tuple((name, tuple(inv.tolist()), float(attention)) for name, (inv, attention) in per_type)


@dataclass(frozen=True)
class RopePlan:
    """The rope settings of one request (or one cached prefix), fixed for its whole length."""

    method: str
    factor: float  # effective scale s (1.0 = plain RoPE); for dynamic: α·L/L₀ − (α − 1)
    base: float  # effective rotary base (differs from rope_theta for ntk and dynamic)
    attention_factor: float  # multiplies cos/sin; YaRN's 0.1·ln(s) + 1, else 1.0
    seq_len: int  # the length the plan was sized for
    # Hybrid attention: what each layer type does, as (layer type, method, factor, base, note); () for one rope.
    layers: tuple[tuple[str, str, float, float, str], ...] = ()
    every_layer: bool = False  # ``METHOD@all``: the fixed layer types are stretched too (a comparison, not a default)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["layers"] = {name: {"method": method, "factor": round(factor, 4), "base": base, "note": note}
                         for name, method, factor, base, note in self.layers}
        if not self.layers:
            del out["layers"]
        if not self.every_layer:
            del out["every_layer"]
        return out


RopeFn = Callable[[RopeModel, float, int], "tuple[torch.Tensor, float]"]


def _hf_config(model: RopeModel, rope_parameters: dict[str, Any]):
    """A minimal transformers config carrying ``rope_parameters``, to call transformers' rope functions. Its head
    is the rotary part only, so partial-rotary models get frequencies for exactly their rotated dimensions."""
    from transformers import LlamaConfig

    heads = 1
    params = {k: v for k, v in rope_parameters.items() if k != "partial_rotary_factor"}
    return LlamaConfig(
        hidden_size=model.head_dim * heads,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=model.head_dim,
        max_position_embeddings=model.trained_window,
        rope_parameters={"rope_theta": model.rope_theta, **params},
    )


def _plain_inv_freq(dim: int, base: float) -> "torch.Tensor":
    import torch

    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


def native_inv_freq(model: RopeModel, seq_len: int) -> "tuple[torch.Tensor, float]":
    """The model's own frequencies and attention factor for a request of ``seq_len`` tokens: plain RoPE, or the
    checkpoint's scaled rope computed by transformers' own function for its type (for ``longrope`` the short
    factors up to its original window, the long ones past it; for ``dynamic`` the base that length gives)."""
    if not model.native:
        return _plain_inv_freq(model.head_dim, model.rope_theta), 1.0
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    params = json.loads(model.native)
    inv, att = ROPE_INIT_FUNCTIONS[params["rope_type"]](_hf_config(model, params), None, int(seq_len))
    return inv.float(), float(att)


def _native_base(model: RopeModel) -> "tuple[torch.Tensor, float]":
    """What docqa's methods stretch on a natively scaled model: its own frequencies at its full window."""
    return native_inv_freq(model, model.trained_window)


def _ntk_ratio(model: RopeModel, scale: float) -> "torch.Tensor":
    """NTK-aware scaling as a per-dimension factor: b' = b·s^(d/(d−2)) multiplies θᵢ by s^(−2i/(d−2)). Written this
    way it applies to any frequency vector, not just a geometric one."""
    import torch

    d = model.head_dim
    return float(scale) ** (-torch.arange(0, d, 2, dtype=torch.int64).float() / (d - 2))


def _compute_none(model: RopeModel, factor: float, seq_len: int) -> "tuple[torch.Tensor, float]":
    """Plain RoPE (Su et al. 2021): θᵢ = b^(−2i/d), or a natively scaled checkpoint's own rope unchanged. No
    extension: positions past L₀ are extrapolated, and perplexity explodes there (SmolLM2 at 16 k: 575).
    ``factor`` is ignored. Alias ``native``."""
    return native_inv_freq(model, seq_len)


def _compute_linear(model: RopeModel, factor: float, seq_len: int) -> "tuple[torch.Tensor, float]":
    """Position Interpolation (Chen et al. 2023, "Extending Context Window of LLMs via Positional Interpolation"):
    positions are divided by s, i.e. θᵢ' = θᵢ / s, so L₀·s positions map into the trained range. Blurs nearby
    positions (high frequencies) as much as distant ones. transformers' ``linear`` type."""
    if model.native:
        inv, att = _native_base(model)
        return inv / float(factor), att
    from transformers.modeling_rope_utils import _compute_linear_scaling_rope_parameters

    cfg = _hf_config(model, {"rope_type": "linear", "factor": float(factor)})
    return _compute_linear_scaling_rope_parameters(cfg)


def _compute_ntk(model: RopeModel, factor: float, seq_len: int) -> "tuple[torch.Tensor, float]":
    """Static NTK-aware scaling (bloc97, r/LocalLLaMA 2023): the base grows to b' = b·s^(d/(d−2)), which leaves
    the highest frequency unchanged and interpolates the lowest by s. transformers has no static NTK type, so it is
    written here. On a natively scaled model the same per-dimension factor s^(−2i/(d−2)) multiplies its own
    frequencies."""
    if model.native:
        inv, att = _native_base(model)
        return inv * _ntk_ratio(model, factor), att
    base = model.rope_theta * float(factor) ** (model.head_dim / (model.head_dim - 2))
    return _plain_inv_freq(model.head_dim, base), 1.0


def _compute_dynamic(model: RopeModel, factor: float, seq_len: int) -> "tuple[torch.Tensor, float]":
    """Dynamic NTK (emozilla, r/LocalLLaMA 2023): NTK-aware scaling whose scale follows the sequence length,
    α' = α·L/L₀ − (α − 1), b' = b·α'^(d/(d−2)); ``factor`` is α (1.0 by default), L = ``seq_len``. No change up to
    L₀. transformers' ``dynamic`` type, evaluated once at the request's final length; on a natively scaled model,
    NTK's per-dimension factor for that scale applied to its own frequencies."""
    if model.native:
        inv, att = _native_base(model)
        scale = max(1.0, float(factor) * seq_len / model.trained_window - (float(factor) - 1.0))
        return inv * _ntk_ratio(model, scale), att
    from transformers.modeling_rope_utils import _compute_dynamic_ntk_parameters

    cfg = _hf_config(model, {"rope_type": "dynamic", "factor": float(factor)})
    return _compute_dynamic_ntk_parameters(cfg, seq_len=int(seq_len))


def _compute_yarn(model: RopeModel, factor: float, seq_len: int) -> "tuple[torch.Tensor, float]":
    """YaRN (Peng et al. 2023, "YaRN: Efficient Context Window Extension of LLMs"): NTK-by-parts, i.e.
    frequencies that rotate more than β_fast=32 times within L₀ are kept, those under β_slow=1 are divided by s,
    with a linear ramp in between; attention logits are scaled by (0.1·ln s + 1)², applied as that factor on cos
    and sin. transformers' ``yarn`` type. On a natively scaled model (whose frequencies need not be geometric) the
    ramp is taken over each frequency's rotations within L₀ directly, r = L₀·θ/2π, and the attention factors
    multiply (the checkpoint's own, e.g. Llama 3's 1.0 or a YaRN checkpoint's, times 0.1·ln s + 1)."""
    if model.native:
        import torch

        inv, att = _native_base(model)
        rotations = model.trained_window * inv / (2 * math.pi)
        keep = torch.clamp((rotations - 1.0) / (32.0 - 1.0), 0.0, 1.0)  # 1: rotates ≥ β_fast times, kept as is
        scale = float(factor)
        return inv / scale * (1 - keep) + inv * keep, att * (0.1 * math.log(scale) + 1.0 if scale > 1 else 1.0)
    from transformers.modeling_rope_utils import _compute_yarn_parameters

    cfg = _hf_config(
        model,
        {"rope_type": "yarn", "factor": float(factor), "original_max_position_embeddings": model.trained_window},
    )
    return _compute_yarn_parameters(cfg)


# name → function. Keep the signature; add a docstring with the formula and its source.
ROPE_METHODS: Registry[RopeFn] = Registry("rope method")
ROPE_METHODS.register("none", _compute_none, aliases=("plain", "default", "native"))
ROPE_METHODS.register("linear", _compute_linear, aliases=("pi",))
ROPE_METHODS.register("ntk", _compute_ntk, aliases=("ntk-aware",))
ROPE_METHODS.register("dynamic", _compute_dynamic, aliases=("dynamic-ntk",))
ROPE_METHODS.register("yarn", _compute_yarn)

# Chosen by benchmarks/long_context.py (benchmarks/RESULTS.md): at 16 k tokens YaRN's perplexity was 19.8 against 21.6
# for dynamic NTK and 567.6 for plain RoPE, and at 32 k 27 against 48. docqa sizes YaRN's factor per request, so it
# is as "dynamic" as dynamic NTK: the scale follows each request's length.
DEFAULT_ROPE = "yarn"


def plan_for(method: str, model: RopeModel, seq_len: int, factor: float | None = None) -> RopePlan:
    """The rope plan for a request of ``seq_len`` tokens; see :func:`_plan_for`. On a hybrid-attention model the plan
    also says, per layer type, what is stretched and what is not (:attr:`RopePlan.layers`)."""
    method, every_layer = parse_method(method)
    if model.only_sliding:
        # No layer ever attends further back than its window: positions never differ by more than it, so every request
        # runs on the model's own rope, whatever its length (a stretch would only blur what the window sees).
        plan = _plan_for("none", model, seq_len)
    else:
        plan = _plan_for(method, model, seq_len, factor)
    if not (model.layer_type or model.fixed or model.sliding_window):
        return plan
    plan = replace(plan, every_layer=every_layer and bool(model.fixed) and plan.factor != 1.0)
    return replace(plan, layers=_layer_notes(plan, model))


def parse_method(spec: str) -> tuple[str, bool]:
    """``yarn`` → ("yarn", False); ``yarn@all`` → ("yarn", True): on a model with one rope per layer type (Gemma 3),
    stretch every layer type's rope instead of only the full layers' (a comparison: sliding layers never attend past
    their window, so stretching them only blurs what they see). Unknown names are refused by the registry."""
    name, sep, scope = str(spec).partition("@")
    if sep and scope.strip().lower() != "all":
        raise ConfigError(f"Unknown rope scope '{scope}' in '{spec}'. Use METHOD (the layers that attend past the "
                          f"window) or METHOD@all (every layer type), e.g. yarn@all.")
    return ROPE_METHODS.canonical(name.strip()), bool(sep)


def canonical_method(spec: str) -> str:
    """The canonical spelling of a method spec (``YaRN@ALL`` → ``yarn@all``)."""
    name, every = parse_method(spec)
    return f"{name}@all" if every else name


def _layer_notes(plan: RopePlan, model: RopeModel) -> tuple[tuple[str, str, float, float, str], ...]:
    w = model.sliding_window
    if model.only_sliding:
        note = f"every layer slides ({w:,} tokens): no position difference passes it, nothing is stretched"
        return (("all", plan.method, plan.factor, plan.base, note),)
    if not model.layer_type:  # one rope for every layer (gpt-oss, Qwen2 with sliding layers)
        note = (f"one rope for every layer: the sliding layers ({w:,} tokens) rotate with it too" if w else
                "one rope for every layer")
        return (("all", plan.method, plan.factor, plan.base, note),)
    rows = [(model.layer_type, plan.method, plan.factor, plan.base,
             "attends to every position: stretched past the trained window" if plan.factor != 1.0 else
             "attends to every position; within the trained window its own rope")]
    for name, own in model.fixed:
        if plan.every_layer:
            rows.append((name, plan.method, plan.factor, own.rope_theta,
                         f"attends to its last {w:,} tokens only, stretched anyway (METHOD@all)"))
            continue
        rows.append((name, "native" if own.native else "none", 1.0, own.rope_theta,
                     f"attends to its last {w:,} tokens only: its own rope, never stretched" if w else
                     "its own rope, never stretched"))
    return tuple(rows)


def _plan_for(method: str, model: RopeModel, seq_len: int, factor: float | None = None) -> RopePlan:
    """The rope plan for a request of ``seq_len`` tokens (prompt + answer budget).

    Within the trained window and with no explicit ``factor``, every method is plain RoPE — or, on a checkpoint that
    ships scaled rope, its own rope unchanged, reported as method ``native``. Past it the scale defaults to
    ``seq_len / L₀`` (for dynamic: α = 1, so the same ratio). An explicit ``factor`` is used as given (for dynamic it
    is α). On a natively scaled model the attention factor includes the checkpoint's own.
    """
    name = ROPE_METHODS.canonical(method)
    if factor is not None and factor < 1.0:
        raise ConfigError(f"--rope-factor must be ≥ 1.0, got {factor}. Use 1.0 for plain RoPE.")
    ratio = seq_len / model.trained_window
    if name == "none" or (factor is None and ratio <= 1.0):
        if model.native:
            return RopePlan("native", 1.0, model.rope_theta, native_inv_freq(model, seq_len)[1], seq_len)
        return RopePlan("none" if name == "none" else name, 1.0, model.rope_theta, 1.0, seq_len)
    if name == "dynamic":
        alpha = factor if factor is not None else 1.0
        scale = max(1.0, alpha * ratio - (alpha - 1.0))
        base = model.rope_theta * scale ** (model.head_dim / (model.head_dim - 2))
        return RopePlan(name, scale, base, 1.0, seq_len)
    scale = factor if factor is not None else ratio
    if scale < ratio * (1 - 1e-9):
        # An explicit factor s stretches the window to s·L₀; positions past it are as far out of the trained range as
        # plain RoPE's past L₀ (SmolLM2's perplexity 575 at 2× its window): refused, not silently extrapolated.
        need = math.ceil(ratio * 100) / 100
        raise ConfigError(f"--rope-factor {factor:g} stretches the {model.trained_window:,}-token window to "
                          f"{int(scale * model.trained_window):,} tokens; this request needs {seq_len:,}. Pass "
                          f"--rope-factor {need:g} or more, or leave it unset (sized per request), or lower "
                          f"--max-context.")
    base = model.rope_theta * scale ** (model.head_dim / (model.head_dim - 2)) if name == "ntk" else model.rope_theta
    attention = 0.1 * math.log(scale) + 1.0 if name == "yarn" and scale > 1.0 else 1.0
    if model.native:
        attention *= _native_base(model)[1]
    return RopePlan(name, scale, base, attention, seq_len)


def inv_freq_for(plan: RopePlan, model: RopeModel) -> "tuple[torch.Tensor, float]":
    """The inverse frequencies and attention factor that realise ``plan`` on ``model``."""
    if plan.factor == 1.0:
        return native_inv_freq(model, plan.seq_len)
    fn = ROPE_METHODS.get(plan.method)
    if plan.method == "dynamic":
        # Recover α from the effective scale so the function reproduces exactly this plan at plan.seq_len.
        ratio = plan.seq_len / model.trained_window
        alpha = (plan.factor - 1.0) / (ratio - 1.0) if ratio > 1.0 else 1.0
        return fn(model, alpha, plan.seq_len)
    return fn(model, plan.factor, plan.seq_len)
