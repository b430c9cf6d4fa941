"""What summarize's second look (long-context when the chain declines) changed, from one eval run's records.

    .venv/bin/docqa eval --leval SET.jsonl --strategies summarize --out OUT ...
    .venv/bin/python benchmarks/second_look.py OUT [OUT ...] [--json benchmarks/results/second_look.json]

(OUT: the eval folder, or its results.jsonl.) A summarize record whose chain declined keeps the chain's answer
(``chain_answer``) beside the final one and the seconds of the long-context call (``long_context_s``). Decoding is
greedy and the chain's prompts do not depend on what follows them, so the same run without the second look would
have answered ``chain_answer`` on exactly those questions and the same answer elsewhere: both arms are scored from
one run, paired by question (10 000 bootstrap resamples), with no run-to-run noise between them. Seconds without the
second look are the record's latency less its long-context call.
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


def _records(run: Path) -> list[dict]:
    path = run if run.is_file() else run / "results.jsonl"
    out = []
    for line in path.read_text().splitlines():
        r = json.loads(line)
        if r["strategy"].split(":")[0] == "summarize" and not r.get("error") and r.get("references"):
            out.append(r)
    if not out:
        raise SystemExit(f"{path}: no answered summarize records with references")
    return out


def measure(run: Path) -> dict:
    rs = _records(run)
    metric = METRICS.get(rs[0].get("metric") or "f1")
    looked = [r for r in rs if r.get("route") == "long-context"]
    skipped = [r for r in rs if r.get("route") not in (None, "long-context")]
    # Both arms are re-scored from the records' texts; the final arm must reproduce the run's own scores.
    after = [100 * metric(r["answer"], r["references"]) for r in rs]
    for r, s in zip(rs, after, strict=True):
        assert abs(s - 100 * r["metrics"][r.get("metric") or "f1"]) < 1e-9, r["id"]
    ids = {r["id"] for r in looked}
    before = [100 * metric(r["chain_answer"], r["references"]) if r["id"] in ids else s
              for r, s in zip(rs, after, strict=True)]
    delta = paired(before, after)
    seconds = [r["latency_s"] for r in rs]
    without = [r["latency_s"] - (r.get("long_context_s") or 0.0) for r in rs]
    return {"run": str(run), "questions": len(rs), "second_looks": len(looked), "skipped": len(skipped),
            "f1_without": statistics.fmean(before), "f1_with": statistics.fmean(after),
            "delta": delta.as_dict(), "delta_text": str(delta),
            "s_without": statistics.fmean(without), "s_with": statistics.fmean(seconds),
            "second_look_s_mean": statistics.fmean([r["long_context_s"] for r in looked]) if looked else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--json", type=Path, help="write the rows here")
    args = ap.parse_args()
    rows = [measure(run) for run in args.runs]
    print("| run | questions | second looks | F1 without → with | Δ [95 % CI], W / L / T | s a question without → "
          "with | s a second look |")
    print("|---|---:|---:|---|---|---|---:|")
    for row in rows:
        print(f"| {Path(row['run']).name} | {row['questions']} | {row['second_looks']} | {row['f1_without']:.1f} → "
              f"{row['f1_with']:.1f} | {row['delta_text']} | {row['s_without']:.1f} → {row['s_with']:.1f} | "
              f"{row['second_look_s_mean']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
