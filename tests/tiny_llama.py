"""A tiny random Llama with a word-level tokenizer, saved as an ordinary HF folder, for generator tests.

Random weights say nothing about answers; they exercise the exact code paths of the real model (rotary embedding,
KV cache, chunked prefill) in milliseconds.
"""

from __future__ import annotations

from pathlib import Path

WORDS = [f"w{i}" for i in range(240)]


def build(folder: Path, window: int = 64) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

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
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=window,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, eos_token_id=2,
                         bos_token_id=1, pad_token_id=2, tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    # Random init is close to uniform logits; scale up so that different rotations give visibly different logits.
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2.0)
    model.save_pretrained(str(folder))
    fast.save_pretrained(str(folder))
    return folder
