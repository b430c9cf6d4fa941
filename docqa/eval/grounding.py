"""Groundedness: how much of an answer the text its strategy gave the model supports (RAGAS's faithfulness, by
sentence), measured without a reference, so it also says something on questions no one has answered.

Each answer is split into sentences (its claims); a sentence is *supported* when the context holds it. The score is
the share of supported sentences (None for an empty answer or an error). Two ways to decide, in the ``GROUNDERS``
registry, one signature — ``(sentences, context) -> [(supported, support), …]``:

- ``overlap`` (default; no model, no service): the context is cut into windows of three consecutive sentences; a
  sentence is supported when one window holds at least :data:`MIN_SUPPORT` of its content words (stopwords left out)
  and every number it states. Numbers are what a financial answer gets wrong, and a number that appears nowhere in
  the context is the clearest sign of an answer made up.
- ``judge``: a language model (the eval's reader, or another ``--judge-model``) reads each sentence against the three
  windows that ``overlap`` ranks best and answers "yes" or "no"; its prompt and model are recorded with the run.

The context is what the strategy read: rag's retrieved chunks; for long-context and summarize, every chunk of the
files it drew on (summarize's reduce step reads notes, but a note is only as good as the text it came from).
How well each agrees with the reference-based score is measured in ``benchmarks/grounding.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from ..registry import Registry
from .metrics import tokens as word_tokens
from .retrieval import STOPWORDS

MIN_SUPPORT = 0.6
WINDOW = 3  # context sentences per window
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])|\n+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")

Grounder = Callable[[list[str], list[str]], list[tuple[bool, float]]]
GROUNDERS: Registry[Grounder] = Registry("grounding method")

JUDGE_PROMPT = ("Context:\n{context}\n\nStatement: {sentence}\n\nIs the statement supported by the context? Answer "
                "with one word, yes or no.")


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` that say something (at least one content word or number)."""
    parts = [p.strip() for p in _SENTENCE.split(text or "")]
    return [p for p in parts if _content(p) or _NUMBER.search(p)]


def _content(text: str) -> set[str]:
    return {w for w in word_tokens(text) if w not in STOPWORDS}


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


def windows(context: Sequence[str]) -> list[str]:
    """The context as overlapping windows of :data:`WINDOW` sentences (each passage on its own)."""
    out = []
    for passage in context:
        sents = [s for s in _SENTENCE.split(passage or "") if s.strip()]
        if len(sents) <= WINDOW:
            out.append(" ".join(sents))
            continue
        out += [" ".join(sents[i: i + WINDOW]) for i in range(0, len(sents) - WINDOW + 1)]
    return [w for w in out if w]


def _prepared(context: Sequence[str]) -> tuple[list[str], list[tuple[set[str], set[str]]]]:
    """The context's windows, and each one's content words and numbers (computed once per answer)."""
    wins = windows(context)
    return wins, [(_content(w), _numbers(w)) for w in wins]


def ranked_windows(sentence: str, wins: list[str], prepared: list[tuple[set[str], set[str]]] | None = None
                   ) -> list[tuple[float, bool, int]]:
    """(support, numbers all present, window index) for every window, best first."""
    content, numbers = _content(sentence), _numbers(sentence)
    prepared = prepared or [(_content(w), _numbers(w)) for w in wins]
    scored = []
    for i, (words, nums) in enumerate(prepared):
        support = len(content & words) / len(content) if content else (1.0 if numbers else 0.0)
        scored.append((support, numbers <= nums, i))
    scored.sort(key=lambda t: (t[1], t[0]), reverse=True)
    return scored


def overlap(sentences: list[str], context: list[str]) -> list[tuple[bool, float]]:
    """Supported when one window of three context sentences holds ≥ 60 % of the sentence's content words and every
    number it states (no model)."""
    wins, prepared = _prepared(context)
    out = []
    for s in sentences:
        best = ranked_windows(s, wins, prepared)
        if not best:
            out.append((False, 0.0))
            continue
        support, numbers_ok, _ = best[0]
        out.append((numbers_ok and support >= MIN_SUPPORT, support))
    return out


GROUNDERS.register("overlap", overlap)

# Numbers a document may write out where an answer writes digits ("up to three days" → "3 days").
_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}
_NUMBER_WORDS.update({"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80",
                      "ninety": "90", "hundred": "100", "thousand": "1000", "dozen": "12"})


def _figure(number: str) -> str:
    """A number as compared: no thousands commas, no trailing decimal zeros ("1,500" = "1500", "3.0" = "3")."""
    n = number.replace(",", "")
    return n.rstrip("0").rstrip(".") if "." in n else n


# A figure as a claim: digits not glued to a letter ("Q4", "FY2019" and "H1" are labels, whatever they count).
_FIGURE = re.compile(r"(?<!\w)\d+(?:[.,]\d+)*")


