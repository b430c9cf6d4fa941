"""Small, deterministic stand-ins for the embedder and generator, registered through the real registries.

They exist only in tests: the fake embedder hashes words into a vector (so retrieval still prefers passages that
share words with the question), and the fake generator answers with the context sentence that shares the most words
with the question, recording every prompt it receives.
"""

from __future__ import annotations

import hashlib
import json
import re
import time

import numpy as np

from docqa.generators import Generation, PrefixState
from docqa.generators.streaming import AnswerStream
from docqa.rope import RopeModel, RopePlan, plan_for

# A token is a word or a punctuation mark with the whitespace before it, so decoding is exact concatenation.
WORD = re.compile(r"\s*(?:[A-Za-z0-9]+|[^\sA-Za-z0-9])|\s+$")


class HashEmbedder:
    """Bag of hashed lower-case words, L2-normalised."""

    def __init__(self, spec: str, dim: int = 64, fail_after: int | None = None):
        self.spec, self.dim, self.max_tokens = spec, dim, 256
        self.fail_after = fail_after  # raise after embedding this many texts (to test atomic ingest)
        self.embedded = 0

    def embed(self, texts, *, progress=None, kind="document"):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            if self.fail_after is not None and self.embedded >= self.fail_after:
                raise RuntimeError("injected embedder failure")
            for w in re.findall(r"[a-z0-9]+", t.lower()):
                out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % self.dim] += 1.0
            self.embedded += 1
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        if progress:
            progress(len(texts))
        return out / norms

    def count_tokens(self, texts):
        return [len(WORD.findall(t)) for t in texts]


class ExtractiveGenerator:
    """Tokens are words and punctuation; the answer is the best-overlapping context sentence."""

    def __init__(self, spec: str, trained_window: int = 4096):
        self.spec, self.trained_window = spec, trained_window
        self.prompts: list[str] = []
        self.prefills = 0
        self.batches: list[int] = []  # sizes of generate_batch calls
        self.floors: list = []  # the floor of every generate call (generators/base.py Floor), None where none
        self.vocab: dict[str, int] = {}
        self.inverse: dict[int, str] = {}

    def rope_model(self) -> RopeModel:
        return RopeModel(64, 10000.0, self.trained_window)

    def encode(self, text: str) -> list[int]:
        ids = []
        for tok in WORD.findall(text):
            if tok not in self.vocab:
                self.vocab[tok] = len(self.vocab)
                self.inverse[self.vocab[tok]] = tok
            ids.append(self.vocab[tok])
        return ids

    def decode(self, ids):
        return "".join(self.inverse[i] for i in ids)

    def count_tokens(self, texts):
        return [len(WORD.findall(t)) for t in texts]

    def chat(self, system: str, user: str) -> str:
        return f"<system>{system}</system>\n<user>{user}</user>\n<assistant>"

    def _answer(self, prompt: str) -> str:
        body = re.sub(r"</?(system|user|assistant)>", " ", prompt)
        # docqa's prompts end with "Question: …"; llama-index's templates say "Query: …" or "query is as follows: …"
        # and may put the material after the question.
        marks = list(re.finditer(r"(Question:|Query:|query is as follows:)[ \t]*([^\n]*)", body))
        if not marks:
            return "I don't know."
        last = marks[-1]
        question = last.group(2)  # the question line only, not instructions after it
        context = body[:last.start()] if last.group(1) == "Question:" else body[:last.start()] + body[last.end():]
        context = context.split("Context:", 1)[-1]
        qwords = {w for w in re.findall(r"[a-z0-9]+", question.lower()) if len(w) > 3}
        best, score = "I don't know.", 0
        for sentence in re.split(r"(?<=[.!?])\s+|\n", context):
            s = len(qwords & set(re.findall(r"[a-z0-9]+", sentence.lower())))
            if s > score:
                best, score = sentence.strip(), s
        return best

    def generate(self, prompt, max_new_tokens=128, *, rope=None, prefix=None, progress=None, stop=(), score=None,
                 on_text=None, floor=None):
        self.floors.append(floor)  # recorded for tests of who asks for one; the fake's answers do not change
        text = prompt if isinstance(prompt, str) else self.decode(prompt)
        if prefix is not None:
            text = prefix.meta["text"] + text
        self.prompts.append(text)
        t0 = time.perf_counter()
        answer = self._answer(text)
        answer_ids = self.encode(answer)[:max_new_tokens]
        n = len(self.encode(text))
        # The fake's "probability" of a text: near 1 when it is what the fake would answer, else small.
        score_lp = (-0.05 if answer.strip() == score.strip() else -6.0) if score else None
        shown = AnswerStream(on_text, stop)  # the answer as a real backend streams it: token by token
        for i in range(1, len(answer_ids) + 1):
            shown.update(self.decode(answer_ids[:i]))
        shown.done(self.decode(answer_ids))
        return Generation(self.decode(answer_ids), n, len(answer_ids), 0.0, time.perf_counter() - t0, 0.0,
                          "eos", len(prefix.ids) if prefix else 0,
                          prefix.plan if prefix else (rope or plan_for("none", self.rope_model(), n)),
                          score_logprob=score_lp)

    def kv_bytes_per_token(self):
        return 1000  # a small model's worth, so that budget tests can fill a pool with a few prefixes

    def kv_bytes(self, tokens):
        return tokens * self.kv_bytes_per_token()

    def generate_batch(self, prompts, max_new_tokens=128, *, stop=(), slots=None, score=None, floors=None):
        self.batches.append(len(prompts))
        floors = floors or [None] * len(prompts)
        return [self.generate(p, max_new_tokens, stop=stop, score=score, floor=f) for p, f in zip(prompts, floors)]

    def prefill_prefix(self, ids, plan: RopePlan, progress=None) -> PrefixState:
        self.prefills += 1
        return PrefixState(list(ids), plan, cache=None, meta={"text": self.decode(ids)})

    def save_prefix(self, state, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(state.ids))

    def load_prefix(self, path, ids, plan):
        if not path.is_file() or json.loads(path.read_text()) != list(ids):
            return None
        return PrefixState(list(ids), plan, cache=None, meta={"text": self.decode(ids), "loaded_from": str(path)})


class CannedGenerator(ExtractiveGenerator):
    """Answers RAG prompts with a fixed text, and long-context prompts with 'from the whole corpus'."""

    canned = "I don't know."

    def _answer(self, prompt: str) -> str:
        return "from the whole corpus" if "=== Document:" in prompt else self.canned
