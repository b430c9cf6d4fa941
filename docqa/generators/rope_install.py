"""Installing docqa's rope plans in a transformers model: finding its rotary modules and writing each plan's
frequencies into them.

transformers computes cos/sin from a rotary module's ``inv_freq`` buffer at every forward. docqa fixes one plan per
request (:mod:`docqa.rope`) and writes its frequencies into that buffer, telling the module its rope is 'default' so
that transformers' dynamic/longrope update never recomputes them mid-request. A model with one rope per layer type
(Gemma 3) keeps one buffer per type (``full_attention_inv_freq``, ``sliding_attention_inv_freq``) in one module; each
gets its own layer type's frequencies (:meth:`docqa.rope.RopeModel.layer_frequencies`).
"""

from __future__ import annotations

from ..errors import ModelLoadError
from ..rope import RopeModel, RopePlan


def find_rotaries(models: list, rope_model: RopeModel, spec: str) -> list:
    """Every rotary module of ``models`` (one per model in current transformers; older layouts keep one per layer),
    checked to rotate as many dimensions as the config says, and set to rope_type 'default'."""
    attr = f"{rope_model.layer_type}_inv_freq" if rope_model.layer_type else "inv_freq"
    found = [m for model in models for name, m in model.named_modules()
             if name.endswith("rotary_emb") and hasattr(m, attr)]
    if not found:
        raise ModelLoadError(f"Model '{spec}' has no rotary embedding module; docqa needs a RoPE model.")
    want = rope_model.head_dim // 2
    types = [rope_model.layer_type, *(name for name, _ in rope_model.fixed)]
    for m in found:
        if getattr(m, attr).shape[-1] != want:
            got = 2 * getattr(m, attr).shape[-1]
            raise ModelLoadError(f"Model '{spec}' rotates {got} dimensions per head where its config says "
                                 f"{2 * want}; docqa cannot install rope plans on it.")
        m.rope_type = {t: "default" for t in types} if rope_model.layer_type else "default"
    return found


def install(rotaries: list, rope_model: RopeModel, plan: RopePlan) -> None:
    """Write ``plan``'s frequencies and attention factor, per layer type, into every rotary module."""
    for layer_type, (inv_freq, attention) in rope_model.layer_frequencies(plan).items():
        prefix = f"{layer_type}_" if layer_type else ""
        for rotary in rotaries:
            buffer = getattr(rotary, f"{prefix}inv_freq")
            buffer.copy_(inv_freq.to(buffer.device))
            setattr(rotary, f"{prefix}attention_scaling", attention)
