"""Ingest throughput: docqa's ingest against llama-index's default pipeline with the same embedder.

    .venv/bin/python benchmarks/ingest.py [--limit N]

Corpus: the essays of ../shared/data/haystack. "llama-index default" = SimpleDirectoryReader → SentenceSplitter
(its defaults: 1024 tokens, overlap 200, tiktoken counts) → the embedding model called through llama-index's
BaseEmbedding with its default ``embed_batch_size`` of 10, as ``VectorStoreIndex.from_documents`` does; the model is
the same all-MiniLM-L6-v2 that docqa embeds with. docqa = ``docqa.ingest`` end to end (read, split by generator
tokens, embed in length-sorted batches, write SQLite + FAISS atomically). Model loading and first-use imports are
excluded on both sides (one untimed warm-up file each). Reports chunks per second; writes benchmarks/out/ingest.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HAYSTACK = ROOT.parent / "shared" / "data" / "haystack" / "paul_graham_essays"
OUT = ROOT / "benchmarks" / "out"


def llama_index_default(files: list[Path], model) -> tuple[int, float]:
    from llama_index.core import Document, SimpleDirectoryReader
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.core.node_parser import SentenceSplitter

    class STEmbedding(BaseEmbedding):
        """llama-index's embedding interface over the same sentence-transformers model (default batch size 10)."""

        def _get_text_embedding(self, text):
            return model.encode([text], normalize_embeddings=True, show_progress_bar=False)[0].tolist()

        def _get_text_embeddings(self, texts):
            return model.encode(texts, normalize_embeddings=True, show_progress_bar=False).tolist()

        def _get_query_embedding(self, query):
            return self._get_text_embedding(query)

        async def _aget_query_embedding(self, query):
            return self._get_text_embedding(query)

    def run(paths: list[Path]) -> int:
        docs: list[Document] = SimpleDirectoryReader(input_files=[str(f) for f in paths]).load_data()
        return len(IngestionPipeline(transformations=[SentenceSplitter(), STEmbedding()]).run(documents=docs))

    run(files[:1])  # warm-up, untimed: lazy imports and first calls, as docqa's side gets
    t0 = time.perf_counter()
    n = run(files)
    return n, time.perf_counter() - t0


def docqa_ingest(files: list[Path], chunk_tokens: int, dtype: str = "auto") -> tuple[int, float]:
    import os

    import docqa
    from docqa.embedder import forget_loaded, load_embedder

    os.environ["DOCQA_EMBED_DTYPE"] = dtype
    forget_loaded()
    load_embedder()  # loading is not timed, on either side

    with tempfile.TemporaryDirectory() as tmp:
        # Warm-up, untimed: ingest imports llama-index's splitter and readers and FAISS on first use (~1.6 s here),
        # which the llama-index side does before its clock starts.
        (Path(tmp) / "warm").mkdir()
        shutil.copy(files[0], Path(tmp) / "warm" / files[0].name)
        docqa.ingest(Path(tmp) / "warm", "warm", root=Path(tmp) / "idx", chunk_tokens=chunk_tokens)
        src = Path(tmp) / "docs"
        src.mkdir()
        for f in files:
            shutil.copy(f, src / f.name)
        t0 = time.perf_counter()
        report = docqa.ingest(src, "bench", root=Path(tmp) / "idx", chunk_tokens=chunk_tokens)
        return report.chunks_added, time.perf_counter() - t0


def lexical_cost(files: list[Path], rounds: int = 2) -> None:
    """docqa's ingest with and without BM25 postings (the writer's PostingsBuilder swapped for one that does
    nothing), alternated ``rounds`` times in one process: the cost the lexical index adds to a real ingest."""
    from benchmarks.scale import no_postings

    times: dict[str, list[float]] = {"with": [], "without": []}
    n = 0
    for _ in range(rounds):
        n, dt = docqa_ingest(files, 160)
        times["with"].append(dt)
        with no_postings():
            n, dt = docqa_ingest(files, 160)
        times["without"].append(dt)
    w, wo = min(times["with"]), min(times["without"])
    print(f"docqa ingest of {n} chunks: {wo:.1f} s without BM25 postings, {w:.1f} s with "
          f"(+{100 * (w / wo - 1):.1f} %); runs {times}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=0, help="only the first N essays")
    ap.add_argument("--lexical-cost", action="store_true", help="only: ingest with and without BM25 postings")
    args = ap.parse_args()
    files = sorted(HAYSTACK.glob("*.txt"))[: args.limit or None]
    if not files:
        raise SystemExit(f"No essays under {HAYSTACK}.")
    if args.lexical_cost:
        from docqa.generators import load_tokenizer

        load_tokenizer()
        lexical_cost(files)
        return
    from sentence_transformers import SentenceTransformer

    from docqa.generators import load_tokenizer
    from docqa.models import embedded_model_path
    from docqa.paths import DEFAULT_EMBEDDER

    # llama-index's default: the model as sentence-transformers loads it (fp32), models loaded before timing.
    st_model = SentenceTransformer(str(embedded_model_path(DEFAULT_EMBEDDER)), device="cpu")
    load_tokenizer()
    rows = {}
    n, dt = llama_index_default(files, st_model)
    rows["llama-index default (1024-token chunks, batch 10, fp32)"] = (n, dt)
    print(f"llama-index default: {n} chunks in {dt:.1f} s = {n / dt:.1f} chunks/s", flush=True)
    for tokens, dtype in ((160, "float32"), (160, "auto"), (1024, "auto")):
        n, dt = docqa_ingest(files, tokens, dtype)
        rows[f"docqa ingest ({tokens}-token chunks, batch 64, embedder dtype {dtype})"] = (n, dt)
        print(f"docqa ingest, {tokens}-token chunks, {dtype}: {n} chunks in {dt:.1f} s = {n / dt:.1f} chunks/s",
              flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "ingest.json").write_text(json.dumps({
        "files": len(files), "rows": {k: {"chunks": n, "seconds": dt, "chunks_per_s": n / dt}
                                      for k, (n, dt) in rows.items()},
        "machine": platform.platform(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds")},
        indent=2))


if __name__ == "__main__":
    main()
