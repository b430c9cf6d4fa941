"""Shared pieces of the CLI: consoles, the error boundary, option types."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Annotated, Optional, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import DocQAError, one_line

out = Console()
err = Console(stderr=True)

F = TypeVar("F", bound=Callable)

MODEL_HELP = ("Generator: an embedded alias (docqa models), an HF id, a local folder or a .gguf file; backend:NAME "
              "picks a backend (llama.cpp, transformers, openai) \\[default: qwen2.5-coder-1.5b, or $DOCQA_MODEL].")

# Generator options shared by the commands that answer questions (ask, eval).
DeviceOpt = Annotated[Optional[str], typer.Option(
    help="cpu, cuda, cuda:N, or auto (spread the model over every GPU) \\[default: cuda when present].")]
AttnOpt = Annotated[Optional[str], typer.Option(
    help="Attention kernel: sdpa (default), flash_attention_2 (GPU, when installed) or eager.")]
DtypeOpt = Annotated[str, typer.Option(
    help="auto (bf16 on GPUs that have it, else fp16; on CPU bf16 prefill where a measured probe says bf16 wins, fp32 "
         "decoding), float32, bfloat16 or float16.")]
PrefillOpt = Annotated[Optional[str], typer.Option(
    help="llama.cpp models: who prefills prompts of 512+ tokens. auto (transformers in bf16 where this CPU's measured "
         "bf16 matmuls are fast, llama.cpp decoding from the cache it hands over), transformers or llama.cpp "
         "\\[default: $DOCQA_PREFILL, else auto].")]
BaseUrlOpt = Annotated[Optional[str], typer.Option(
    help="Served model (--model openai:NAME): the server's URL, e.g. http://127.0.0.1:8000/v1 \\[default: "
         "$DOCQA_BASE_URL].")]
ContextWindowOpt = Annotated[Optional[int], typer.Option(
    help="Served model: its window, where the server does not report one.")]
TokenizerOpt = Annotated[Optional[str], typer.Option(
    help="Served model: a local HF tokenizer, where the server has no tokenize endpoint or chat template.")]
FallbackOpt = Annotated[bool, typer.Option(
    help="summarize: when the chain finds nothing (\"I don't know.\"), answer with long-context if the documents fit "
         "one summary window (by default the model's trained window).")]
KVBudgetOpt = Annotated[Optional[str], typer.Option(
    help="Bytes of KV caches kept between questions (long-context / summarize prefixes), e.g. 4GiB \\[default: a "
         "quarter of free RAM on CPU, half the GPU's free memory on CUDA].")]
ThreadsOpt = Annotated[Optional[int], typer.Option(
    help="CPU threads for torch \\[default: $DOCQA_THREADS, else the cores free of other load].")]
LengthFloorOpt = Annotated[float, typer.Option(
    help="With a length hint of N words, the answer does not end before this share of N words (an answer that "
         "declines may; in-process models); 0: off.")]
NoRepeatOpt = Annotated[Optional[int], typer.Option(
    help="Never repeat an n-gram of this many tokens within an answer (0: off; in-process models) \\[default: the "
         "model's own, measured: 0 for qwen2.5-coder-1.5b, 4 for other models].")]
TimeoutOpt = Annotated[float, typer.Option(help="Served model: seconds per request.")]
RetrieverOpt = Annotated[Optional[str], typer.Option(
    help="rag, auto, summarize --map-top-k: dense (embeddings), bm25 (the index's lexical index) or hybrid (both, "
         "fused) \\[default: the index's own, else hybrid].")]
FusionOpt = Annotated[str, typer.Option(help="hybrid: rrf (reciprocal rank fusion) or weighted (normalised scores).")]
FusionWeightOpt = Annotated[float, typer.Option(help="hybrid: the dense ranking's share in [0, 1]; BM25 gets the "
                                                     "rest.")]
RerankOpt = Annotated[Optional[str], typer.Option(
    help="Reorder the retrieved candidates: cross-encoder:MODEL (a local sentence-transformers CrossEncoder; none "
         "ships with docqa) or reader (the reader's P(Yes), a prefill per candidate).")]
ChunkOrderOpt = Annotated[str, typer.Option(
    help="rag: the order the reader sees the chunks in: relevance (best first) or document (as they stand in their "
         "files, OP-RAG).")]
RerankTopNOpt = Annotated[int, typer.Option(help="--rerank: candidates it reads.")]
RetriesOpt = Annotated[int, typer.Option(
    help="Served model: retries of a request that was cut short, rate-limited (429/503, waiting Retry-After), timed "
         "out or dropped.")]


def friendly(fn: F) -> F:
    """Turn a :class:`DocQAError` into one red line on stderr and exit code 1; never a traceback. Anything else
    is a bug: one line naming it, exit code 2 (tests assert 1 for every user error, so bugs still show).

    Set DOCQA_DEBUG=1 to see the traceback anyway.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DocQAError as e:
            if os.environ.get("DOCQA_DEBUG"):
                raise
            err.print(f"[bold red]error:[/] {escape(one_line(str(e)))}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(code=1) from None
        except KeyboardInterrupt:
            err.print("[red]interrupted[/]")
            raise typer.Exit(code=130) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as e:  # noqa: BLE001 - the last line of defence: a bug, said in one line, exit 2
            if os.environ.get("DOCQA_DEBUG"):
                raise
            err.print(f"[bold red]internal error (a bug in docqa):[/] {escape(type(e).__name__)}: "
                      f"{escape(str(e).splitlines()[0][:300] if str(e) else '')}. Run again with DOCQA_DEBUG=1 for "
                      f"the traceback, and report it.", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]
