"""A long-context prefix kept across processes: what a later `docqa ask` costs with it, and what rag costs without.

Each step is a new `docqa ask` process, as a user at a terminal runs them, on a copy of one index (its saved prefixes
are removed first, so the first step prefills): long-context prefilling and saving (--cache-prefix), long-context on
another question reading the saved prefix, auto on a third question (kept prefix: long-context at once), then rag
and auto without --cache-prefix on that question. Wall seconds and peak resident memory are the process's own
(/usr/bin/time), the answer's seconds docqa's.

    python benchmarks/kept_prefix.py --index leval-financial_qa-doc04 --root /tmp/sl/indexes \\
        --questions "Q1" "Q2" "Q3"

Writes benchmarks/results/kept_prefix.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOCQA = Path(sys.executable).with_name("docqa")


def steps(questions: list[str]) -> list[tuple[str, str, list[str]]]:
    q1, q2, q3 = questions
    return [("long-context, prefilled and saved", q1, ["--strategy", "lc", "--cache-prefix"]),
            ("long-context, saved prefix", q2, ["--strategy", "lc", "--cache-prefix"]),
            ("auto, saved prefix", q3, ["--strategy", "auto", "--cache-prefix"]),
            ("rag", q3, ["--strategy", "rag"]),
            ("auto, nothing kept", q3, ["--strategy", "auto"])]


def run(index: str, root: Path, question: str, args: list[str], threads: int) -> dict:
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        t0 = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", t.name, str(DOCQA), "ask", question, "--index", index,
                            "--root", str(root), "--threads", str(threads), "--json", *args],
                           capture_output=True, text=True)
        wall = time.perf_counter() - t0
        rss_kb = int((t.read().strip().splitlines() or ["0"])[-1] or 0)
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["?"])[-1]}
    a = json.loads(p.stdout)
    d = a["details"]
    return {"wall_s": round(wall, 1), "answer_s": round(a["timings"].get("total", 0.0), 1),
            "peak_rss_gb": round(rss_kb / 1e6, 2), "prefix": d.get("prefix"), "prefix_file": d.get("prefix_file"),
            "route": d.get("route"), "prompt_tokens": a["tokens"].get("prompt"), "answer": a["answer"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--index", required=True)
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--questions", nargs=3, required=True, metavar="Q")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    source = args.root / args.index
    if not source.is_dir():
        ap.error(f"no index {args.index!r} under {args.root}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(source, root / args.index)
        for kept in (root / args.index).glob("v*/prefix"):
            shutil.rmtree(kept)
        rows = []
        for name, q, extra in steps(args.questions):
            rows.append({"step": name, **run(args.index, root, q, extra, args.threads)})
            saved = sum(f.stat().st_size for f in (root / args.index).glob("v*/prefix/*"))
            rows[-1]["saved_mb"] = round(saved / 1e6)
    print("| step | whole command, s | answer, s | peak RSS, GB | prefix | route |\n|---|---:|---:|---:|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['step']} | error: {r['error']} |||||")
            continue
        prefix = f"{r['prefix']}{' (' + r['prefix_file'] + ')' if r['prefix_file'] else ''}" if r["prefix"] else "–"
        print(f"| {r['step']} | {r['wall_s']} | {r['answer_s']} | {r['peak_rss_gb']} | {prefix} "
              f"| {r['route'] or '–'} |")
    out = HERE / "results" / "kept_prefix.json"
    out.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d"),
                               "index": args.index, "threads": args.threads, "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
