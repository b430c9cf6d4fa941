"""Rerankers: reorder the fused candidates by reading each against the question. A name → class registry; each
class is built with ``(corpus, model)`` and called as ``rerank(query, [(chunk id, text)]) -> [score]`` (higher is
more relevant), one score per candidate in the order given.

- ``cross-encoder:NAME``: a sentence-transformers ``CrossEncoder`` the user has locally (a path, or a name in the
  Hugging Face cache; docqa never downloads one). No cross-encoder ships on PyPI, so none comes with docqa.
- ``reader``: the reader itself, as llama-index's ``LLMRerank`` does with text, but read from log-probabilities:
  log P("Yes") after "Does the passage answer the question?". One prefill per candidate: on a 2-core CPU with the
  1.5 B reader that is seconds per candidate, so keep ``--rerank-top-n`` small.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import ConfigError, ModelLoadError, first_line
from ..registry import Registry

_READER_SYSTEM = "You judge whether a passage helps answer a question. Reply with Yes or No."


class CrossEncoderReranker:
    """Any sentence-transformers ``CrossEncoder`` (e.g. a local copy of ms-marco-MiniLM-L-6-v2)."""

    def __init__(self, corpus, model: str | None):
        if not model:
            raise ConfigError("--rerank cross-encoder needs a model: --rerank cross-encoder:PATH_OR_NAME (a "
                              "sentence-transformers CrossEncoder available locally; none ships with docqa).")
        try:
            from sentence_transformers import CrossEncoder

            local = Path(model).expanduser()
            self.model = CrossEncoder(str(local) if local.exists() else model, local_files_only=True,
                                      trust_remote_code=False)
        except Exception as e:  # noqa: BLE001 - any loader failure is this name's problem, said in one line
            raise ModelLoadError(f"Cannot load the reranker '{model}' ({first_line(e, 140)}). Name a "
                                 f"sentence-transformers CrossEncoder present on this machine (a folder, or a name "
                                 f"in the Hugging Face cache); docqa does not download models.") from None

    def rerank(self, query: str, candidates: list[tuple[int, str]]) -> list[float]:
        if not candidates:
            return []
        return [float(s) for s in self.model.predict([(query, text) for _, text in candidates])]


class ReaderReranker:
    """The reader's own judgement: log P("Yes") that the passage answers the question."""

    def __init__(self, corpus, model: str | None):
        if model:
            raise ConfigError(f"--rerank reader uses the reader (--model); drop ':{model}'.")
        self.gen = corpus.generator()

    def rerank(self, query: str, candidates: list[tuple[int, str]]) -> list[float]:
        prompts = [self.gen.chat(_READER_SYSTEM, f"Passage:\n{text}\n\nQuestion: {query}\n\nDoes the passage "
                                                 f"contain the answer to the question? Answer Yes or No.")
                   for _, text in candidates]
        outs = self.gen.generate_batch(prompts, 1, score="Yes") if prompts else []
        if any(o.score_logprob is None for o in outs):
            raise ConfigError(f"--rerank reader needs log-probabilities, which this reader ({self.gen.spec}) does not "
                              f"give. Use --rerank cross-encoder:MODEL, or no reranker.")
        return [o.score_logprob if math.isfinite(o.score_logprob) else -1e9 for o in outs]


RERANKERS: Registry = Registry("reranker")
RERANKERS.register("cross-encoder", CrossEncoderReranker, aliases=("crossencoder",))
RERANKERS.register("reader", ReaderReranker, aliases=("llm",))


def parse(spec: str | None) -> tuple[str, str | None] | None:
    """``"cross-encoder:NAME"`` → ("cross-encoder", "NAME"); ``"reader"`` → ("reader", None); none → None."""
    if spec is None or spec.strip().lower() in ("", "none", "off"):
        return None
    name, _, model = spec.partition(":")
    return RERANKERS.canonical(name), (model.strip() or None)
