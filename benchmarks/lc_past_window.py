"""Long-context past the reader's trained window: every L-Eval financial QA transcript in one index, every question
asked of all of them at once.

    .venv/bin/python benchmarks/lc_past_window.py [--model qwen2.5-coder-1.5b] [--strategies long-context]
    .venv/bin/python benchmarks/lc_past_window.py --strategies long-context:max_context=8192:truncate=true

The per-document runs (``docqa eval --leval``) read ~5.4 k tokens a question, well inside Qwen2.5's 32 768. Here the
eight transcripts together are one corpus of more tokens than the window (40 499 of the 1.5 B's), so long-context reads
past it with docqa's default rope method (the plan that ``ask --json`` reports is recorded per answer) and every
question must find its answer among seven other companies' calls. The prefix (the whole corpus) is prefilled once and
reused for every question. Questions, references, length hints and scoring are the same as the per-document run, so the
records pair with it question by question (printed at the end against ``--against``). Writes
benchmarks/out/lc-past-window/ (``--out``); ``--strategies rag`` is the alternative a corpus past the window leaves:
retrieval over all of it; ``long-context:max_context=N:truncate=true`` reads only the documents retrieval ranks first
that fit N tokens (a budget of one document repeats the same few prefixes, so they stay cached). Financial QA only:
each of its questions names its company, where scientific QA's ("What datasets do they use?") are only questions
of their own paper.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LEVAL = ROOT.parent / "shared" / "data" / "leval" / "financial_qa.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="generator spec (default: docqa's default reader)")
    ap.add_argument("--strategies", default="long-context")
    ap.add_argument("--limit", type=int, default=None, help="the first N scored questions (the corpus stays whole)")
    ap.add_argument("--against", type=Path, default=ROOT / "benchmarks" / "out" / "reader-fin" / "results.jsonl",
                    help="a per-document run's results.jsonl to pair with")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "lc-past-window",
                    help="where the run's records go (one folder a run: a second strategy gets its own)")
    args = ap.parse_args()

    import docqa
    from docqa.eval.paired import paired
    from docqa.eval.questions import load_leval
    from docqa.strategies.variants import parse_variant

    try:
        docs = load_leval(LEVAL)
    except docqa.DocQAError as e:  # ../shared absent or changed: one line, as docqa's own commands say it
        sys.exit(f"error: {e}")
    index = "leval-financial_qa-all"
    src = Path(tempfile.mkdtemp(prefix="docqa-lcpw-"))
    rows = []
    for name, text, qs in docs:
        (src / f"{name}.txt").write_text(text)
        rows += [{"id": q.id, "question": q.question, "answers": q.answers, "sources": [f"{name}.txt"]}
                 for q in qs if q.metric]
    qfile = Path(tempfile.mkdtemp(prefix="docqa-lcpw-q-")) / "questions.jsonl"
    qfile.write_text("".join(json.dumps(r) + "\n" for r in rows))
    root = ROOT / "benchmarks" / "out" / "indexes"
    try:
        docqa.ingest(src, index, root=root, model=args.model)
        records, summary = docqa.evaluate(qfile, index=index, strategies=args.strategies.split(","),
                                          out=args.out, root=root, model=args.model, length_hint=True,
                                          limit=args.limit)
    except docqa.DocQAError as e:  # an unknown strategy or model, a bad variant: one line, not a traceback
        sys.exit(f"error: {e}")
    for row in summary:
        print(f"{row['strategy']}: F1 {100 * row['f1']:.1f} on {row['questions']} questions, "
              f"latency p50 {row['latency_p50_s']:.1f} s, cold {row['cold_latency_s']:.0f} s, "
              f"prompt tokens {row['prompt_tokens_mean']:.0f}")
    rope = {json.dumps(r.get("rope"), sort_keys=True) for r in records}
    print("rope plans:", *rope)
    errors = [r for r in records if r.get("error")]
    if errors:
        print(f"{len(errors)} errors, e.g. {errors[0]['error']}")
    if args.against.is_file():
        before = [json.loads(line) for line in args.against.read_text().splitlines()]
        for strategy in args.strategies.split(","):
            # a variant ("long-context:max_context=8192:truncate=true") pairs with its strategy's own-document run
            a = {r["id"]: r["metrics"]["f1"] for r in before if r["strategy"] == parse_variant(strategy).strategy}
            b = {r["id"]: r["metrics"]["f1"] for r in records if r["strategy"] == strategy}
            ids = sorted(set(a) & set(b))
            if ids:
                p = paired([100 * a[i] for i in ids], [100 * b[i] for i in ids])
                print(f"{strategy}: one corpus − one document a question: {p.diff:+.1f} [{p.ci_low:+.1f}, "
                      f"{p.ci_high:+.1f}] over {p.n} questions ({p.wins} better / {p.losses} worse / {p.ties} tied)")


if __name__ == "__main__":
    main()
