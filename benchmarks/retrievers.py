"""Retrievers compared per passage on L-Eval sets: dense, BM25, hybrid (RRF and weighted fusion, several weights),
at several k — gold-chunk hit@k, MRR, context recall and context token recall, each paired against dense.

    .venv/bin/python benchmarks/retrievers.py ../shared/data/leval/financial_qa.jsonl \
        ../shared/data/leval/scientific_qa.jsonl [--root benchmarks/out/indexes] [--k 4,8] [--json OUT.json]

Indexes are the ones `docqa eval --leval FILE --root ROOT` builds (leval-STEM-docNN, chunked with the reader's
tokenizer, --model); one without a lexical index (written by an older docqa) or missing is (re)built here the same
way. Every question of a document is asked of that document's index, through docqa.retrieval.retrieve_many — the
call rag makes — with the set's shared instruction cut from the query as eval cuts it. The gold chunks are located
by docqa/eval/retrieval.py's rule; token recall (the share of the reference's content words found in the retrieved
text) needs no located chunk, so it covers every question. Intervals: paired bootstrap over questions
(docqa.eval.paired). No reader is involved: F1 comes from `docqa eval ... --strategies rag,rag:retriever=…`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIGS = ["dense", "bm25", "hybrid:rrf:0.5", "hybrid:rrf:0.7", "hybrid:rrf:0.3", "hybrid:weighted:0.5",
           "hybrid:weighted:0.7", "hybrid:weighted:0.3"]


def options_of(config: str):
    from docqa.retrieval import RetrievalOptions

    parts = config.split(":")
    if parts[0] != "hybrid":
        return RetrievalOptions(retriever=parts[0])
    return RetrievalOptions(retriever="hybrid", fusion=parts[1], fusion_weight=float(parts[2]),
                            **({"depth": int(parts[3])} if len(parts) > 3 else {}))


def ensure_indexes(path: Path, root: Path, model: str) -> list[tuple[str, list]]:
    """(document name, its scored questions) for every document of an L-Eval file, each with a lexical index."""
    import docqa
    from docqa.eval.questions import load_leval
    from docqa.index.store import IndexStore

    out = []
    for name, text, qs in load_leval(path):
        qs = [q for q in qs if q.metric is not None and q.answers]
        if not qs or not text.strip():
            continue
        folder = root / ".leval-sources" / name
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / f"{name}.txt").exists() or (folder / f"{name}.txt").read_text() != text:
            (folder / f"{name}.txt").write_text(text)
        rebuild = False
        if (root / f"leval-{name}").is_dir():
            store = IndexStore(f"leval-{name}", root)
            rebuild = not store.has_lexical
            store.close()
        docqa.ingest(folder, f"leval-{name}", root=root, model=model, rebuild=rebuild)
        out.append((name, qs))
    return out


def token_recall(references: list[str], texts: list[str]) -> float:
    """Share of a reference's distinct content words present in the retrieved text (best reference)."""
    from docqa.eval.metrics import tokens as word_tokens
    from docqa.eval.retrieval import _content

    have = set(word_tokens(" ".join(texts)))
    best = 0.0
    for ref in references:
        want = set(_content(ref))
        if want:
            best = max(best, len(want & have) / len(want))
    return best


def main() -> None:
    import docqa
    from docqa.eval.paired import paired
    from docqa.eval.questions import shared_instruction
    from docqa.eval.retrieval import gold_chunks, rank_metrics
    from docqa.retrieval import retrieve_many
    from docqa.strategies.base import retrieval_query

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--root", type=Path, default=ROOT / "benchmarks" / "out" / "indexes")
    ap.add_argument("--model", default="qwen2.5-coder-1.5b", help="tokenizer the chunks are sized with")
    ap.add_argument("--k", default="4,8")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "retrievers.json")
    ap.add_argument("--llama-index", action="store_true",
                    help="also llama-index's BM25Retriever and QueryFusionRetriever (benchmarks/li_hybrid.py)")
    args = ap.parse_args()
    if args.llama_index:
        from benchmarks import li_hybrid

        li_hybrid.register()
        args.configs += ",li-bm25,li-hybrid"
    ks = [int(k) for k in args.k.split(",")]
    configs = args.configs.split(",")
    results: dict = {"configs": configs, "k": ks, "sets": {}}
    for path in args.files:
        docs = ensure_indexes(path, args.root, args.model)
        instruction = shared_instruction([q.question for _, qs in docs for q in qs])
        per: dict[str, dict[int, dict[str, list[float]]]] = {c: {k: {} for k in ks} for c in configs}
        seconds: dict[str, float] = dict.fromkeys(configs, 0.0)
        located = asked = 0
        for name, qs in docs:
            idx = docqa.open_index(f"leval-{name}", root=args.root, model=args.model)
            corpus = idx.corpus
            chunks = [(c.id, c.text) for c in corpus.store.chunks()]
            golds = [gold_chunks(q.answers, chunks) for q in qs]
            located += sum(1 for g in golds if g)
            asked += len(qs)
            queries = [retrieval_query(q.question, instruction) for q in qs]
            for c in configs:
                t0 = time.perf_counter()
                got = retrieve_many(corpus, queries, max(ks), options_of(c))
                seconds[c] += time.perf_counter() - t0
                for q, gold, r in zip(qs, golds, got, strict=True):
                    ids = [ch.id for ch, _ in r.chunks]
                    texts = [ch.text for ch, _ in r.chunks]
                    for k in ks:
                        m = per[c][k]
                        m.setdefault("token_recall", []).append(token_recall(q.answers, texts[:k]))
                        if gold:
                            for key, v in rank_metrics(ids[:k], gold).items():
                                m.setdefault(key, []).append(v)
            corpus.store.close()
        stem = path.stem
        results["sets"][stem] = {"questions": asked, "located": located, "per": per,
                                 "seconds_per_query": {c: seconds[c] / max(asked, 1) for c in configs},
                                 "instruction": instruction}
        print(f"\n### {stem}: {asked} questions, answer located for {located}"
              + (f"; instruction cut from queries: \"{instruction[:60]}…\"" if instruction else ""))
        print("\n| retriever | k | hit@k | MRR | context recall | token recall | hit − dense | MRR − dense | "
              "token recall − dense | ms / query |")
        print("|---|---:|---:|---:|---:|---:|---|---|---|---:|")
        for k in ks:
            base = per[configs[0]][k]
            for c in configs:
                m = per[c][k]
                mean = {key: 100 * sum(v) / len(v) if v else float("nan") for key, v in m.items()}
                diffs = []
                for key in ("hit", "mrr", "token_recall"):
                    if c == configs[0] or not m.get(key):
                        diffs.append("")
                    else:
                        p = paired([100 * x for x in base[key]], [100 * x for x in m[key]])
                        diffs.append(f"{p.diff:+.1f} [{p.ci_low:+.1f}, {p.ci_high:+.1f}]")
                print(f"| {c} | {k} | {mean.get('hit', float('nan')):.1f} | {mean.get('mrr', float('nan')):.1f} | "
                      f"{mean.get('context_recall', float('nan')):.1f} | {mean['token_recall']:.1f} | "
                      f"{diffs[0]} | {diffs[1]} | {diffs[2]} | {1000 * seconds[c] / max(asked, 1):.1f} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
