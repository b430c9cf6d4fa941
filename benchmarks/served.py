"""Served vs in-process: rag eval over examples/ through llama-cpp-python's server at concurrency 1, 2 and 4, against
docqa's in-process generator; and a second long-context question against the first (does the server's prefix cache
hit?).

    .venv/bin/python benchmarks/served.py [--limit 20]

Same model on both sides: the embedded SmolLM2-135M GGUF (llama.cpp runs the Q4_1 weights; docqa's in-process
generator the same weights dequantised to float32), same index (examples/docs, real embedder), greedy answers,
96-token budget. llama-cpp-python's server runs one request at a time (it has no parallel slots; llama.cpp's own
``llama-server --parallel N`` has), so concurrency there measures queueing, not batching. Writes
benchmarks/out/served.json and prints tables.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "out"


def _row(label: str, records: list[dict], seconds: float, reference: list[dict] | None) -> dict:
    from docqa.eval.report import percentile

    ok = [r for r in records if not r["error"]]
    same = sum(a["answer"] == b["answer"] for a, b in zip(records, reference)) if reference else None
    return {"run": label, "questions": len(records), "errors": len(records) - len(ok), "seconds": round(seconds, 1),
            "questions_per_s": round(len(records) / seconds, 3),
            "latency_p50_s": round(percentile([r["latency_s"] for r in ok], 50), 2),
            "ttft_p50_s": round(percentile([r["ttft_s"] for r in ok], 50), 2),
            "f1": round(100 * sum(r["metrics"]["f1"] or 0 for r in ok if r["references"]) /
                        max(1, sum(1 for r in ok if r["references"])), 1),
            "same_answers_as_c1": same}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=20, help="questions of examples/questions.jsonl")
    args = ap.parse_args()

    import docqa
    from docqa.generators import GeneratorConfig
    from tests.llama_server import free_port, start_server, stop

    tmp = Path(tempfile.mkdtemp())
    root = tmp / "indexes"
    docqa.ingest(ROOT / "examples" / "docs", "examples", root=root)
    qfile = tmp / "q.jsonl"
    rows = [x for x in (ROOT / "examples" / "questions.jsonl").read_text().splitlines() if x.strip()][: args.limit]
    qfile.write_text("\n".join(rows) + "\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    log = open(tmp / "server.log", "w")  # noqa: SIM115 - closed below
    proc = start_server(port, log)
    results: dict = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores", "eval": []}
    try:
        served = GeneratorConfig(model="openai:smollm2", base_url=url, context_window=8192, tokenizer="smollm2")
        # Load both generators before timing.
        docqa.open_index("examples", root=root).ask("warm up", "rag", max_new_tokens=1)
        docqa.open_index("examples", root=root, generator=served).ask("warm up", "rag", max_new_tokens=1)
        reference = None
        for label, gen, conc in [("in-process", None, 1), ("server c=1", served, 1), ("server c=2", served, 2),
                                 ("server c=4", served, 4)]:
            t0 = time.perf_counter()
            records, _ = docqa.evaluate(qfile, index="examples", strategies=["rag"], root=root, generator=gen,
                                        concurrency=conc)
            dt = time.perf_counter() - t0
            if label == "server c=1":
                reference = records
            row = _row(label, records, dt, reference if label.startswith("server") else None)
            results["eval"].append(row)
            print(json.dumps(row), flush=True)
        # Long-context through the server: two documents (~5 k tokens, inside the 8 k window), two questions.
        docs = tmp / "two"
        docs.mkdir()
        for name in ("employee_handbook.md", "company_overview.md"):
            shutil.copy(ROOT / "examples" / "docs" / name, docs / name)
        docqa.ingest(docs, "two", root=root)
        idx = docqa.open_index("two", root=root, generator=served)
        lc = []
        for q in ("How many days of paid vacation do full-time employees get?", "Who founded the company?"):
            a = idx.ask(q, "long-context", max_new_tokens=32)
            lc.append({"question": q, "prompt_tokens": a.tokens["prompt"], "ttft_s": round(a.timings["ttft"], 2),
                       "total_s": round(a.timings["total"], 2), "server_reported_cached": a.tokens.get("cached", 0),
                       "answer": a.text})
            print(json.dumps(lc[-1]), flush=True)
        results["long_context"] = lc
    finally:
        stop(proc)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n| run | questions/s | p50 latency s | p50 TTFT s | F1 | same answers as server c=1 |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results["eval"]:
        same = "–" if r["same_answers_as_c1"] is None else f"{r['same_answers_as_c1']}/{r['questions']}"
        print(f"| {r['run']} | {r['questions_per_s']} | {r['latency_p50_s']} | {r['ttft_p50_s']} | {r['f1']} | "
              f"{same} |")
    a, b = results["long_context"]
    hit = "the prefix cache hit" if b["ttft_s"] < 0.5 * a["ttft_s"] else "no cache hit"
    print(f"\nlong-context through the server: first question TTFT {a['ttft_s']} s ({a['prompt_tokens']} prompt "
          f"tokens), second {b['ttft_s']} s ({b['prompt_tokens']}): {hit}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "served.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
