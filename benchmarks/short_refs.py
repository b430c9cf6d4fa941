"""Short references: scientific QA's questions whose reference is one to four words, asked in the set's style or in
the short style.

    .venv/bin/python benchmarks/short_refs.py --write-subset /tmp/short/scientific_qa.jsonl   # the subset file
    .venv/bin/docqa eval --leval /tmp/short/scientific_qa.jsonl --style sentence|short ...        # one run per arm
    .venv/bin/python benchmarks/short_refs.py [--json benchmarks/results/short_refs.json]          # the table

Why: `docqa eval` picks one answer style per question set from its references' median length (scientific QA:
sentence, median 10 words), and L-Eval's length hint is not given for references of up to four words (a small model
echoed "2 words"), so 59 of scientific QA's 160 scored questions ("Yes", "English", "CNN") were asked for a sentence.
The subset keeps those questions (every document that has one); its runs name the style explicitly (the subset's own
median would pick short for both arms). Arms, records in benchmarks/results/paired/short-*-sci-qwen15.jsonl:

- ``sentence``: as eval asked them before (the set's style, no hint); rag and long-context in one run
  (``--strategies rag,long-context:cache_prefix=true``), auto and summarize in runs of their own;
- ``short``: the short style, no hint — what eval asks now (docqa/eval/runner.py ``question_style``);
- ``hint``: the set's style with the hint "Answer in about N words." for them too (an alternative, not adopted);
- llama-index's default engine on the subset (``llamaindex_rag.py``), asked as before: it has no styles.

Every other question of the set is asked exactly as before (its reference is longer than four words: same style,
same hint, same prompt), so the whole set's difference is the subset's, with zeros elsewhere. Against llama-index over
all 160, each question's pair comes from one machine: the subset's from these runs, the others from the full-set
records of "The length hint reworded, every row".
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from docqa.eval.metrics import METRICS  # noqa: E402
from docqa.eval.paired import paired  # noqa: E402
from docqa.prompts import SHORT_MAX_WORDS  # noqa: E402

PAIRED = ROOT / "benchmarks" / "results" / "paired"
SOURCE = ROOT.parent / "shared" / "data" / "leval" / "scientific_qa.jsonl"
LC = "long-context:cache_prefix=true"
# row -> {arm: (records file, strategy label)}
ARMS = {
    "rag": {"sentence": ("short-A-sci-qwen15", "rag"), "short": ("short-S-sci-qwen15", "rag"),
            "hint": ("short-H-sci-qwen15", "rag")},
    "long-context": {"sentence": ("short-A-sci-qwen15", LC), "short": ("short-S-sci-qwen15", LC),
                     "hint": ("short-H-sci-qwen15", LC)},
    "auto": {"sentence": ("short-autoA-sci-qwen15", "auto"), "short": ("short-autoS-sci-qwen15", "auto")},
    "summarize": {"sentence": ("short-sumA-sci-qwen15", "summarize"), "short": ("short-sumS-sci-qwen15", "summarize")},
}
LI = ("short-li-sci-qwen15", "li-default")
# The full set's records (2026-12-06, Xeon): row -> (file, strategy, answer field)
FULL = {"rag": ("hint2-auto-qwen15-sci", "auto", "rag_answer"),
        "auto": ("hint2-auto-qwen15-sci", "auto", "answer"),
        "long-context": ("hint-instruction-lc-qwen15-sci", "long-context", "answer"),
        "summarize": ("hint2-summarize-qwen15-sci", "summarize", "answer"),
        "li": ("hint2-li-sci-qwen15", "li-default", "answer")}


def is_short(reference: str) -> bool:
    return len(reference.split()) <= SHORT_MAX_WORDS


def write_subset(path: Path) -> int:
    """scientific QA's documents that have a short-reference question, with those questions alone."""
    rows = []
    for line in SOURCE.read_text().splitlines():
        r = json.loads(line)
        keep = [(q, a) for q, a in zip(r["instructions"], r["outputs"], strict=True) if is_short(a)]
        if keep:
            rows.append({**r, "instructions": [q for q, _ in keep], "outputs": [a for _, a in keep]})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return sum(len(r["instructions"]) for r in rows)


