"""torch threads for docqa's answers, on an idle machine and beside another busy process.

    .venv/bin/python benchmarks/threads.py [--questions 6]

Each setting runs in a fresh process: rag over the first questions of examples/ with the embedded model, torch threads
1 and all cores, first with the machine idle, then while a busy-looping process holds one core (the situation of
issue #11: another process under load). Reports seconds per answer (after a warm-up answer) and what
``docqa.threads.default_threads`` would pick in each case. Writes benchmarks/results/threads.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
import docqa
from docqa.eval.questions import load_jsonl
from docqa.generators import GeneratorConfig
from docqa.threads import default_threads
picked = default_threads()
idx = docqa.open_index("examples", root={index_root!r}, generator=GeneratorConfig(threads={threads}))
qs = [q.question for q in load_jsonl({questions!r})][:{n} + 1]
idx.ask(qs[0], "rag")
t = time.perf_counter()
for q in qs[1:]:
    idx.ask(q, "rag")
print(json.dumps({{"seconds_per_answer": (time.perf_counter() - t) / {n}, "default_would_pick": picked}}))
"""


def busy() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=6)
    args = ap.parse_args()
    import docqa

    index_root = Path(tempfile.mkdtemp(prefix="docqa-threads-"))
    docqa.ingest(ROOT / "examples" / "docs", "examples", root=index_root)
    cores = len(os.sched_getaffinity(0))
    rows = []
    for load in ("idle", "one busy core"):
        for threads in sorted({1, cores}):
            hog = busy() if load != "idle" else None
            try:
                time.sleep(1.0 if hog else 0)
                code = CHILD.format(root=str(ROOT), index_root=str(index_root), threads=threads, n=args.questions,
                                    questions=str(ROOT / "examples" / "questions.jsonl"))
                out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            finally:
                if hog:
                    hog.kill()
            res = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append({"load": load, "threads": threads, **{k: round(v, 2) if isinstance(v, float) else v
                                                              for k, v in res.items()}})
            print(rows[-1], flush=True)
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cores": cores, "rows": rows}
    path = ROOT / "benchmarks" / "results" / "threads.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
