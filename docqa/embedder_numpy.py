"""A sentence-transformers BERT model (all-MiniLM-L6-v2 and its kind: BERT, mean pooling, normalised) run in numpy.

Why by hand, when sentence-transformers does it: a question's vector is one forward of ~20 tokens through a 22 M
parameter encoder (~0.01 s), but loading sentence-transformers to compute it costs ~3.5 s on 2 cores — importing it
pulls in torch, transformers and scikit-learn (5.1 s for ``import sentence_transformers`` alone in a cold process,
against 0.02 s for ``tokenizers`` and 0.1 s to read the weights here). That was a third of a whole one-question
``docqa ask`` (benchmarks/RESULTS.md, "A one-question `docqa ask` from 11 s to 6.8 s"). So queries go through this
module, and documents, which come by the thousand at ingest, through sentence-transformers (batched, bf16 where the
CPU wins).

The forward is the model's own arithmetic in float32: the same tokenizer (``tokenizer.json`` through ``tokenizers``),
the same truncation (``max_seq_length``), BERT's post-LN layers with exact-erf GELU, the mean over the attention mask
and L2 normalisation. Tests pin it to sentence-transformers in float32 (≤ 1e-5 per component). Only folders whose
modules are exactly that pipeline are run here (:func:`supported`); anything else — prompts, other pooling, another
architecture — stays on sentence-transformers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# The sentence-transformers modules this forward reproduces, in order, by class name (their module paths moved between
# sentence-transformers versions); Normalize is optional: docqa normalises every vector.
_PIPELINE = ("Transformer", "Pooling")
_NORMALIZE = "Normalize"
_BATCH = 32  # texts a forward: bounds the attention scores' memory (32 x heads x 256² floats, ~100 MB at most)


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def supported(folder: Path) -> str | None:
    """None when ``folder`` is a sentence-transformers model this module runs exactly; else why not (a short reason,
    for logs and tests)."""
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "no readable modules.json"
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        return "modules.json is not a list of modules"
    types = [str(m.get("type", "")) for m in modules]
    kinds = tuple(t.rpartition(".")[2] for t in types)
    if kinds not in (_PIPELINE, (*_PIPELINE, _NORMALIZE)) or modules[0].get("path", "") != "" or \
            not all(t.startswith("sentence_transformers.") for t in types):
        return f"modules {kinds} are not Transformer, mean Pooling (and Normalize)"
    pooling = _json(folder / modules[1].get("path", "") / "config.json")
    mode = pooling.get("pooling_mode")
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v is True]
    if not (mode == "mean" or (mode is None and modes == ["pooling_mode_mean_tokens"])):
        return f"pooling {mode or modes} is not the mean of the tokens"
    if pooling.get("include_prompt") is False:
        return "pooling leaves the prompt out"
    st_config = _json(folder / "config_sentence_transformers.json")
    if st_config.get("prompts") and any(st_config["prompts"].values()):
        return "the model has query / document prompts"
    config = _json(folder / "config.json")
    if config.get("model_type") != "bert" or config.get("position_embedding_type", "absolute") != "absolute" or \
            config.get("hidden_act") != "gelu":
        return f"{config.get('model_type')} / {config.get('hidden_act')} is not BERT with GELU"
    if _json(folder / "sentence_bert_config.json").get("do_lower_case"):
        return "sentence-transformers lower-cases its input itself"
    for name in ("model.safetensors", "tokenizer.json"):
        if not (folder / name).is_file():
            return f"no {name}"
    return None


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to within 1.5e-7 (Abramowitz & Stegun 7.1.26): numpy has none, and scipy's would be another import."""
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return s * (1.0 - poly * np.exp(-a * a))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = np.square(x - mean).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


