"""Every row of the comparison under each length-hint wording: L-Eval's sentence (before) against docqa's (after).

    .venv/bin/python benchmarks/hint_rows.py [--json benchmarks/results/hint_rows.json]

Reads the committed records in benchmarks/results/paired/ (one eval run per row and set; see RESULTS.md, "The length
hint reworded, every row") and prints, per set, each row's F1 before → after with the paired difference, how many
answers echo a length request, and seconds a question; then, within each wording, every docqa row against
llama-index's default engine and against the best docqa row. rag is auto's first step (``rag_answer``: auto answers
with rag unless the reader declines, so its run holds rag's answer to every question); its seconds are auto's less
the long-context call. llama-index's before is a control run on the same machine and code (``--wording leval``).
Every answer is re-scored from its text by docqa's metric, and the re-score must reproduce the record's own.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hint_wording import ECHO  # noqa: E402

from docqa.eval.metrics import METRICS  # noqa: E402
from docqa.eval.paired import paired  # noqa: E402

PAIRED = ROOT / "benchmarks" / "results" / "paired"
SETS = {"financial QA": "fin", "scientific QA": "sci"}
# row -> (file before, file after, answer field); {s} is the set's tag
ROWS = {
    "rag": ("handover-route-qwen15-{s}", "hint2-auto-qwen15-{s}", "rag_answer"),
    "auto": ("handover-route-qwen15-{s}", "hint2-auto-qwen15-{s}", "answer"),
    "long-context": ("hint-leval-lc-qwen15-{s}", "hint-instruction-lc-qwen15-{s}", "answer"),
    "summarize": ("second-look-summarize-qwen15-{s}", "hint2-summarize-qwen15-{s}", "answer"),
    "llama-index's default": ("hint2-li-leval-{s}-qwen15", "hint2-li-{s}-qwen15", "answer"),
}
STRATEGY = {"rag": "auto", "auto": "auto", "long-context": "long-context", "summarize": "summarize",
            "llama-index's default": "li-default"}


def load(name: str, row: str, field: str) -> dict[str, dict] | None:
    path = PAIRED / f"{name}.jsonl"
    if not path.exists():
        return None
    out = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        if r["strategy"].split(":")[0] != STRATEGY[row] or r.get("error") or not r.get("references"):
            continue
        metric = r.get("metric") or "f1"
        if field == "answer":  # the re-score must reproduce the run's own
            assert abs(METRICS.get(metric)(r["answer"], r["references"]) - r["metrics"][metric]) < 1e-9, r["id"]
        text = r[field]
        seconds = r["latency_s"]
        if field == "rag_answer" and r.get("route") not in (None, "rag"):
            # auto's record before long_context_s was kept: its rag step's seconds are not in it
            seconds = None if r.get("long_context_s") is None else seconds - r["long_context_s"]
        out[r["id"]] = {"text": text, "score": 100 * METRICS.get(metric)(text, r["references"]),
                        "seconds": seconds, "echo": bool(ECHO.search(text))}
    return out


def _mean_seconds(answers) -> float | None:
    seconds = [a["seconds"] for a in answers]
    return None if None in seconds else statistics.fmean(seconds)


def _s(x: float | None) -> str:
    return "—" if x is None else f"{x:.1f}"


def _against(rows: dict[str, dict]) -> dict:
    """Each docqa row against llama-index's default engine and against the best docqa row, all of one wording."""
    docqa_rows = [r for r in rows if r != "llama-index's default"]
    best = max(docqa_rows, key=lambda r: statistics.fmean(a["score"] for a in rows[r].values()), default=None)
    out = []
    for base in ("llama-index's default", best):
        if base not in rows:
            continue
        for row in docqa_rows:
            if row == base:
                continue
            ids = sorted(set(rows[row]) & set(rows[base]))
            d = paired([rows[base][i]["score"] for i in ids], [rows[row][i]["score"] for i in ids])
            out.append({"row": row, "against": base, "questions": len(ids), "delta": d.as_dict(),
                        "delta_text": str(d)})
    return {"best": best, "pairs": out}


def measure() -> dict:
    report: dict = {}
    pooled: dict[str, tuple[list[float], list[float]]] = {}
    for set_name, tag in SETS.items():
        rows, after_rows, before_rows = [], {}, {}
        for row, (before_name, after_name, field) in ROWS.items():
            before = load(before_name.format(s=tag), row, field)
            after = load(after_name.format(s=tag), row, field)
            if after is None:
                rows.append({"row": row, "missing": after_name.format(s=tag)})
                continue
            after_rows[row] = after
            if before is not None:
                before_rows[row] = before
            entry = {"row": row, "questions": len(after),
                     "f1_after": statistics.fmean(a["score"] for a in after.values()),
                     "echo_after": sum(a["echo"] for a in after.values()),
                     "s_after": _mean_seconds(after.values())}
            if before is not None:
                ids = sorted(set(before) & set(after))
                assert len(ids) == len(after) == len(before), (row, set_name, len(before), len(after))
                d = paired([before[i]["score"] for i in ids], [after[i]["score"] for i in ids])
                b, a = pooled.setdefault(row, ([], []))
                b.extend(before[i]["score"] for i in ids)
                a.extend(after[i]["score"] for i in ids)
                echoed = [i for i in ids if before[i]["echo"]]
                entry.update(f1_before=statistics.fmean(before[i]["score"] for i in ids),
                             echo_before=len(echoed), delta=d.as_dict(), delta_text=str(d),
                             delta_echoed=statistics.fmean(after[i]["score"] - before[i]["score"] for i in echoed)
                             if echoed else None,
                             s_before=_mean_seconds(before[i] for i in ids))
            rows.append(entry)
        against = {"after": _against(after_rows), "before": _against(before_rows)}
        report[set_name] = {"rows": rows, "against": against}
    # Both sets' questions as one sample: does a row gain across kinds of set, not on one alone?
    report["both sets"] = {row: {"questions": len(b), "delta": (d := paired(b, a)).as_dict(), "delta_text": str(d)}
                           for row, (b, a) in pooled.items()}
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="write the table here")
    args = ap.parse_args()
    report = measure()
    for set_name, part in report.items():
        if set_name == "both sets":
            print("\nboth sets as one sample, after − before\n")
            for row, p in part.items():
                print(f"- {row}: {p['delta_text']} over {p['questions']}")
            continue
        print(f"\n{set_name}\n")
        print("| row | F1 before → after | Δ [95 % CI], W / L / T | echoes before → after | Δ on the echoed | "
              "s a question before → after |")
        print("|---|---|---|---|---|---|")
        for r in part["rows"]:
            if "missing" in r:
                print(f"| {r['row']} | not run yet ({r['missing']}) | | | | |")
            elif "delta" not in r:
                print(f"| {r['row']} | {r['f1_after']:.1f} | | {r['echo_after']} | | {_s(r['s_after'])} |")
            else:
                echoed = "—" if r["delta_echoed"] is None else f"{r['delta_echoed']:+.1f} ({r['echo_before']})"
                print(f"| {r['row']} | {r['f1_before']:.1f} → {r['f1_after']:.1f} | {r['delta_text']} | "
                      f"{r['echo_before']} → {r['echo_after']} | {echoed} | {_s(r['s_before'])} → {_s(r['s_after'])} |")
        for when, wording in (("before", "L-Eval's sentence"), ("after", "docqa's wording")):
            part_ = part["against"][when]
            print(f"\n{when} ({wording}), row − base (best docqa row: {part_['best']})\n")
            for a in part_["pairs"]:
                print(f"- {a['row']} − {a['against']}: {a['delta_text']} over {a['questions']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
