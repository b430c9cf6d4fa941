"""A whole one-question `docqa ask`, as a user runs it in a terminal: seconds from the command to its output and peak
memory, with the question embedded by sentence-transformers or in numpy, and the prefill on llama.cpp, handed over to
transformers (forced), or auto (a one-question ask hands a prompt over only where that pays for loading transformers).

    .venv/bin/python benchmarks/ask_startup.py [--repeats 3] [--index examples] [--json OUT.json]

Each configuration is a new process (`docqa ask Q --index … --json`), run in turn with the others ``--repeats`` times so
that a slow spell of the machine spreads over all of them; the table gives the median wall time, the median of the
answer's own ``total`` timing (what the strategy took once the models were loaded), the peak resident memory (the
child's ru_maxrss) and whether every run gave the same answer and passages. The index is built from examples/docs with
the default models if it is missing. Writes benchmarks/results/ask_startup.json (``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "What is the nightly hotel cap in most cities?"
CONFIGS = {  # label -> environment
    "queries in numpy, prefill auto (the default)": {"DOCQA_QUERY_EMBED": "auto", "DOCQA_PREFILL": "auto"},
    "queries in numpy, prefill llama.cpp": {"DOCQA_QUERY_EMBED": "auto", "DOCQA_PREFILL": "llama.cpp"},
    "queries in numpy, prefill handed over (forced)": {"DOCQA_QUERY_EMBED": "auto", "DOCQA_PREFILL": "transformers"},
    "queries by sentence-transformers, prefill handed over (forced)": {"DOCQA_QUERY_EMBED": "sentence-transformers",
                                                                       "DOCQA_PREFILL": "transformers"},
    "queries by sentence-transformers, prefill llama.cpp": {"DOCQA_QUERY_EMBED": "sentence-transformers",
                                                            "DOCQA_PREFILL": "llama.cpp"},
}


def run_once(cmd: list[str], env: dict[str, str]) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ, **env})
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"error: {' '.join(cmd)} failed with {env}")
    answer = json.loads(out)
    return {"wall_s": wall, "peak_rss_gb": usage.ru_maxrss / 2**20, "answer_s": answer["timings"]["total"],
            "answer": answer["answer"], "passages": [(s["file"], s.get("chunk_id")) for s in answer["sources"]]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--index", default="examples")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "ask_startup.json")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    import docqa
    from docqa.environment import cpu_name

    docqa_bin = str(Path(sys.executable).parent / "docqa")
    if args.index not in docqa.list_indexes():
        subprocess.run([docqa_bin, "ingest", str(ROOT / "examples" / "docs"), "--index", args.index], check=True)
    cmd = [docqa_bin, "ask", QUESTION, "--index", args.index, "--json"]
    runs: dict[str, list[dict]] = {label: [] for label in CONFIGS}
    for _ in range(args.repeats):
        for label, env in CONFIGS.items():
            runs[label].append(run_once(cmd, env))
    rows = []
    for label, rs in runs.items():
        rows.append({"config": label, "wall_s": statistics.median(r["wall_s"] for r in rs),
                     "answer_s": statistics.median(r["answer_s"] for r in rs),
                     "peak_rss_gb": max(r["peak_rss_gb"] for r in rs),
                     "same_answer": len({(r["answer"], json.dumps(r["passages"])) for r in rs}) == 1,
                     "answer": rs[0]["answer"], "passages": rs[0]["passages"], "walls": [r["wall_s"] for r in rs]})
    print(f"{'configuration':55} {'whole s':>8} {'answer s':>9} {'peak GB':>8}  answer")
    for r in rows:
        print(f"{r['config']:55} {r['wall_s']:8.2f} {r['answer_s']:9.2f} {r['peak_rss_gb']:8.2f}  {r['answer'][:60]}")
    meta = {"date": time.strftime("%Y-%m-%d"), "cpu": cpu_name(), "cores": os.cpu_count(), "question": QUESTION,
            "repeats": args.repeats, "index": args.index}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
