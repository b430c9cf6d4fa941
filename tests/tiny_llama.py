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
}


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
    fast.chat_template = (
        "{% for m in messages %}<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|> {% endfor %}"
        "{% if add_generation_prompt %}<|im_start|> assistant {% endif %}"
    )
    torch.manual_seed(0)
    cls, extra = ARCHS[arch]
    params = dict(rope or {"rope_type": "default", "rope_theta": 10000.0})
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
