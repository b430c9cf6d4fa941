"""A tiny random sentence-transformers model (BERT + mean pooling) saved as a local folder, optionally with query /
document prompts as asymmetric models (e5, bge, nomic) ship them in config_sentence_transformers.json."""

from __future__ import annotations

from pathlib import Path

WORDS = [f"w{i}" for i in range(200)] + ["query", "passage", ":", "what", "is", "the", "cap", "hotel"]


def build(folder: Path, prompts: dict[str, str] | None = None) -> Path:
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as models
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers import models as tmodels
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {t: i for i, t in enumerate(specials + WORDS)}
    tok = Tokenizer(tmodels.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=64, max_position_embeddings=128))
    hf = folder / "hf"
    bert.save_pretrained(str(hf))
    fast.save_pretrained(str(hf))
    word = models.Transformer(str(hf), max_seq_length=64)
    pooling = models.Pooling(word.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[word, pooling], prompts=prompts or {}, device="cpu")
    model.save(str(folder / "st"))
    return folder / "st"
