"""A tiny random Llama with a word-level tokenizer, saved as an ordinary HF folder, for generator tests.

Random weights say nothing about answers; they exercise the exact code paths of the real model (rotary embedding,
KV cache, chunked prefill) in milliseconds.
"""

from __future__ import annotations

import os
from pathlib import Path

# The generator tests run on the GPU machine too: DOCQA_TEST_DEVICE=cuda puts their models there, in fp32 so that the
# equalities they assert (≤ 1e-4) are about docqa's code, not bf16 rounding. Unset (CPU, CI): as always.
DEVICE = os.environ.get("DOCQA_TEST_DEVICE", "cpu")
DTYPE = "float32" if DEVICE != "cpu" else "auto"

WORDS = [f"w{i}" for i in range(240)]


# Architectures the rope tests build: (config class, extra config fields). Phi, StableLM and GPT-NeoX rotate part of
# each head; Phi-3 carries longrope; Qwen2 has biases on q/k/v.
ARCHS = {
    "llama": ("LlamaConfig", {}),
    "qwen2": ("Qwen2Config", {}),
    "mistral": ("MistralConfig", {"sliding_window": None}),
    "phi3": ("Phi3Config", {}),
    "phi": ("PhiConfig", {"partial_rotary_factor": 0.5}),
    "stablelm": ("StableLmConfig", {"partial_rotary_factor": 0.25, "num_attention_heads": 2}),
    "gpt_neox": ("GPTNeoXConfig", {"partial_rotary_factor": 0.25, "num_attention_heads": 2}),
    # Hybrid attention (sliding windows of 16 tokens in a 64-token window). Gemma 3: one rope per layer type, two
    # sliding layers to one full (the real ones have five to one); Mistral: every layer slides; Qwen2 with
    # use_sliding_window: the layers from max_window_layers on slide; gpt-oss: sliding and full layers alternate under
    # one rope (with its attention sinks and experts).
    "gemma3": ("Gemma3TextConfig", {"num_hidden_layers": 3, "head_dim": 16, "sliding_window": 16,
                                    "layer_types": ["sliding_attention", "sliding_attention", "full_attention"],
                                    "query_pre_attn_scalar": 16}),
    "mistral-sw": ("MistralConfig", {"sliding_window": 16}),
    "qwen2-sw": ("Qwen2Config", {"use_sliding_window": True, "sliding_window": 16, "max_window_layers": 1}),
    "gpt_oss": ("GptOssConfig", {"sliding_window": 16, "head_dim": 16, "num_local_experts": 2,
                                 "num_experts_per_tok": 1, "layer_types": ["sliding_attention", "full_attention"]}),
}

# Per-layer-type rope blocks for the architectures that keep one (Gemma 3: local layers base 10 000, global 1e6).
PER_TYPE = {"gemma3": lambda rope: {"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                                    "full_attention": dict(rope or {"rope_type": "default", "rope_theta": 1e6})}}


def build(folder: Path, window: int = 64, arch: str = "llama", rope: dict | None = None) -> Path:
    """A tiny random model of ``arch`` with a word-level tokenizer; ``rope`` replaces its rope parameters (plain RoPE
    with base 10 000 by default), e.g. a llama3 / yarn / longrope block as the real checkpoints ship."""
    import torch
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    specials = ["<unk>", "<|im_start|>", "<|im_end|>"]
    vocab = {t: i for i, t in enumerate(specials + WORDS + ["system", "user", "assistant", ":", "?", "."])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<|im_start|>",
                                   eos_token="<|im_end|>", pad_token="<|im_end|>")
    cls, extra = ARCHS[arch]
    if cls == "Qwen2Config":
        # transformers 5 loads a qwen2 folder's tokenizer as Qwen2Tokenizer (byte-level BPE) whatever the folder says,
        # and that class reads a word-level vocabulary as nothing: give it byte-level pieces (no merges), specials first
        from transformers.convert_slow_tokenizer import bytes_to_unicode
        from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

        vocab = {t: i for i, t in enumerate(specials + list(bytes_to_unicode().values()))}
        fast = Qwen2Tokenizer(vocab=vocab, merges=[], unk_token="<unk>", bos_token="<|im_start|>",
                              eos_token="<|im_end|>", pad_token="<|im_end|>")
    fast.chat_template = (
        "{% for m in messages %}<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|> {% endfor %}"
        "{% if add_generation_prompt %}<|im_start|> assistant {% endif %}"
    )
    torch.manual_seed(0)
    params = dict(rope or {"rope_type": "default", "rope_theta": 10000.0})
    if arch in PER_TYPE:
        params = PER_TYPE[arch](rope)
    if "partial_rotary_factor" in extra:
        params["partial_rotary_factor"] = extra["partial_rotary_factor"]
    fields = dict(vocab_size=len(vocab), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=window, rope_parameters=params,
                  eos_token_id=2, bos_token_id=1, pad_token_id=2, tie_word_embeddings=True)
    config = getattr(transformers, cls)(**{**fields, **extra})
    model = AutoModelForCausalLM.from_config(config)
    # Random init is close to uniform logits; scale up so that different rotations give visibly different logits.
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2.0)
    model.save_pretrained(str(folder))
    fast.save_pretrained(str(folder))
    return folder
