"""docqa's strategies on L-Eval's financial QA, beside the published models on the same questions.

    .venv/bin/python benchmarks/leval.py --limit 16 --strategies rag,long-context,summarize,auto
    .venv/bin/python benchmarks/leval.py --strategies summarize --chain li-tree --summary-window 2048

Builds one index per earnings-call transcript (``docqa eval --leval``), asks each question of its own transcript,
or, with ``--one-corpus``, one index of all eight transcripts (~40 k tokens, 5x the embedded model's window, so
long-context must stretch and rag must find the right transcript) asked every question; and scores with docqa's
metrics (which reproduce L-Eval's published figures, see scorer_parity.py). The published
predictions are rescored on exactly the questions asked here, so the rows compare like with like. Writes
benchmarks/out/leval/ (results.jsonl, summary.json/csv, plot) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LEVAL = ROOT.parent / "shared" / "data" / "leval"


def published_predictions(model: str) -> dict[tuple[str, str], dict]:
    """A published model's predictions keyed by (document, question), the key docqa's records carry. The files hold
    no document id and L-Eval prefixes each query with its own instruction, so a prediction is placed by its reference
    answer (``gt``) and the question it ends with. One question with one reference is asked of three transcripts
    (docs 5, 7 and 8); L-Eval wrote predictions document by document, so its k-th prediction goes to the k-th of
    those documents, and the three stay apart instead of one overwriting the others."""
    from docqa.eval.questions import load_leval

    docs = load_leval(LEVAL / "financial_qa.jsonl")
    out: dict[tuple[str, str], dict] = {}
    for line in (LEVAL / "predictions" / model / "financial_qa.pred.jsonl").read_text().splitlines():
        p = json.loads(line)
        hits = [(name, q.question) for name, _, qs in docs for q in qs
                if q.answers[0].strip() == p["gt"].strip() and p["query"].strip().endswith(q.question)]
        free = [h for h in hits if h not in out]
        if not free:
            raise SystemExit(f"{model}: cannot place prediction {p['query'][:80]!r} ({len(hits)} matches, all taken)")
        out[free[0]] = p
    return out


def one_corpus(out: Path, limit_docs: int | None) -> Path:
    """Write the transcripts as files of one folder, ingest them as one index, and write the questions as docqa's
    JSONL (with each question's transcript as its gold source, so retrieval recall is measured too)."""
    import docqa
    from docqa.eval.questions import load_leval

    docs = load_leval(LEVAL / "financial_qa.jsonl")[:limit_docs]
    folder = out / "docs"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text, _ in docs:
        (folder / f"{name}.txt").write_text(text)
    docqa.ingest(folder, "leval-financial_qa-all", root=ROOT / "benchmarks" / "out" / "indexes", sync=True)
    qfile = out / "questions.jsonl"
    qfile.write_text("".join(json.dumps({"id": q.id, "question": q.question, "answers": q.answers,
                                         "sources": q.sources}) + "\n" for _, _, qs in docs for q in qs))
    return qfile


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=None, help="only the first N questions")
    ap.add_argument("--limit-docs", type=int, default=None, help="only the first N transcripts")
    ap.add_argument("--strategies", default="rag,long-context,auto")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--resume", action="store_true", help="keep finished (question, strategy) pairs")
    ap.add_argument("--chain", default="map-reduce", help="summarize's chain (li-tree, li-refine: llama-index's)")
    ap.add_argument("--summary-window", type=int, default=None, help="summarize: tokens per call")
    ap.add_argument("--style", default="auto", help="answer style (auto: from the references: paragraph here)")
    ap.add_argument("--no-repeat-ngram", type=int, default=None, help="the decoder's repetition control (0: off)")
    ap.add_argument("--tag", default="", help="a name for this run's folder, benchmarks/out/leval-TAG")
    ap.add_argument("--one-corpus", action="store_true", help="one index of all transcripts, asked every question")
    ap.add_argument("--max-context", type=int, default=None, help="long-context's token limit (all: 41 748)")
    ap.add_argument("--top-k", type=int, default=None, help="rag: chunks to retrieve (default: docqa's, 4)")
    ap.add_argument("--no-length-hint", action="store_true",
                    help="ask without L-Eval's 'The suggested output length is around N words.' (runs before "
                         "2026-11-29 session 7 did; the published models were asked with it)")
    ap.add_argument("--rope-factor", type=float, default=None, help="long-context: a fixed rope scale (default: "
                                                                        "the request's length / the window)")
    args = ap.parse_args()

    import docqa
    from docqa.eval.metrics import rouge_l, token_f1

    # Runs with another chain or window go to their own folder, so they never mix with the default run's records.
    tag = "" if (args.chain, args.summary_window) == ("map-reduce", None) else f"-{args.chain}-{args.summary_window}"
    tag += f"-{args.tag}" if args.tag else ""
    tag += "-one-corpus" if args.one_corpus else ""
    out = ROOT / "benchmarks" / "out" / f"leval{tag}"
    from docqa.generators import GeneratorConfig

    generator = GeneratorConfig() if args.no_repeat_ngram is None else GeneratorConfig(
        no_repeat_ngram=args.no_repeat_ngram)
    t0 = time.perf_counter()
    common = dict(strategies=args.strategies.split(","), out=out, limit=args.limit,
                  root=ROOT / "benchmarks" / "out" / "indexes", max_new_tokens=args.max_new_tokens,
                  resume=args.resume, chain=args.chain, summary_window=args.summary_window, style=args.style,
                  generator=generator, length_hint=not args.no_length_hint,
                  **({"max_context": args.max_context} if args.max_context else {}),
                  **({"rope_factor": args.rope_factor} if args.rope_factor else {}),
                  **({"top_k": args.top_k} if args.top_k else {}))
    if args.one_corpus:
        records, rows = docqa.evaluate(one_corpus(out, args.limit_docs), index="leval-financial_qa-all", **common)
        for r in records:  # the question ids carry their transcript: financial_qa-doc03-q05
            r["document"] = r["id"].rsplit("-q", 1)[0]
    else:
        records, rows = docqa.evaluate(None, leval=LEVAL / "financial_qa.jsonl", limit_docs=args.limit_docs,
                                       **common)
    minutes = (time.perf_counter() - t0) / 60
    asked = {(r["document"], r["question"]) for r in records}
    print(f"{len(asked)} questions, {minutes:.1f} min\n")
    published = {model: published_predictions(model) for model in ("turbo-16k-0613", "vicuna-13b-16k",
                                                                    "llama2-13b-chat-4k")}
    # L-Eval scored 52 of the 68 questions; compare on the asked questions it scored, matched by (document, question).
    scored = asked & set.intersection(*(set(v) for v in published.values()))
    print(f"{'system':<36}{'n':>4}{'F1':>7}{'ROUGE-L':>9}{'p50 s':>8}")
    for row in rows:
        rs = [r for r in records if r["strategy"] == row["strategy"] and (r["document"], r["question"]) in scored]
        f1 = 100 * sum(r["metrics"]["f1"] for r in rs) / len(rs)
        rl = 100 * sum(r["metrics"]["rouge_l"] for r in rs) / len(rs)
        print(f"{'docqa ' + row['strategy'] + ' (SmolLM2-135M)':<36}{len(rs):>4}{f1:7.1f}{rl:9.1f}"
              f"{row['latency_p50_s']:8.1f}")
    for model, by_query in published.items():
        same = [by_query[key] for key in sorted(scored)]
        pred = lambda p: next(v for k, v in p.items() if k.endswith("_pred"))  # noqa: E731
        f1 = 100 * sum(token_f1(pred(p), [p["gt"]]) for p in same) / len(same)
        rl = 100 * sum(rouge_l(pred(p), [p["gt"]]) for p in same) / len(same)
        print(f"{model + ' (published)':<36}{len(same):>4}{f1:7.1f}{rl:9.1f}{'':>8}")


if __name__ == "__main__":
    main()
