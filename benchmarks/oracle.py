"""How far could better retrieval take rag with this model? Its ceiling on L-Eval financial QA.

    .venv/bin/python benchmarks/oracle.py --top-k 1,2,4,8          # gold passages
    .venv/bin/python benchmarks/oracle.py --reference              # the reference itself as the only passage

rag as docqa asks it (same prompt, length hint, decoder, one index per transcript), except that retrieval is an
oracle that has read the answers: each question gets the K chunks of its transcript whose token F1 with the
reference is highest (the passages a perfect retriever would return), or with ``--reference`` the reference text
itself as one passage (can the model at least restate an answer it is handed?). What the model scores there bounds
what any retriever, reranker or query rewrite can buy it; the gap to the reference row is the model's reading.
Writes benchmarks/out/oracle-*/ and prints F1 and ROUGE-L on the 52 questions L-Eval scores. Not a strategy: the
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
    args = ap.parse_args()

    import docqa
    from docqa.corpus import Corpus, Retrieved
    from docqa.eval.metrics import token_f1
    from docqa.eval.questions import load_leval

    refs = {q.question.strip(): q.answers[0] for _, _, qs in load_leval(LEVAL) for q in qs}
    runs = [("reference", 1)] if args.reference else [("gold", k) for k in args.top_k]
    mode = ""

    def oracle(self: Corpus, questions: list[str], k: int) -> list[Retrieved]:
        out = []
        for q in questions:
            ref, chunks = refs[q.strip()], self.store.chunks()
            if mode == "reference":  # the reference text, carried by a chunk record of the right transcript
                out.append(Retrieved([(dataclasses.replace(chunks[0], text=ref), 1.0)], 0.0, 0.0))
                continue
            ranked = sorted(((token_f1(c.text, [ref]), c) for c in chunks), key=lambda t: -t[0])
            out.append(Retrieved([(c, s) for s, c in ranked[:k]], 0.0, 0.0))
        return out

    Corpus.retrieve_many = oracle  # rag's only way to the index: every other step is docqa's own
    print(f"{'oracle':<22}{'F1':>7}{'ROUGE-L':>9}{'prompt tokens (median)':>24}")
    for mode, k in runs:
        name = "reference" if mode == "reference" else f"gold-top{k}"
        records, rows = docqa.evaluate(None, leval=LEVAL, strategies=["rag"], out=ROOT / "benchmarks" / "out" /
                                       f"oracle-{name}", root=ROOT / "benchmarks" / "out" / "indexes", top_k=k,
                                       max_new_tokens=args.max_new_tokens, style="auto", length_hint=True)
        prompt = sorted(r["prompt_tokens"] for r in records)[len(records) // 2]
        print(f"{name:<22}{100 * rows[0]['f1']:7.1f}{100 * rows[0]['rouge_l']:9.1f}{prompt:>24}")


if __name__ == "__main__":
    main()
