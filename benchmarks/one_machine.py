"""Every row of issue #25's comparison on one machine and one code: both question sets, each row's F1, its paired
difference to llama-index's default engine and to the best row, and what a question costs.

    .venv/bin/python benchmarks/one_machine.py [--json benchmarks/results/one_machine.json]

Reads the committed records in benchmarks/results/paired/ named in ``ROWS`` (each an eval run, or a benchmark
script's, on the AMD EPYC of 2026-12-06/07 with the same product code; RESULTS.md says which run made each). A row
missing a record file is skipped with a line saying so. Every answer is re-scored from its text by docqa's metric and
must reproduce the record's own score; questions are paired by their text and reference (52 and 160 scored).
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

PAIRED = ROOT / "benchmarks" / "results" / "paired"
BASE = "llama-index's default engine"
# set -> row -> [(record file, strategy label in it)]; a row of several files is their union (questions disjoint)
ROWS: dict[str, dict[str, list[tuple[str, str]]]] = {
    "financial QA": {
        "rag": [("topk-fin-qwen15", "rag")],
        "auto": [("onemachine-auto-summarize-fin-qwen15", "auto")],
        "long-context": [("prefix-style-lc-fin-qwen15", "long-context")],
        "summarize": [("onemachine-auto-summarize-fin-qwen15", "summarize")],
        BASE: [("prefix-li-fin-qwen15", "li-default")],
        # benchmarks/lc_past_window.py: the eight transcripts as one corpus of 40 499 tokens, past the 32 k window
        "long-context past the window (all eight transcripts)": [("onemachine-lc-past-window-fin-qwen15",
                                                                  "long-context")],
        "rag over all eight transcripts": [("onemachine-rag-all-eight-fin-qwen15", "rag")],
        "long-context over all eight, top document within 8 k (--truncate)": [
            ("onemachine-lc-truncate8k-all-eight-fin-qwen15", "long-context:max_context=8192:truncate=true")],
        "auto over all eight, its long-context step within 8 k (--truncate)": [
            ("onemachine-auto-truncate8k-all-eight-fin-qwen15", "auto:max_context=8192:truncate=true")],
    },
    "scientific QA": {
        "rag": [("topk-sci-qwen15", "rag")],
        "auto": [("prefix-auto-sci-qwen15", "auto")],
        "long-context": [("prefix-style-lc-sci-qwen15", "long-context")],
        "summarize": [("onemachine-summarize-sci-qwen15", "summarize")],
        BASE: [("prefix-li-sci-long-qwen15", "li-default"), ("short-li-sci-qwen15", "li-default")],
        "oracle retrieval, top 4 (a ceiling)": [("onemachine-oracle-top4-sci-qwen15", "rag")],
    },
}


def load(files: list[tuple[str, str]]) -> dict[tuple[str, str], dict] | None:
    out: dict[tuple[str, str], dict] = {}
    for name, strategy in files:
        path = PAIRED / f"{name}.jsonl"
        if not path.is_file():
            return None
        for line in path.read_text().splitlines():
            r = json.loads(line)
            if r["strategy"] != strategy or r.get("error"):
                continue
            metric = r.get("metric") or "f1"
            again = METRICS.get(metric)(r["answer"], r["references"])
            if abs(again - r["metrics"][metric]) > 1e-9:
                raise SystemExit(f"{path.name} {r['id']}: the record says {metric} {r['metrics'][metric]}, "
                                 f"re-scored {again}")
            # A subset file (benchmarks/short_refs.py) renumbers its documents, so ids differ: keyed by the question
            # and its reference instead, which no two scored questions share.
            key = (r["question"], r["references"][0])
            if key in out:
                raise SystemExit(f"{path.name}: two records of {key}: cannot pair by question and reference")
            out[key] = r
    return out


def table(set_name: str, rows: dict[str, list[tuple[str, str]]]) -> list[dict]:
    runs = {}
    for row, files in rows.items():
        got = load(files)
        if got is None:
            print(f"  ({set_name}: {row} skipped, a record file is missing: {', '.join(f for f, _ in files)})")
            continue
        runs[row] = got
    if BASE not in runs or len(runs) < 2:
        print(f"  ({set_name}: nothing to compare)")
        return []
    ids = sorted(set.intersection(*(set(r) for r in runs.values())))
    score = {row: [100 * r[i]["metrics"][r[i].get("metric") or "f1"] for i in ids] for row, r in runs.items()}
    # The best row is the best strategy on the question's own document: not a ceiling, not a corpus of all eight
    strategies = [row for row in runs if row != BASE and "oracle" not in row and "all eight" not in row]
    best = max(strategies, key=lambda row: statistics.mean(score[row]))
    out = []
    for row, r in runs.items():
        f1 = statistics.mean(score[row])
        entry = {"set": set_name, "row": row, "questions": len(ids), "f1": round(f1, 1),
                 "s_per_question": round(statistics.mean(r[i]["latency_s"] for i in ids), 1),
                 "prompt_tokens": None}
        tokens = [r[i]["prompt_tokens"] for i in ids if r[i].get("prompt_tokens")]
        if len(tokens) == len(ids):  # llama-index's records do not count them
            entry["prompt_tokens"] = round(statistics.mean(tokens))
        for name, other in (("vs_llamaindex", BASE), ("vs_best", best)):
            if row != other and other in score:
                p = paired(score[other], score[row])
                entry[name] = {"delta": round(p.diff, 1), "ci": [round(p.ci_low, 1), round(p.ci_high, 1)],
                               "wins": p.wins, "losses": p.losses, "ties": p.ties}
        entry["best"] = row == best
        out.append(entry)
    return out


def fmt(d: dict | None) -> str:
    if not d:
        return "—"
    return f"{d['delta']:+.1f} [{d['ci'][0]:+.1f}, {d['ci'][1]:+.1f}], {d['wins']} / {d['losses']} / {d['ties']}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    everything = []
    for set_name, rows in ROWS.items():
        result = table(set_name, rows)
        everything.extend(result)
        n = result[0]["questions"] if result else 0
        print(f"\n| {set_name} ({n}) | token F1 | − llama-index's engine [95 % CI], W / L / T | − the best row | "
              f"s a question | prompt tokens |")
        print("|---|---:|---|---|---:|---:|")
        for e in result:
            name = f"**{e['row']}**" if e["best"] else e["row"]
            print(f"| {name} | {e['f1']:.1f} | {fmt(e.get('vs_llamaindex'))} | {fmt(e.get('vs_best'))} | "
                  f"{e['s_per_question']} | {'—' if e['prompt_tokens'] is None else format(e['prompt_tokens'], ',')} |")
    if args.json:
        args.json.write_text(json.dumps(everything, indent=2) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
