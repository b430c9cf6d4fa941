"""Answers in the documents' own words: does asking for them help the 1.5 B reader on both kinds of set?

    .venv/bin/python benchmarks/own_words.py run --leval SET.jsonl --strategy long-context|rag --out OUT --root IDX
    .venv/bin/python benchmarks/own_words.py whole --styles paragraph -- --root IDX --strategies rag,long-context \
        --docs 6,16 --style paragraph --max-new-tokens 192 --out RECORDS.jsonl --json OUT.json
    .venv/bin/python benchmarks/own_words.py table [--json benchmarks/results/own_words.json]

Financial QA's long-context answers run short of their references and miss their figures (38 words against 56;
precision 53.6, recall 37.4): "revenue increased by 15 %" where the transcript says it declined 3 %. L-Eval's
references, in both of its open-ended sets here, are mostly the documents' own sentences, lightly paraphrased. The arm
asks the sentence and paragraph styles to answer "in the context's own words" (one clause added to the system turn;
the short style, a few words already, is left as it is): an answer in the documents' wording is also one a user can
find and check. ``run`` patches docqa's answer styles in process and runs ``docqa.evaluate`` exactly as ``docqa eval
--leval SET --strategies STRATEGY`` does; ``whole`` runs benchmarks/whole_questions.py with the styles patched (a
second set in the paragraph style, which only financial QA uses among the L-Eval sets); ``table`` pairs the arm with
the control records of "Every row on one machine" and "rag's top-k" (benchmarks/RESULTS.md), question by question,
per style, and checks that the questions the arm does not touch (short references) came out word for word as the
control's; the whole-document questions per document.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from style_prefix import load, score  # noqa: E402  (one loader for the paired records)

from docqa.eval.paired import paired  # noqa: E402

PAIRED = ROOT / "benchmarks" / "results" / "paired"
CLAUSE = ", in the context's own words."
# (set, strategy) → (control records, arm records); the control is docqa as it is, same machine and code
RECORDS = {
    ("financial QA", "long-context"): ("prefix-style-lc-fin-qwen15", "own-words-lc-fin-qwen15"),
    ("scientific QA", "long-context"): ("prefix-style-lc-sci-qwen15", "own-words-lc-sci-qwen15"),
    ("financial QA", "rag"): ("topk-fin-qwen15", "own-words-rag-fin-qwen15"),
    ("scientific QA", "rag"): ("topk-sci-qwen15", "own-words-rag-sci-qwen15"),
}
# Whole-document questions in the paragraph style (benchmarks/whole_questions.py --style paragraph --max-new-tokens
# 192), scored per document against its pooled references: the control, and the arm with the paragraph style patched
WHOLE = ("whole-questions-same-style-qwen15", "own-words-whole-qwen15")
LI = {"financial QA": ("prefix-li-fin-qwen15",), "scientific QA": ("short-li-sci-qwen15", "prefix-li-sci-long-qwen15")}


def patch(styles: tuple[str, ...] = ("sentence", "paragraph")) -> None:
    """``styles`` ask for the context's own words; nothing else changes."""
    from docqa.prompts import STYLES

    for name in styles:
        style = STYLES.get(name)
        assert style.instruction.endswith("."), "docqa's style wording changed: update this patch"
        STYLES.register(name, dataclasses.replace(style, instruction=style.instruction[:-1] + CLAUSE), replace=True)


def run(args: argparse.Namespace) -> None:
    patch(tuple(args.styles.split(",")))
    import docqa
    from docqa.generators import GeneratorConfig

    try:
        _, rows = docqa.evaluate(leval=args.leval, strategies=[args.strategy], out=args.out, root=args.root,
                                 model=args.model, generator=GeneratorConfig(threads=args.threads))
    except docqa.DocQAError as e:
        sys.exit(f"error: {e}")
    print(f"{args.strategy} (own words): F1 {100 * rows[0]['f1']:.1f} over {rows[0]['questions']} questions")


def whole(args: argparse.Namespace) -> None:
    """benchmarks/whole_questions.py with the patched styles: its arguments follow ``--``."""
    import runpy

    patch(tuple(args.styles.split(",")))
    sys.argv = ["whole_questions.py", *[a for a in args.rest if a != "--"]]
    runpy.run_path(str(ROOT / "benchmarks" / "whole_questions.py"), run_name="__main__")


def words(r: dict) -> int:
    return len(r["answer"].split())


