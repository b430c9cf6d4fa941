"""The summarize chains built on llama-index's response synthesizers, with docqa's generator as the LLM.

``li-tree`` is llama-index's ``TreeSummarize`` and ``li-refine`` its ``CompactAndRefine`` (what
``response_mode="compact"`` gives), both with their default prompt templates. They exist beside docqa's own chains
(map-reduce, refine, tree) so the two designs can be compared on the same questions with the same model, which is
how docqa chose its default; see the numbers in :mod:`docqa.strategies.summarize`.

Every call still goes through :meth:`ChainRun.call`, so the window check, the ``max_calls`` budget and the per-stage
accounting are the same as for docqa's chains. llama-index counts tokens with docqa's tokenizer (a ``PromptHelper``
built here, not the global ``Settings``), and its window is the generator's less the chat template that docqa wraps
around every prompt. Chunk overlap is off: docqa's chunks already overlap at ingest, and an overlap in the repacking
would show the model some text twice.
"""

from __future__ import annotations

import re
from typing import Any

from .. import prompts
from ..records import Chunk
from .summarize import ChainRun, _chunk_blocks, _relevant

_FILE = re.compile(r"(?:^|\n)\[([^\]\n]+)\] ")
_PADDING = 8  # tokens of slack per prompt, as in docqa's packer: merges at the seams of joined text


def _one_paragraph(text: str) -> str:
    """The final answer with its line breaks folded. Every call stops at a blank line (a bound on rambling), but not
    at the first line break as docqa's answers do: SmolLM2 often answers llama-index's refine prompt with "The
    original answer is:" and the answer on the next line, which docqa's one-line rule cut off (L-Eval F1 5.7)."""
    return " ".join(text.split())


def _make_llm(run: ChainRun):
    """A llama-index ``CustomLLM`` whose every completion is one counted :meth:`ChainRun.call`."""
    from llama_index.core.llms import CompletionResponse, CustomLLM, LLMMetadata
    from llama_index.core.llms.callbacks import llm_completion_callback
    from pydantic import PrivateAttr

    overhead = len(run.gen.encode(run.gen.chat(prompts.SYSTEM, "")))

    class DocqaLLM(CustomLLM):
        _stage: str = PrivateAttr(default="call")
        _depth: int = PrivateAttr(default=0)
        _used: set = PrivateAttr(default_factory=set)

        @property
        def metadata(self) -> LLMMetadata:
            return LLMMetadata(context_window=run.window - overhead - _PADDING, num_output=run.cfg.max_new_tokens,
                               is_chat_model=False, model_name="docqa")

        def predict(self, prompt: Any, **prompt_args: Any) -> str:
            # Seeing the template's arguments here (not only the formatted text) tells which text is material, so
            # the sources of an answer are the files of the material that produced a relevant output.
            out = super().predict(prompt, **prompt_args)
            material = prompt_args.get("context_str") or prompt_args.get("context_msg") or ""
            changed = out.strip() != (prompt_args.get("existing_answer") or "").strip()
            if material and _relevant(out) and changed and self._stage != "merge":
                self._used.update(_FILE.findall(material))
            return out

        @llm_completion_callback()
        def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
            return CompletionResponse(text=run.call(self._stage, prompt, stop=prompts.NOTES_STOP))

        @llm_completion_callback()
        def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any):
            yield self.complete(prompt, formatted=formatted, **kwargs)

    return DocqaLLM()


def _prompt_helper(run: ChainRun, llm):
    from llama_index.core.indices.prompt_helper import PromptHelper

    return PromptHelper.from_llm_metadata(llm.metadata, chunk_overlap_ratio=0.0,
                                          tokenizer=lambda text: run.gen.encode(text))


def _planned(run: ChainRun, chunks: list[Chunk]) -> int:
    """First-pass calls, estimated for progress reports: llama-index repacks the text itself, out of docqa's sight."""
    return max(1, -(-sum(c.tokens for c in chunks) // max(1, run.window - 512)))


def li_tree(run: ChainRun, chunks: list[Chunk]) -> tuple[str, set[str]]:
    """llama-index TreeSummarize: the chunks are joined and re-split to fill the window, each piece answers the
    question with llama-index's summary prompt, and the answers are summarized again, recursively, until one call
    holds them all. Unlike docqa's tree it has no drop step: "not in this context" answers are merged too."""
    from llama_index.core.response_synthesizers import TreeSummarize

    llm = _make_llm(run)

    class Tree(TreeSummarize):
        def get_response(self, query_str: str, text_chunks, **kw: Any):  # one level per recursion
            llm._depth += 1
            llm._stage = "leaf" if llm._depth == 1 else "merge"
            return super().get_response(query_str, text_chunks, **kw)

    synth = Tree(llm=llm, prompt_helper=_prompt_helper(run, llm))
    run.planned = _planned(run, chunks)
    text = str(synth.get_response(run.question, _chunk_blocks(chunks)))
    return _one_paragraph(text) or prompts.NO_ANSWER, set(llm._used)


def li_refine(run: ChainRun, chunks: list[Chunk]) -> tuple[str, set[str]]:
    """llama-index CompactAndRefine: the chunks are repacked to fill the window, the first piece answers the
    question and each next piece refines that answer with llama-index's refine prompt. Plain ``Refine`` would make
    one call per docqa chunk (~190 calls on examples/), so the compact variant is the fair comparison."""
    from llama_index.core.response_synthesizers import CompactAndRefine

    llm = _make_llm(run)
    llm._stage = "refine"
    synth = CompactAndRefine(llm=llm, prompt_helper=_prompt_helper(run, llm))
    run.planned = _planned(run, chunks)
    text = str(synth.get_response(run.question, _chunk_blocks(chunks)))
    return _one_paragraph(text) or prompts.NO_ANSWER, set(llm._used)