def load(name: str, strategy: str, field: str = "answer") -> dict[tuple[str, str], dict]:
    """Records keyed by (question, reference): the subset renumbers documents, so ids differ from the full set's."""
    out = {}
    for line in (PAIRED / f"{name}.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["strategy"] != strategy or r.get("error") or not r.get("references"):
            continue
        metric = r.get("metric") or "f1"
        score = 100 * METRICS.get(metric)(r[field], r["references"])
        if field == "answer":  # the re-score must reproduce the run's own
            assert abs(score - 100 * r["metrics"][metric]) < 1e-6, r["id"]
        key = (r["question"], r["references"][0])
        assert key not in out, key
        out[key] = {"score": score, "seconds": r["latency_s"], "words": len(r[field].split()), "style": r.get("style")}
    return out


def measure() -> dict:
    report: dict = {"rows": [], "set": [], "against_li": []}
    full = {row: load(*spec) for row, spec in FULL.items()}
    short_keys = {k for k in full["li"] if is_short(k[1])}
    li_short = load(*LI)
    assert set(li_short) == short_keys, (len(li_short), len(short_keys))
    for row, arms in ARMS.items():
        runs = {arm: load(*spec) for arm, spec in arms.items()}
        base = runs["sentence"]
        assert set(base) == short_keys, (row, len(base))
        for arm, recs in runs.items():
            assert set(recs) == short_keys, (row, arm)
            entry = {"row": row, "arm": arm, "questions": len(recs),
                     "f1": statistics.fmean(r["score"] for r in recs.values()),
                     "words_p50": statistics.median(r["words"] for r in recs.values()),
                     "s_per_question": statistics.fmean(r["seconds"] for r in recs.values())}
            if arm != "sentence":
                keys = sorted(recs)
                d = paired([base[k]["score"] for k in keys], [recs[k]["score"] for k in keys])
                entry.update(delta=d.as_dict(), delta_text=str(d))
            report["rows"].append(entry)
        # The whole set: the subset's differences, zero on the questions asked as before.
        keys = sorted(full[row])
        before = [base[k]["score"] if k in short_keys else 0.0 for k in keys]
        after = [runs["short"][k]["score"] if k in short_keys else 0.0 for k in keys]
        d = paired(before, after)
        report["set"].append({"row": row, "questions": len(keys), "delta": d.as_dict(), "delta_text": str(d)})
        # Against llama-index over the whole set, each pair from one machine and code.
        for arm in ("sentence", "short"):
            mine = [runs[arm][k]["score"] if k in short_keys else full[row][k]["score"] for k in keys]
            theirs = [li_short[k]["score"] if k in short_keys else full["li"][k]["score"] for k in keys]
            d = paired(theirs, mine)
            report["against_li"].append({"row": row, "arm": arm, "f1": statistics.fmean(mine),
                                         "li_f1": statistics.fmean(theirs), "questions": len(keys),
                                         "delta": d.as_dict(), "delta_text": str(d)})
    report["li_subset_f1"] = statistics.fmean(r["score"] for r in li_short.values())
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write-subset", type=Path, help="write the short-reference subset of scientific QA here")
    ap.add_argument("--json", type=Path, help="write the table here")
    args = ap.parse_args()
    if args.write_subset:
        print(f"{write_subset(args.write_subset)} questions → {args.write_subset}")
        return
    report = measure()
    print("\nscientific QA, the questions with a reference of up to four words\n")
    print("| row | arm | F1 | Δ against the set's style [95 % CI], W / L / T | words p50 | s a question |")
    print("|---|---|---|---|---|---|")
    for r in report["rows"]:
        print(f"| {r['row']} | {r['arm']} | {r['f1']:.1f} | {r.get('delta_text', '—')} | {r['words_p50']:g} | "
              f"{r['s_per_question']:.1f} |")
    print(f"\nllama-index's default engine on them: {report['li_subset_f1']:.1f}\n\nthe whole set (short style)\n")
    for r in report["set"]:
        print(f"- {r['row']}: {r['delta_text']} over {r['questions']}")
    print("\nagainst llama-index's default engine, whole set\n")
    for r in report["against_li"]:
        print(f"- {r['row']} ({r['arm']}): {r['f1']:.1f} − {r['li_f1']:.1f}: {r['delta_text']} over {r['questions']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
