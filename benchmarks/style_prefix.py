"""Long-context's answer style out of the cached prefix: one prefill per document for every style, at what accuracy?

    .venv/bin/python benchmarks/style_prefix.py run --leval SET.jsonl --arm before --out OUT   # one arm, as eval runs
    .venv/bin/python benchmarks/style_prefix.py table [--json benchmarks/results/style_prefix.json]

Long-context's system turn holds the answer style ("… in one short sentence. If the context does not contain the
answer, say …"), and the system turn is part of the cached document prefix. So a document is prefilled once per
style: twice per scientific QA paper in an eval (references of a few words are asked in the short style, the others
in the sentence style) and again when a ``docqa ask`` user switches ``--style``. Moving the instruction after the
documents would let one prefix serve every style. Arms (``run`` patches docqa's long-context prompt in process and
runs ``docqa.evaluate`` exactly as ``docqa eval --leval SET --strategies long-context`` does):

- ``system``: docqa as it is, the style in the system turn (the control)
- ``before``: the system turn is the bare assistant line; the style's instruction follows the documents, on the line
  before the question
- ``after``: the same, the instruction on the line after the question (and its length hint)

``table`` reads the records under benchmarks/results/paired/ and prints, per set, each arm's F1 against the control
(paired, over all questions and per style), the documents prefilled and the seconds; then the control against
llama-index's default engine (``llamaindex_rag.py``, same machine and code).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from docqa.eval.paired import paired  # noqa: E402

PAIRED = ROOT / "benchmarks" / "results" / "paired"
ARMS = ("system", "before", "after")
RECORDS = {  # (set, arm) → record files; arms not run on a set are absent
    ("financial QA", "system"): ("prefix-style-lc-fin-qwen15",),
    ("financial QA", "before"): ("prefix-free-lc-fin-qwen15",),
    ("scientific QA", "system"): ("prefix-style-lc-sci-qwen15",),
    ("scientific QA", "before"): ("prefix-free-lc-sci-qwen15",),
    ("scientific QA", "after"): ("prefix-after-lc-sci-qwen15",),
    # llama-index's engine; on scientific QA in two parts: the 59 short references (short_refs.py's subset), the rest
    ("financial QA", "li"): ("prefix-li-fin-qwen15",),
    ("scientific QA", "li"): ("short-li-sci-qwen15", "prefix-li-sci-long-qwen15"),
}
PREFILLED_TTFT_S = 10.0  # a warm question reaches its first token in ~1 s; a prefill of 3-7 k tokens took 20-55 s


def patch(arm: str) -> None:
    """docqa's long-context prompt with the style's instruction after the documents (``before`` / ``after`` the
    question); ``system`` leaves it as it is."""
    if arm == "system":
        return
    from docqa import prompts
    from docqa.strategies import long_context

    asked = {"style": prompts.DEFAULT_STYLE}
    split, block = long_context._split_prompt, prompts.question_block
    assistant = "You are a helpful assistant."

    def instruction(style: str) -> str:  # the style's words in docqa's own system prompt, the assistant line cut off
        system = prompts.system(style)
        assert system.startswith(assistant + " "), "docqa's system prompt changed: update this patch"
        return system.removeprefix(assistant + " ")

    def split_prompt(gen, documents, style=prompts.DEFAULT_STYLE):  # ask() passes the request's style here first
        asked["style"] = style
        prefix, after = split(gen, documents, style)
        system = prompts.system(style)
        assert prefix.count(system) == 1, "the chat template changed: the system turn is not where it was"
        return prefix.replace(system, assistant), after

    def question_block(question, length_hint=None):
        said, asked_text = instruction(asked["style"]), block(question, length_hint)
        return f"{said}\n{asked_text}" if arm == "before" else f"{asked_text}\n{said}"

    long_context._split_prompt = split_prompt
    prompts.question_block = question_block


def run(args: argparse.Namespace) -> None:
    patch(args.arm)
    import docqa
    from docqa.generators import GeneratorConfig

    try:
        _, rows = docqa.evaluate(leval=args.leval, strategies=["long-context"], out=args.out, root=args.root,
                                 model=args.model, generator=GeneratorConfig(threads=args.threads))
    except docqa.DocQAError as e:  # a missing set, an unknown model: one line, as docqa's own commands say it
        sys.exit(f"error: {e}")
    print(f"long-context ({args.arm}): F1 {100 * rows[0]['f1']:.1f} over {rows[0]['questions']} questions")


def load(*names: str, strategy: str | None = None) -> dict[tuple[str, str], dict]:
    """Scored records keyed by (question, reference): a subset file renumbers documents, so ids differ. ``strategy``
    picks one row of a file that holds several."""
    out: dict[tuple[str, str], dict] = {}
    for name in names:
        for line in (PAIRED / f"{name}.jsonl").read_text().splitlines():
            r = json.loads(line)
            if r.get("error") or not r.get("references") or (strategy and r.get("strategy") != strategy):
                continue
            key = (r["question"], r["references"][0])
            assert key not in out, key
            out[key] = r
    return out


def score(r: dict) -> float:
    return 100 * (r["metrics"][r.get("metric") or "f1"] or 0.0)


def measure() -> dict:
    report: dict = {"arms": [], "against_li": []}
    for name in dict.fromkeys(s for s, _ in RECORDS):
        control = load(*RECORDS[(name, "system")])
        keys = sorted(control)
        for arm in ARMS:
            if (name, arm) not in RECORDS:
                continue
            recs = load(*RECORDS[(name, arm)])
            assert set(recs) == set(control), (name, arm, len(recs), len(control))
            entry = {"set": name, "arm": arm, "questions": len(keys),
                     "f1": statistics.fmean(score(recs[k]) for k in keys),
                     "prefills": sum(recs[k]["ttft_s"] > PREFILLED_TTFT_S for k in keys),
                     "documents": len({recs[k]["document"] for k in keys}),
                     "s_per_question": statistics.fmean(recs[k]["latency_s"] for k in keys),
                     "s_total": sum(recs[k]["latency_s"] for k in keys),
                     "words_p50": statistics.median(len(recs[k]["answer"].split()) for k in keys),
                     "same_answers": sum(recs[k]["answer"] == control[k]["answer"] for k in keys), "by_style": {}}
            if arm != "system":
                d = paired([score(control[k]) for k in keys], [score(recs[k]) for k in keys])
                entry["delta"], entry["delta_text"] = d.as_dict(), str(d)
                for style in sorted({control[k]["style"] for k in keys}):
                    ks = [k for k in keys if control[k]["style"] == style]
                    d = paired([score(control[k]) for k in ks], [score(recs[k]) for k in ks])
                    entry["by_style"][style] = {"questions": len(ks), "delta": d.as_dict(), "delta_text": str(d)}
            report["arms"].append(entry)
        li = load(*RECORDS[(name, "li")])
        assert set(li) == set(control), (name, "li", len(li))
        d = paired([score(li[k]) for k in keys], [score(control[k]) for k in keys])
        report["against_li"].append({"set": name, "questions": len(keys),
                                     "li_f1": statistics.fmean(score(li[k]) for k in keys),
                                     "li_s_per_question": statistics.fmean(li[k]["latency_s"] for k in keys),
                                     "f1": statistics.fmean(score(control[k]) for k in keys),
                                     "delta": d.as_dict(), "delta_text": str(d)})
    return report


def table(args: argparse.Namespace) -> None:
    report = measure()
    print("| set | arm | F1 | Δ against the style in the system turn [95 % CI], W / L / T | by style | "
          "same answers | prefills | s a question | s in all |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in report["arms"]:
        styles = "; ".join(f"{s} ({v['questions']}): {v['delta_text']}" for s, v in r["by_style"].items()) or "—"
        print(f"| {r['set']} ({r['questions']}) | {r['arm']} | {r['f1']:.1f} | {r.get('delta_text', '—')} | {styles} | "
              f"{r['same_answers']} | {r['prefills']} ({r['documents']} documents) | {r['s_per_question']:.1f} | "
              f"{r['s_total']:.0f} |")
    print("\n| set | long-context (style in the system turn) | llama-index's engine (s a question) | "
          "Δ [95 % CI], W / L / T |")
    print("|---|---|---|---|")
    for r in report["against_li"]:
        print(f"| {r['set']} ({r['questions']}) | {r['f1']:.1f} | {r['li_f1']:.1f} ({r['li_s_per_question']:.1f}) | "
              f"{r['delta_text']} |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="one arm over an L-Eval set")
    r.add_argument("--leval", type=Path, required=True)
    r.add_argument("--arm", choices=ARMS, required=True)
    r.add_argument("--model", default="qwen2.5-coder-1.5b")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--root", type=Path, default=ROOT / "benchmarks" / "out" / "indexes")
    r.add_argument("--threads", type=int, default=2)
    t = sub.add_parser("table", help="the table from the recorded arms")
    t.add_argument("--json", type=Path)
    args = ap.parse_args()
    run(args) if args.command == "run" else table(args)


if __name__ == "__main__":
    main()