class NumpyBert:
    """A supported sentence-transformers folder (:func:`supported`), loaded for :meth:`encode` in numpy."""

    def __init__(self, folder: Path):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        why = supported(folder)
        if why:
            raise ValueError(f"{folder} is not run in numpy: {why}")
        config = _json(folder / "config.json")
        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        try:
            weights = load_file(str(folder / "model.safetensors"))
        except Exception as e:  # noqa: BLE001 - safetensors' own errors do not name the file
            raise ValueError(f"model.safetensors: {e}") from e
        self.w = {k: v.astype(np.float32) for k, v in weights.items() if not k.endswith("position_ids")}
        if "embeddings.word_embeddings.weight" not in self.w:  # saved from BertModel's parent with a prefix
            self.w = {k.removeprefix("bert."): v for k, v in self.w.items()}
        positions = int(config.get("max_position_embeddings", 512))
        st_len = _json(folder / "sentence_bert_config.json").get("max_seq_length")
        tok_len = _json(folder / "tokenizer_config.json").get("model_max_length")
        # sentence-transformers truncates at its max_seq_length, itself capped by the tokenizer's and the positions'.
        self.max_tokens = min(int(n) for n in (st_len, tok_len, positions) if isinstance(n, int | float) and n > 0)
        try:
            self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as e:  # noqa: BLE001 - tokenizers' own errors do not name the file
            raise ValueError(f"tokenizer.json: {e}") from e
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_tokens)
        self._folder = folder
        self._counter = None  # an untruncated copy, read on first count (ingest counts; a question never does)

    @property
    def dim(self) -> int:
        return self.hidden

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens of each text with the special ones, untruncated (sentence-transformers' count)."""
        if self._counter is None:
            from tokenizers import Tokenizer

            self._counter = Tokenizer.from_file(str(self._folder / "tokenizer.json"))
            self._counter.no_padding()
            self._counter.no_truncation()
        return [len(e.ids) for e in self._counter.encode_batch(texts)]

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32 unit vectors, shortest-first batches of at most 32 to keep padding small."""
        out = np.zeros((len(texts), self.hidden), dtype=np.float32)
        encodings = self.tokenizer.encode_batch(texts) if texts else []
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), _BATCH):
            idx = order[start:start + _BATCH]
            out[idx] = self._forward([encodings[i] for i in idx])
        return out

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self.w[f"{name}.weight"].T + self.w[f"{name}.bias"]

    def _forward(self, encodings) -> np.ndarray:
        # At least one position: a text of no tokens (possible without special tokens) pools to a zero vector, as there.
        w, batch, n = self.w, len(encodings), max(1, *(len(e.ids) for e in encodings))
        ids = np.zeros((batch, n), dtype=np.int64)
        types = np.zeros((batch, n), dtype=np.int64)
        mask = np.zeros((batch, n), dtype=np.float32)
        for i, e in enumerate(encodings):
            ids[i, :len(e.ids)], types[i, :len(e.ids)], mask[i, :len(e.ids)] = e.ids, e.type_ids, e.attention_mask
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n][None] + \
            w["embeddings.token_type_embeddings.weight"][types]
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        head = self.hidden // self.heads
        # Padding gets the lowest float as its score, as transformers masks it: exp() of it is exactly 0.
        masked = (1.0 - mask)[:, None, None, :] * np.finfo(np.float32).min
        for layer in range(self.layers):
            p = f"encoder.layer.{layer}."
            q, k, v = (self._linear(x, f"{p}attention.self.{name}").reshape(batch, n, self.heads, head)
                       .transpose(0, 2, 1, 3) for name in ("query", "key", "value"))
            scores = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(head)) + masked
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            attended = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, n, self.hidden)
            x = _layer_norm(self._linear(attended, p + "attention.output.dense") + x,
                            w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"],
                            self.eps)
            inner = self._linear(x, p + "intermediate.dense")
            inner = 0.5 * inner * (1.0 + _erf(inner / np.float32(np.sqrt(2.0))))
            x = _layer_norm(self._linear(inner, p + "output.dense") + x, w[p + "output.LayerNorm.weight"],
                            w[p + "output.LayerNorm.bias"], self.eps)
        pooled = (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        return (pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)).astype(np.float32)
