"""llama-index's own hybrid, as its users build it, plugged into docqa's retriever registry for comparison only:
``li-bm25`` (``BM25Retriever`` from llama-index-retrievers-bm25, over every chunk in memory) and ``li-hybrid``
(``QueryFusionRetriever`` over docqa's dense arm and that BM25Retriever, mode ``reciprocal_rerank``, one query: no
LLM rewriting). Same chunks, same embedder, same reader; only BM25 and fusion are llama-index's.

    pip install llama-index-retrievers-bm25        # not a docqa dependency
    import benchmarks.li_hybrid; benchmarks.li_hybrid.register()
"""

from __future__ import annotations

import time


def _bm25(corpus, depth: int):
    import Stemmer
    from llama_index.core.schema import TextNode
    from llama_index.retrievers.bm25 import BM25Retriever

    key = ("li-bm25", corpus.store.content_id, depth)
    if key not in corpus.caches:
        nodes = [TextNode(text=c.text, id_=str(c.id)) for c in corpus.store.chunks()]
        corpus.caches[key] = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=min(depth, len(nodes)),
                                                         stemmer=Stemmer.Stemmer("english"), language="english")
    return corpus.caches[key]


class _Dense:
    """docqa's dense arm as a llama-index retriever (the same embedder and store as docqa's hybrid)."""

    def __new__(cls, corpus, depth: int):
        from llama_index.core.retrievers import BaseRetriever
        from llama_index.core.schema import NodeWithScore, TextNode

        from docqa.retrieval.retrievers import dense

        class DenseRetriever(BaseRetriever):
            def _retrieve(self, query_bundle):
                (r,) = dense(corpus, [query_bundle.query_str], depth, None)
                chunks = corpus.store.chunks([cid for cid, _ in r.ranking])
                return [NodeWithScore(node=TextNode(text=c.text, id_=str(c.id)), score=s)
                        for c, (_, s) in zip(chunks, r.ranking, strict=True)]

        return DenseRetriever()


def _ranked(retriever, queries, depth: int, stage: str):
    """A llama-index retriever's answers as docqa's rankings (node ids are chunk ids), timed per query."""
    from docqa.retrieval.retrievers import Ranked

    out = []
    for q in queries:
        t0 = time.perf_counter()
        hits = retriever.retrieve(q)
        out.append(Ranked([(int(h.node.node_id), float(h.score or 0.0)) for h in hits][:depth],
                          {stage: time.perf_counter() - t0}))
    return out


def li_bm25(corpus, queries, depth, options):
    """llama-index's BM25Retriever (bm25s inside, its default tokenizer and English stop words)."""
    return _ranked(_bm25(corpus, depth), queries, depth, "lexical")


def li_hybrid(corpus, queries, depth, options):
    """llama-index's QueryFusionRetriever(reciprocal_rerank) over docqa's dense arm and its BM25Retriever."""
    from llama_index.core.llms import MockLLM
    from llama_index.core.retrievers import QueryFusionRetriever

    fusion = QueryFusionRetriever([_Dense(corpus, depth), _bm25(corpus, depth)], llm=MockLLM(),
                                  mode="reciprocal_rerank", similarity_top_k=depth, num_queries=1, use_async=False)
    return _ranked(fusion, queries, depth, "search")


def register() -> None:
    from docqa.retrieval import RETRIEVERS

    RETRIEVERS.register("li-bm25", li_bm25, replace=True)
    RETRIEVERS.register("li-hybrid", li_hybrid, replace=True)


def main() -> None:
    """Token F1 of rag on llama-index's hybrid, paired with an earlier docqa eval run of the same questions.

        .venv/bin/python benchmarks/li_hybrid.py ../shared/data/leval/financial_qa.jsonl \\
            --against benchmarks/out/retr-fin --out benchmarks/out/li-fin [--limit N]
    """
    import argparse
    import json
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    import docqa
    from docqa.eval.paired import paired

    ap = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    ap.add_argument("leval", type=Path)
    ap.add_argument("--against", type=Path, required=True, help="an eval run folder (results.jsonl) to pair with")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--root", type=Path, default=root / "benchmarks" / "out" / "indexes")
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    args = ap.parse_args()
    register()
    records, _ = docqa.evaluate(None, leval=args.leval, strategies=["rag:retriever=li-hybrid"], out=args.out,
                                root=args.root, model=args.model, limit=args.limit, resume=True)
    mine = {(r["document"], r["id"]): r for r in records}
    before = [json.loads(x) for x in (args.against / "results.jsonl").read_text().splitlines() if x.strip()]
    for strategy in dict.fromkeys(r["strategy"] for r in before):
        rows = {(r["document"], r["id"]): r for r in before if r["strategy"] == strategy}
        keys = [k for k in rows if k in mine]
        p = paired([100 * rows[k]["metrics"]["f1"] for k in keys], [100 * mine[k]["metrics"]["f1"] for k in keys])
        print(f"li-hybrid − {strategy}: {p} over {len(keys)} questions "
              f"(li-hybrid F1 {sum(100 * mine[k]['metrics']['f1'] for k in keys) / len(keys):.1f}, "
              f"{strategy} {sum(100 * rows[k]['metrics']['f1'] for k in keys) / len(keys):.1f})")


if __name__ == "__main__":
    main()