def evidence(answer: str, passages: Sequence[str], limit: int = 3, question: str = ""
             ) -> tuple[list[tuple[int, float]], list[str]]:
    """Where an answer is found in the text its strategy read, without a model: for each of its sentences, the
    passage holding the window :func:`overlap` ranks best for it, with the share of the sentence's content words that
    window holds — one entry a passage (its best share), best first, at most ``limit`` — and the figures the answer
    states that neither a passage nor the ``question`` holds, in the answer's order. A figure nowhere in what the
    reader was given is the clearest sign of an answer made up or computed (module docstring); the share of words is
    a pointer to where to check, not a verdict (an answer that restates the question scores low wherever it is
    right)."""
    owners: list[int] = []
    wins: list[str] = []
    for i, passage in enumerate(passages):
        ws = windows([passage])
        wins += ws
        owners += [i] * len(ws)
    prepared = [(_content(w), _numbers(w)) for w in wins]
    best: dict[int, float] = {}
    for sentence in split_sentences(answer):
        ranked = ranked_windows(sentence, wins, prepared)
        if ranked and ranked[0][0] > 0:
            share, _, w = ranked[0]
            best[owners[w]] = max(best.get(owners[w], 0.0), share)
    ranked_passages = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return [(i, round(share, 3)) for i, share in ranked_passages], unsupported_figures(answer, passages, question)


def unsupported_figures(answer: str, passages: Sequence[str], question: str = "") -> list[str]:
    """The figures ``answer`` states that neither ``passages`` nor ``question`` holds, as the answer writes them, in
    its order (:func:`evidence`)."""
    given = [*passages, question]
    held = {_figure(n) for text in given for n in _NUMBER.findall(text)}
    held |= {_NUMBER_WORDS[w] for text in given for w in re.findall(r"[a-z]+", text.lower()) if w in _NUMBER_WORDS}
    return [n for n in dict.fromkeys(_FIGURE.findall(answer)) if _figure(n) not in held]


def make_judge(generator) -> Grounder:
    """A grounder that asks ``generator`` (a docqa generator) whether each sentence is supported by the three
    windows :func:`overlap` ranks best for it."""

    def judge(sentences: list[str], context: list[str]) -> list[tuple[bool, float]]:
        """Supported when the judge model answers yes for the sentence against its three best context windows."""
        wins, prepared = _prepared(context)
        out = []
        for s in sentences:
            best = [wins[i] for _, _, i in ranked_windows(s, wins, prepared)[:3]]
            prompt = generator.chat("You check statements against a text.",
                                    JUDGE_PROMPT.format(context="\n".join(best), sentence=s))
            said = generator.generate(prompt, 3).text.strip().lower()
            yes = said.startswith("yes")
            out.append((yes, 1.0 if yes else 0.0))
        return out

    return judge


def groundedness(answer: str, context: list[str], method: Grounder | str = "overlap") -> dict:
    """{"score": share of supported sentences or None, "sentences": [{text, supported, support}]}."""
    fn = GROUNDERS.get(method) if isinstance(method, str) else method
    sents = split_sentences(answer)
    if not sents:
        return {"score": None, "sentences": []}
    verdicts = fn(sents, context)
    return {"score": sum(1 for ok, _ in verdicts if ok) / len(sents),
            "sentences": [{"text": s, "supported": ok, "support": round(v, 3)}
                          for s, (ok, v) in zip(sents, verdicts, strict=True)]}


def add_groundedness(records: list[dict], chunks_for, method: Grounder | str = "overlap") -> None:
    """``metrics["groundedness"]`` and ``grounding`` (per sentence) on every answered record; the context is the
    record's retrieved chunks, else every chunk of the files it drew on (``chunks_for(record)`` gives the index's
    ``(id, file, text)`` chunks). With them ``missing_figures``, the figures the answer states that neither that
    context nor the question holds (:func:`unsupported_figures`), and ``metrics["unsupported_figures"]``, 1 where
    there is one (so a row's mean is the share of its answers that state a figure from nowhere)."""
    for r in records:
        if r.get("error") or not (r.get("answer") or "").strip():
            r.setdefault("metrics", {})["groundedness"] = None
            r["metrics"]["unsupported_figures"] = None
            continue
        chunks = chunks_for(r)
        retrieved = set(r.get("retrieved") or [])
        if retrieved and r.get("read", "chunks") == "chunks":  # older records: retrieved chunks were read
            context = [text for cid, _, text in chunks if cid in retrieved]
        else:
            files = set(r.get("sources") or [])
            context = [text for _, f, text in chunks if f in files]
        g = groundedness(r["answer"], context, method)
        r.setdefault("metrics", {})["groundedness"] = g["score"]
        r["grounding"] = g["sentences"]
        r["missing_figures"] = unsupported_figures(r["answer"], context, r.get("question") or "")
        r["metrics"]["unsupported_figures"] = float(bool(r["missing_figures"]))