def measure() -> dict:
    report: dict = {"clause": CLAUSE, "rows": []}
    for (name, strategy), (control_name, arm_name) in RECORDS.items():
        if not (PAIRED / f"{arm_name}.jsonl").exists():
            continue
        control, arm = load(control_name, strategy=strategy), load(arm_name, strategy=strategy)
        keys = sorted(arm)
        assert set(keys) <= set(control), (name, strategy, len(set(keys) - set(control)))
        d = paired([score(control[k]) for k in keys], [score(arm[k]) for k in keys])
        row = {"set": name, "strategy": strategy, "questions": len(keys),
               "control_f1": statistics.fmean(score(control[k]) for k in keys),
               "f1": statistics.fmean(score(arm[k]) for k in keys), "delta": d.as_dict(), "delta_text": str(d),
               "words_p50": [statistics.median(words(control[k]) for k in keys),
                             statistics.median(words(arm[k]) for k in keys)],
               "groundedness": [statistics.fmean(control[k]["metrics"].get("groundedness") or 0 for k in keys),
                                statistics.fmean(arm[k]["metrics"].get("groundedness") or 0 for k in keys)],
               "s_per_question": [statistics.fmean(control[k]["latency_s"] for k in keys),
                                  statistics.fmean(arm[k]["latency_s"] for k in keys)],
               "by_style": {}}
        for style in sorted({arm[k]["style"] for k in keys}):
            ks = [k for k in keys if arm[k]["style"] == style]
            d = paired([score(control[k]) for k in ks], [score(arm[k]) for k in ks])
            row["by_style"][style] = {"questions": len(ks), "delta_text": str(d), "delta": d.as_dict(),
                                      "same_answers": sum(arm[k]["answer"] == control[k]["answer"] for k in ks)}
        li_names = LI[name]
        li = load(*li_names)
        if set(keys) <= set(li):
            d = paired([score(li[k]) for k in keys], [score(arm[k]) for k in keys])
            c = paired([score(li[k]) for k in keys], [score(control[k]) for k in keys])
            row["against_li"] = {"li_f1": statistics.fmean(score(li[k]) for k in keys), "control": str(c),
                                 "arm": str(d), "arm_delta": d.as_dict()}
        report["rows"].append(row)
    report["whole"] = measure_whole()
    return report


def _per_doc(records: list[dict], docs: list[str], key: str) -> list[float]:
    return [100 * statistics.fmean(r[key] for r in records if r["index"] == d) for d in docs]


def measure_whole() -> list[dict]:
    """The arm on whole-document questions, paired per document (the mean over its two phrasings)."""
    if not (PAIRED / f"{WHOLE[1]}.jsonl").exists():
        return []
    read = [[json.loads(line) for line in (PAIRED / f"{n}.jsonl").read_text().splitlines()] for n in WHOLE]
    control = {(r["index"], r["strategy"], r["question"]): r for r in read[0]}
    rows = []
    for name, label in (("financial_qa", "financial QA"), ("scientific_qa", "scientific QA")):
        for strategy in ("rag", "long-context"):
            arm = [r for r in read[1] if r["set"] == name and r["strategy"] == strategy]
            docs = sorted({r["index"] for r in arm})
            if not docs:
                continue

            before = [control[(r["index"], r["strategy"], r["question"])] for r in arm]
            row = {"set": label, "strategy": strategy, "documents": len(docs), "questions": len(arm),
                   "same_answers": sum(b["answer"] == a["answer"] for b, a in zip(before, arm, strict=True))}
            for key in ("f1", "recall", "precision"):
                b, a = _per_doc(before, docs, key), _per_doc(arm, docs, key)
                row[key] = [statistics.fmean(b), statistics.fmean(a), str(paired(b, a))]
            rows.append(row)
    return rows


def table(args: argparse.Namespace) -> None:
    report = measure()
    print(f"| set | strategy | F1 as it is → {CLAUSE!r} | Δ [95 % CI], W / L / T | by style (same answers) | "
          "words p50 | groundedness | s a question |")
    print("|---|---|---|---|---|---|---|---|")
    for r in report["rows"]:
        styles = "; ".join(f"{s} ({v['questions']}): {v['delta_text']} ({v['same_answers']} same)"
                           for s, v in r["by_style"].items())
        print(f"| {r['set']} ({r['questions']}) | {r['strategy']} | {r['control_f1']:.1f} → {r['f1']:.1f} | "
              f"{r['delta_text']} | {styles} | {r['words_p50'][0]:.0f} → {r['words_p50'][1]:.0f} | "
              f"{r['groundedness'][0]:.2f} → {r['groundedness'][1]:.2f} | "
              f"{r['s_per_question'][0]:.1f} → {r['s_per_question'][1]:.1f} |")
    print("\n| set | strategy | llama-index's engine | as it is − engine | own words − engine |")
    print("|---|---|---|---|---|")
    for r in report["rows"]:
        if "against_li" in r:
            a = r["against_li"]
            print(f"| {r['set']} | {r['strategy']} | {a['li_f1']:.1f} | {a['control']} | {a['arm']} |")
    if report["whole"]:
        print("\n| whole-document questions, paragraph style | strategy | F1 as it is → own words | Δ F1 | Δ recall | "
              "Δ precision | same answers |")
        print("|---|---|---|---|---|---|---|")
        for r in report["whole"]:
            print(f"| {r['set']} ({r['documents']} documents) | {r['strategy']} | {r['f1'][0]:.1f} → {r['f1'][1]:.1f} "
                  f"| {r['f1'][2]} | {r['recall'][2]} | {r['precision'][2]} | {r['same_answers']} / {r['questions']} |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="the arm over an L-Eval set")
    r.add_argument("--leval", type=Path, required=True)
    r.add_argument("--strategy", choices=("long-context", "rag"), default="long-context")
    r.add_argument("--model", default="qwen2.5-coder-1.5b")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--root", type=Path, default=ROOT / "benchmarks" / "out" / "indexes")
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--styles", default="sentence,paragraph", help="the styles that ask for the context's own words")
    w = sub.add_parser("whole", help="benchmarks/whole_questions.py with the patched styles (its arguments after --)")
    w.add_argument("--styles", default="sentence,paragraph")
    w.add_argument("rest", nargs=argparse.REMAINDER)
    t = sub.add_parser("table", help="the table from the recorded runs")
    t.add_argument("--json", type=Path)
    args = ap.parse_args()
    {"run": run, "whole": whole, "table": table}[args.command](args)


if __name__ == "__main__":
    main()
