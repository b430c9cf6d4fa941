"""A floor under the asked length: does holding the 1.5 B reader to half the words it was asked for help on both sets?

    .venv/bin/python benchmarks/length_floor.py run --leval SET.jsonl --strategy long-context|rag --out OUT \
        --root IDX --log benchmarks/results/paired/floor-SET-STRATEGY-qwen15.calls.jsonl [--no-exempt]
    cp OUT/results.jsonl benchmarks/results/paired/floor-SET-STRATEGY-qwen15.jsonl
    .venv/bin/python benchmarks/length_floor.py table [--json benchmarks/results/length_floor.json]

When a question says how long its answer should be ("Answer in about N words.", docqa's wording of L-Eval's length
hint), the reader often stops far short: financial QA's long-context answers run at a median 0.6 of their references'
words (19 of 52 under half), scientific QA's at 1.0 but with 27 of 160 under half, most of them a list cut to its
first item ("The dataset used is Europarl." where the reference names eight corpora). The arm is the ``min_tokens`` of
vLLM and ``min_new_tokens`` of transformers, counted in words (docqa/generators/base.py ``Floor``): until the answer
holds 0.5 x N words (``AskConfig.length_floor``, chosen before measuring, not swept), the end-of-generation and
control tokens and every token holding a line break (each style's stop starts with one) are banned, so the reader goes
on with its next most likely words; an answer that declines may end sooner.

``run`` runs ``docqa.evaluate`` exactly as ``docqa eval --leval SET --strategies STRATEGY`` does, with the llama.cpp
backend wrapped: every call docqa gives a floor is answered first without it (the control: docqa as it was) and, where
the floor binds on that answer, again with it, on the same prefix in the same process. Greedy decoding is the same up
to where the reader would have ended, so the arm is exactly docqa's answer with the floor (where the floor does not
bind, the two are the same answer). ``--no-exempt`` holds declines to the floor too: the first two runs (long-context
on both sets) were made so, with this script's own copy of the ban before docqa had a floor; ``table``'s "as built"
column gives their declines the control's answer, which is what docqa returns. The eval records hold the arm's
answers; ``--log`` holds, per call, the question's tail, the floor, the control's and the arm's text and seconds, so
``table`` pairs the two arms question by question on one machine and one code, and docqa's long-context with the
floor against llama-index's default engine (benchmarks/llamaindex_rag.py) on the same machine.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from docqa.eval.metrics import METRICS  # noqa: E402
from docqa.eval.paired import paired  # noqa: E402
from docqa.prompts import is_refusal  # noqa: E402
from docqa.strategies.base import AskConfig  # noqa: E402

PAIRED = ROOT / "benchmarks" / "results" / "paired"
FLOOR = AskConfig().length_floor
# llama-index's default engine on the same reader, machine (the Intel Xeon) and wording: rerun with this code
# (benchmarks/llamaindex_rag.py, no floor: llama-index's default), and the run of "The length hint reworded, every row"
LI = {"financial QA": ("floor-li-fin-qwen15", "hint2-li-fin-qwen15")}
HINT = re.compile(r"Answer in about (\d+) words\.")  # docqa/prompts.py with_length
# set label → {strategy: (arm records, calls log)}
RUNS = {
    "financial QA": {s: (f"floor-fin-{k}-qwen15", f"floor-fin-{k}-qwen15.calls") for s, k in
                     (("long-context", "lc"), ("rag", "rag"))},
    "scientific QA": {s: (f"floor-sci-{k}-qwen15", f"floor-sci-{k}-qwen15.calls") for s, k in
                      (("long-context", "lc"), ("rag", "rag"))},
}


def patch(log: Path, exempt: bool = True) -> None:
    """Wrap LlamaCppGenerator.generate: for a call given a floor (docqa passes one where a length was asked), the
    control without it, then, where the floor binds on the control's answer, the arm with it; both logged. With
    ``exempt`` False, answers that decline are held to the floor too (the first two runs: they were made with this
    script's own copy of the ban, before docqa had a floor, and held every answer)."""
    import dataclasses

    from docqa.generators import llamacpp

    original = llamacpp.LlamaCppGenerator.generate
    handle = log.open("a")

    def generate(self, prompt, max_new_tokens=128, *, floor=None, **kw):
        first = original(self, prompt, max_new_tokens, **kw)
        if floor is None:
            return first
        if not exempt:
            floor = dataclasses.replace(floor, exempt=None)
        tail = self.decode(prompt[-400:]) if not isinstance(prompt, str) else prompt[-2000:]
        hints = HINT.findall(tail[-300:])  # the question's own line, not a phrase inside the document
        row = {"tail": tail[-600:], "asked": int(hints[-1]) if hints else None, "floor": floor.words,
               "exempt": exempt, "control": first.text, "control_tokens": first.completion_tokens,
               "control_s": first.prefill_s + first.decode_s, "bound": floor.binds(first.text)}
        result = first
        if row["bound"]:
            t0 = time.perf_counter()
            result = original(self, prompt, max_new_tokens, floor=floor, **kw)
            row.update(arm_s=time.perf_counter() - t0)
        row.update(arm=result.text, arm_tokens=result.completion_tokens, arm_finish=result.finish_reason)
        handle.write(json.dumps(row) + "\n")
        handle.flush()
        return result

    llamacpp.LlamaCppGenerator.generate = generate


def run(args: argparse.Namespace) -> None:
    args.log.parent.mkdir(parents=True, exist_ok=True)
    args.log.unlink(missing_ok=True)
    patch(args.log, exempt=not args.no_exempt)
    import docqa
    from docqa.generators import GeneratorConfig

    try:
        _, rows = docqa.evaluate(leval=args.leval, strategies=[args.strategy], out=args.out, root=args.root,
                                 model=args.model, limit_docs=args.limit_docs,
                                 generator=GeneratorConfig(threads=args.threads))
    except docqa.DocQAError as e:
        sys.exit(f"error: {e}")
    print(f"{args.strategy} (floor {FLOOR}): F1 {100 * rows[0]['f1']:.1f} over {rows[0]['questions']} questions")


def _score(answer: str, r: dict) -> float:
    return 100 * METRICS.get(r["metric"])(answer, r["references"])


def measure() -> dict:
    report: dict = {"floor": FLOOR, "rows": []}
    for label, runs in RUNS.items():
        for strategy, (records_name, calls_name) in runs.items():
            rec_path, calls_path = PAIRED / f"{records_name}.jsonl", PAIRED / f"{calls_name}.jsonl"
            if not (rec_path.exists() and calls_path.exists()):
                continue
            records = [json.loads(x) for x in rec_path.read_text().splitlines()]
            calls = [json.loads(x) for x in calls_path.read_text().splitlines()]
            scored = [r for r in records if r.get("references") and r.get("metric")]
            control, arm, built, styles, bound, keys = [], [], [], [], [], []
            for r in scored:
                # the call that answered this record: its arm text is the record's answer, its tail the question's
                hits = [c for c in calls
                        if c["arm"].strip() == r["answer"].strip() and r["question"][-80:] in c["tail"]]
                if not hits:  # asked without a length (a short reference gets the short style instead): no floor
                    assert r["style"] == "short", ("no logged call for", r["id"])
                    hits = [{"control": r["answer"], "bound": False, "exempt": True}]
                c = hits[0]
                control.append(_score(c["control"], r))
                arm.append(_score(r["answer"], r))
                assert abs(arm[-1] - 100 * r["metrics"][r["metric"]]) < 1e-6, r["id"]
                # docqa as built lets an answer that declines end (Floor.exempt); a run that held every answer
                # (--no-exempt) differs from it exactly there, where docqa answers as the control did
                built.append(control[-1] if not c.get("exempt", False) and is_refusal(c["control"]) else arm[-1])
                styles.append(r["style"])
                bound.append(c["bound"])
                keys.append((r["question"].strip(), r["references"][0].strip()))
            d, b = paired(control, arm), paired(control, built)
            row = {"set": label, "strategy": strategy, "questions": len(arm), "bound": sum(bound),
                   "control_f1": statistics.fmean(control), "f1": statistics.fmean(arm), "delta": d.as_dict(),
                   "delta_text": str(d), "built_f1": statistics.fmean(built), "built_delta": b.as_dict(),
                   "built_text": str(b), "by_style": {},
                   "extra_s_when_bound": statistics.fmean(c["arm_s"] for c in calls if c["bound"]) if any(bound)
                   else 0.0,
                   # a hinted call's seconds after any cached prefix: the control's, and docqa's with the floor (one
                   # call: the arm's where the floor bound, else the control's)
                   "call_s": [statistics.fmean(c["control_s"] for c in calls),
                              statistics.fmean(c["arm_s"] if c["bound"] else c["control_s"] for c in calls)],
                   "words_p50": [statistics.median(len(c["control"].split()) for c in calls),
                                 statistics.median(len(c["arm"].split()) for c in calls)]}
            for style in sorted(set(styles)):
                idx = [i for i, s in enumerate(styles) if s == style]
                ds = paired([control[i] for i in idx], [arm[i] for i in idx])
                row["by_style"][style] = {"questions": len(idx), "bound": sum(bound[i] for i in idx),
                                          "delta_text": str(ds)}
            for name in LI.get(label, ()):
                if not (PAIRED / f"{name}.jsonl").exists():
                    continue
                li = {(r["question"].strip(), r["references"][0].strip()): 100 * r["metrics"][r["metric"]]
                      for r in map(json.loads, (PAIRED / f"{name}.jsonl").read_text().splitlines())}
                base = [li[k] for k in keys]
                row.setdefault("against_li", []).append(
                    {"records": name, "li_f1": statistics.fmean(base), "control": str(paired(base, control)),
                     "built": str(paired(base, built)), "built_delta": paired(base, built).as_dict()})
            report["rows"].append(row)
    return report


def table(args: argparse.Namespace) -> None:
    report = measure()
    print(f"| set | strategy | F1 as it is → floor {FLOOR} | Δ [95 % CI], W / L / T | answers under the floor | "
          "by style | docqa as built (declines exempt): F1, Δ | words p50 | s a hinted call |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in report["rows"]:
        styles = "; ".join(f"{s} ({v['questions']}, {v['bound']} under): {v['delta_text']}"
                           for s, v in r["by_style"].items())
        print(f"| {r['set']} | {r['strategy']} | {r['control_f1']:.1f} → {r['f1']:.1f} | {r['delta_text']} | "
              f"{r['bound']} / {r['questions']} | {styles} | {r['built_f1']:.1f}, {r['built_text']} | "
              f"{r['words_p50'][0]:.0f} → {r['words_p50'][1]:.0f} | {r['call_s'][0]:.1f} → {r['call_s'][1]:.1f} |")
    for r in report["rows"]:
        for a in r.get("against_li", []):
            print(f"\n{r['set']}, {r['strategy']} − llama-index's engine ({a['records']}: {a['li_f1']:.1f}): as it "
                  f"was {a['control']}; with the floor, as built {a['built']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="the control and the arm over an L-Eval set, in one process")
    r.add_argument("--leval", type=Path, required=True)
    r.add_argument("--strategy", choices=("long-context", "rag"), default="long-context")
    r.add_argument("--model", default="qwen2.5-coder-1.5b")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--root", type=Path, default=ROOT / "benchmarks" / "out" / "indexes")
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--limit-docs", type=int, help="the first N documents (a smoke run)")
    r.add_argument("--no-exempt", action="store_true", help="hold answers that decline to the floor too")
    r.add_argument("--log", type=Path, required=True, help="JSON Lines: each hinted call's control and arm")
    t = sub.add_parser("table", help="the paired table from the recorded runs")
    t.add_argument("--json", type=Path)
    args = ap.parse_args()
    {"run": run, "table": table}[args.command](args)


if __name__ == "__main__":
    main()
