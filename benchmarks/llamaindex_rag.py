"""llama-index's default query engine with docqa's reader and embedder: the field's out-of-the-box rag, same model.

    .venv/bin/python benchmarks/llamaindex_rag.py --leval ../shared/data/leval/financial_qa.jsonl
    .venv/bin/python benchmarks/llamaindex_rag.py --leval ../shared/data/leval/scientific_qa.jsonl --limit-docs 8
    .venv/bin/python benchmarks/llamaindex_rag.py --leval ../shared/data/leval/scientific_qa.jsonl --limit-docs 14 \\
        --resume  # keeps the answers written and asks only the questions the larger limit adds

Per L-Eval document: ``VectorStoreIndex.from_documents`` with llama-index's defaults (``SentenceSplitter`` of 1 024
tokens with 200 of overlap) and ``index.as_query_engine()`` (top 2 chunks, ``compact`` synthesis, llama-index's own
QA prompt). Two things are not llama-index's defaults, because its defaults are OpenAI's: the LLM is docqa's generator
(the same greedy reader, its chat template wrapped around llama-index's prompt as the user turn, 128 new tokens) and
the embedder is docqa's all-MiniLM-L6-v2; its splitter counts tokens with the reader's tokenizer (its default,
tiktoken, downloads its vocabulary at first use, which this machine cannot). Questions are asked as docqa's eval asks
them (the same question text, the length hint in docqa's wording: ``docqa.prompts.with_length``; each record keeps
the query as asked), and scored by docqa's metrics, so benchmarks/paired.py compares the records with a ``docqa eval``
run question by question. Writes OUT/results.jsonl (default benchmarks/out/li-default-TAG).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--leval", type=Path, required=True)
    ap.add_argument("--limit-docs", type=int, default=None)
    ap.add_argument("--model", default=None, help="docqa generator spec (default: docqa's default reader)")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--out", type=Path, default=None, help="folder of results.jsonl (default: "
                    "benchmarks/out/li-default-TAG, TAG the question file's name)")
    ap.add_argument("--wording", choices=("docqa", "leval"), default="docqa",
                    help="the length hint in docqa's wording (docqa.prompts.with_length) or L-Eval's sentence after "
                         "the question (docqa's until 2026-12-06; benchmarks/hint_wording.py)")
    ap.add_argument("--resume", action="store_true",
                    help="keep the answers already in results.jsonl and ask only the questions it lacks "
                         "(a larger --limit-docs extends a run)")
    args = ap.parse_args()

    from hint_wording import leval_sentence
    from llama_index.core import Document, Settings, VectorStoreIndex
    from llama_index.core.embeddings import BaseEmbedding
    from llama_index.core.llms import CompletionResponse, CustomLLM, LLMMetadata
    from llama_index.core.llms.callbacks import llm_completion_callback

    from docqa import prompts
    from docqa.embedder import load_embedder
    from docqa.eval.questions import load_leval
    from docqa.eval.runner import length_hint, score
    from docqa.generators import GeneratorConfig, load_generator
    from docqa.index.versions import write_atomic

    ask_as = prompts.with_length if args.wording == "docqa" else leval_sentence
    gen = load_generator(GeneratorConfig(model=args.model) if args.model else None)
    emb = load_embedder(None)

    class Reader(CustomLLM):
        @property
        def metadata(self) -> LLMMetadata:
            return LLMMetadata(context_window=gen.trained_window, num_output=args.max_new_tokens,
                               is_chat_model=False, model_name=gen.spec)

        @llm_completion_callback()
        def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
            text = gen.generate(gen.chat("You are a helpful assistant.", prompt), args.max_new_tokens).text
            return CompletionResponse(text=text)

        @llm_completion_callback()
        def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any):
            yield self.complete(prompt, formatted=formatted, **kwargs)

    class Embedder(BaseEmbedding):
        def _get_query_embedding(self, query: str) -> list[float]:
            return emb.embed([query], kind="query")[0].tolist()

        def _get_text_embedding(self, text: str) -> list[float]:
            return emb.embed([text])[0].tolist()

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return [v.tolist() for v in emb.embed(texts)]

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

    Settings.llm, Settings.embed_model = Reader(), Embedder()
    Settings.tokenizer = gen.encode
    tag = args.leval.stem
    out = args.out or ROOT / "benchmarks" / "out" / f"li-default-{tag}"
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.jsonl"
    records = []
    if args.resume and path.exists():
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        models = {r["model"] for r in records}
        if models and models != {gen.spec}:  # a resumed run must be one reader's answers
            sys.exit(f"--resume: {path} holds answers of {sorted(models)}, this run reads with {gen.spec}")
    done = {r["id"] for r in records}
    for name, text, questions in load_leval(args.leval)[: args.limit_docs]:
        questions = [q for q in questions if q.metric and q.id not in done]
        if not questions:
            continue
        engine = VectorStoreIndex.from_documents([Document(text=text)]).as_query_engine()
        for q in questions:
            asked = ask_as(q.question, length_hint(q))  # as docqa eval asks it
            t0 = time.perf_counter()
            answer = str(engine.query(asked)).strip()
            latency = time.perf_counter() - t0
            rec = {"id": q.id, "strategy": "li-default", "question": q.question, "asked": asked, "answer": answer,
                   "references": q.answers, "metrics": score(q, answer, [f"{name}.txt"]), "metric": q.metric,
                   "latency_s": latency, "document": name, "model": gen.spec}
            records.append(rec)
            print(f"{q.id}: F1 {rec['metrics']['f1']:.3f} ({latency:.1f} s)", flush=True)
        # after each document, atomically: an interrupted run keeps what it answered (--resume goes on)
        write_atomic(path, "".join(json.dumps(r) + "\n" for r in records))
    scored = [r["metrics"]["score"] for r in records]
    print(f"li-default on {len(records)} questions: score {100 * sum(scored) / max(1, len(scored)):.1f}; wrote {out}")


if __name__ == "__main__":
    main()
