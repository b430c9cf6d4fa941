"""How far could better retrieval take rag with this model? Its ceiling on an L-Eval set (financial QA by default).

    .venv/bin/python benchmarks/oracle.py --top-k 1,2,4,8          # gold passages
    .venv/bin/python benchmarks/oracle.py --reference              # the reference itself as the only passage
    .venv/bin/python benchmarks/oracle.py --leval ../shared/data/leval/scientific_qa.jsonl --limit 60
    .venv/bin/python benchmarks/oracle.py --leval ../shared/data/leval/scientific_qa.jsonl --limit 100 --resume

rag as docqa asks it (same prompt, length hint, decoder, one index per transcript), except that retrieval is an
oracle that has read the answers: each question gets the K chunks of its transcript whose token F1 with the
reference is highest (the passages a perfect retriever would return), or with ``--reference`` the reference text
itself as one passage (can the model at least restate an answer it is handed?). What the model scores there bounds
what any retriever, reranker or query rewrite can buy it; the gap to the reference row is the model's reading.
Writes benchmarks/out/oracle-SET-*/ and prints F1 and ROUGE-L on the questions L-Eval scores. A question's gold
chunks are ranked against all its references (scientific QA has several per question). Not a strategy: the
oracle uses the references, which no real question has.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LEVAL = ROOT.parent / "shared" / "data" / "leval" / "financial_qa.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--top-k", default=[4], type=lambda s: [int(k) for k in s.split(",")],
                    help="comma-separated numbers of gold chunks, one run each")
    ap.add_argument("--reference", action="store_true", help="one run with the reference as the only passage")
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--leval", type=Path, default=LEVAL, help="an L-Eval .jsonl (default: financial QA)")
    ap.add_argument("--limit", type=int, default=None, help="the first N scored questions")
    ap.add_argument("--resume", action="store_true",
                    help="keep the answers of an earlier run with the same settings (docqa eval --resume): a larger "
                         "--limit asks only the questions it adds")
    args = ap.parse_args()

    import docqa
    from docqa.eval.metrics import token_f1
    from docqa.eval.questions import load_leval
    from docqa.retrieval import Retrieved
    from docqa.strategies import rag

    # By document: the same question ("Which datasets do they use?") has other answers in another paper.
    refs = {name: [(q.question.strip(), q.answers) for q in qs] for name, _, qs in load_leval(args.leval)}

    def references(index: str, query: str) -> list[str]:
        """The references of the question ``query`` retrieves for; eval retrieves with the question alone, without
        a lead-in the set's questions share, so the question text ends with the query."""
        query = query.strip()
        for text, answers in refs[index.removeprefix("leval-")]:
            if text == query or text.endswith(query):
                return answers
        raise KeyError(f"no question of {index} ends with {query!r}")

    runs = [("reference", 1)] if args.reference else [("gold", k) for k in args.top_k]
    mode = ""

    asked = [0]

    def oracle(corpus, queries: list[str], k: int, options=None) -> list[Retrieved]:
        out = []
        for q in queries:
            answers, chunks = references(corpus.name, q), corpus.store.chunks()
            if mode == "reference":  # the reference text, carried by a chunk record of the right document
                out.append(Retrieved([(dataclasses.replace(chunks[0], text=answers[0]), 1.0)], retriever="oracle"))
                continue
            ranked = sorted(((token_f1(c.text, answers), c) for c in chunks), key=lambda t: -t[0])
            out.append(Retrieved([(c, s) for s, c in ranked[:k]], retriever="oracle"))
        asked[0] += len(queries)
        return out

    # rag's only way to the index (docqa/retrieval's retrieve_many, as rag imported it): every other step is docqa's.
    # Until 2026-12-05 rag asked Corpus.retrieve_many, which this script patched; the count below makes sure a
    # later move cannot turn the oracle into the real retriever silently.
    rag.retrieve_many = oracle
    print(f"{'oracle':<22}{'F1':>7}{'ROUGE-L':>9}{'prompt tokens (median)':>24}")
    for mode, k in runs:
        name = "reference" if mode == "reference" else f"gold-top{k}"
        out = ROOT / "benchmarks" / "out" / f"oracle-{args.leval.stem}-{name}"
        kept = 0
        if args.resume and (out / "results.jsonl").is_file():  # answered before: not asked again, so not counted
            from docqa.eval.runner import load_done

            kept = len(load_done(out / "results.jsonl"))
        records, rows = docqa.evaluate(None, leval=args.leval, strategies=["rag"], out=out,
                                       root=ROOT / "benchmarks" / "out" / "indexes", top_k=k,
                                       max_new_tokens=args.max_new_tokens, style="auto", length_hint=True,
                                       limit=args.limit, resume=args.resume)
        if asked[0] < len(records) - kept:
            raise SystemExit(f"rag asked the oracle for {asked[0]} of {len(records) - kept} questions: it retrieves "
                             f"some other way now; point this script at it.")
        asked[0] = 0
        prompt = sorted(r["prompt_tokens"] for r in records)[len(records) // 2]
        print(f"{name:<22}{100 * rows[0]['f1']:7.1f}{100 * rows[0]['rouge_l']:9.1f}{prompt:>24}")


if __name__ == "__main__":
    main()
