"""Reliability evidence: kill -9 trials, the corruption matrix, fuzzed question files, a messy folder, and what the
open-time check costs.

    .venv/bin/python benchmarks/reliability.py [--kills 20] [--fuzz 1000] [--cli-fuzz 60]

- kill -9: real ingest subprocesses (test fakes for the models, so a trial takes a second) killed at each named
  commit step (DOCQA_FAULT) and at random moments; a trial is safe when the index then answers from a complete
  version (or does not exist yet, for a first ingest), the next ingest succeeds without help, and `docqa check`
  passes with no temp folder left.
- corruption: every case of tests/faults.py on a two-version index; detected = `ask` raises IndexCorrupt, the next
  ingest refuses, `docqa check` fails; then `--rebuild` must repair it.
- fuzz: question files drawn by the hypothesis strategy of tests/test_bad_inputs.py, through both loaders, and a
  subset through `docqa eval` (CliRunner): anything but a result or a one-line DocQAError counts as a traceback.
- cost of the open-time check: opening the examples/ index with the real embedder's manifest, check on vs off.

Prints a table and writes benchmarks/out/reliability.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import random
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "out"


def _setup_fakes():
    from docqa import embedder as em
    from docqa import generators as gm
    from tests import conftest as c

    em.EMBEDDERS.register("fake", c.fake_embedder, replace=True)
    gm.GENERATORS.register("fake", c.fake_generator, replace=True)
    return c.FAKE_EMBEDDER, c.FAKE_MODEL


def _docs(dst: Path) -> Path:
    dst.mkdir(parents=True)
    for name in ("employee_handbook.md", "travel_and_expense_policy.docx", "q3_2026_quarterly_report.pdf"):
        shutil.copy(ROOT / "examples" / "docs" / name, dst / name)
    return dst


def kill_trials(n: int) -> dict:
    import docqa
    from docqa.errors import IndexNotFound
    from docqa.index.store import FAULT_POINTS, check_index
    from tests.faults import kill_at_random, run_ingest

    _, model = _setup_fakes()
    rng = random.Random(0)
    safe, tried, failures = 0, 0, []
    plan = [(p, first) for p in FAULT_POINTS for first in (True, False)]
    plan += [("random", bool(i % 2)) for i in range(max(0, n - len(plan)))]
    for point, first in plan:
        with tempfile.TemporaryDirectory() as tmp:
            docs, root = _docs(Path(tmp) / "docs"), Path(tmp) / "idx"
            if not first:
                run_ingest(docs, root)
                (docs / "notes.md").write_text("# Notes\n\nThe nightly hotel cap in Oslo is 240 euros.\n")
            if point == "random":
                kill_at_random(docs, root, rng, span=3.0)
            else:
                run_ingest(docs, root, fault=point)
            tried += 1
            ok = True
            try:
                docqa.open_index("t", root=root, model=model).ask("What is the hotel cap?", "rag")
            except IndexNotFound:
                ok = first  # only a first ingest may leave no index
            except Exception as e:  # noqa: BLE001 - any other outcome is a failed trial
                ok, _ = False, failures.append(f"{point}/{first}: {type(e).__name__}: {e}")
            rc, _, err = run_ingest(docs, root)
            ok = ok and rc == 0 and check_index("t", root).ok and not list((root / "t").glob(".tmp-*"))
            if rc != 0:
                failures.append(f"{point}/{first}: re-ingest failed: {err[-200:]}")
            safe += ok
    return {"tried": tried, "safe": safe, "failures": failures}


def corruption_matrix() -> dict:
    import docqa
    from docqa.errors import IndexCorrupt
    from docqa.index.store import check_index
    from tests.faults import CORRUPTIONS, change_for_second_version

    embedder, model = _setup_fakes()
    detected, repaired, missed = 0, 0, []
    for case, damage in sorted(CORRUPTIONS.items()):
        with tempfile.TemporaryDirectory() as tmp:
            docs, root = _docs(Path(tmp) / "docs"), Path(tmp) / "idx"
            docqa.ingest(docs, "t", root=root, embedder=embedder, model=model)
            change_for_second_version(docs)
            docqa.ingest(docs, "t", root=root, embedder=embedder, model=model)
            home = root / "t"
            versions = sorted(home.glob("v*"))
            damage(home, versions[-1], versions[-2])
            found = []
            for action in ("ask", "ingest"):
                try:
                    if action == "ask":
                        docqa.open_index("t", root=root, model=model).ask("hotel cap?", "rag")
                    else:
                        docqa.ingest(docs, "t", root=root, embedder=embedder, model=model)
                    found.append(False)
                except IndexCorrupt:
                    found.append(True)
            found.append(not check_index("t", root).ok)
            if all(found):
                detected += 1
            else:
                missed.append(case)
            docqa.ingest(docs, "t", root=root, embedder=embedder, model=model, rebuild=True)
            repaired += check_index("t", root).ok
    return {"cases": len(CORRUPTIONS), "detected": detected, "repaired": repaired, "missed": missed}


def fuzz(n: int, cli_n: int) -> dict:
    from hypothesis import HealthCheck, given, settings
    from typer.testing import CliRunner

    from docqa.cli.main import app
    from docqa.errors import BadQuestionFile
    from docqa.eval.questions import load_jsonl, load_leval
    from tests.test_bad_inputs import question_files

    _, model = _setup_fakes()
    counts = {"files": 0, "valid": 0, "refused": 0, "tracebacks": 0, "cli_files": 0, "cli_tracebacks": 0}
    tmp = Path(tempfile.mkdtemp())
    path = tmp / "questions.jsonl"

    @settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(data=question_files())
    def one(data: bytes) -> None:
        path.write_bytes(data)
        counts["files"] += 1
        for loader in (load_jsonl, load_leval):
            try:
                loader(path)
                counts["valid"] += 1
            except BadQuestionFile:
                counts["refused"] += 1
            except Exception:  # noqa: BLE001 - what we count
                counts["tracebacks"] += 1
        if counts["cli_files"] < cli_n:
            counts["cli_files"] += 1
            r = CliRunner().invoke(app, ["eval", str(path), "--index", "none", "--model", model, "--root",
                                         str(tmp / "idx"), "--strategies", "rag"])
            counts["cli_tracebacks"] += r.exit_code not in (0, 1) or r.exception is not None and not isinstance(
                r.exception, SystemExit)

    t0 = time.perf_counter()
    one()
    counts["seconds"] = round(time.perf_counter() - t0, 1)
    shutil.rmtree(tmp, ignore_errors=True)
    return counts


def messy_folder() -> dict:
    import docqa
    from tests.malformed import make_messy_folder

    embedder, model = _setup_fakes()
    with tempfile.TemporaryDirectory() as tmp:
        expected = make_messy_folder(Path(tmp) / "drive")
        report = docqa.ingest(Path(tmp) / "drive", "t", root=Path(tmp) / "idx", embedder=embedder, model=model,
                              max_file_mb=1)
    got = {f.file: f.status for f in report.files}
    good = [n for n, k in expected.items() if k in ("good", "tolerated")]
    bad = [n for n, k in expected.items() if k == "bad"]
    return {"entries": len(expected), "indexed": sum(got.get(n) == "added" for n in good), "readable": len(good),
            "listed_with_reason": sum(got.get(n) in ("failed", "skipped") for n in bad), "bad": len(bad)}


@contextlib.contextmanager
def _unchecked(store, on: bool):
    """Replace the open-time checks (files, per-segment counts and ids, totals) by the bare reads they need."""
    saved = (store.check_files, store.verify_segment, store.verify_totals)
    if on:
        def files_only(path, index, seg, db, vectors, **_):
            return {r[0] for r in db.execute("SELECT name FROM files")} - set(seg.dead), []

        store.check_files = lambda *a, **k: None
        store.verify_segment = files_only
        store.verify_totals = lambda *a, **k: None
    try:
        yield
    finally:
        store.check_files, store.verify_segment, store.verify_totals = saved


def open_cost(repeats: int = 20) -> dict:
    """Opening the examples/ index (real embedder, built here if missing) with and without the open-time check."""
    import docqa
    from docqa.index import store

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        docqa.ingest(ROOT / "examples" / "docs", "examples", root=root)
        size = sum(f.stat().st_size for f in (root / "examples").rglob("*") if f.is_file())
        timings = {}
        for label, check in (("checked", True), ("unchecked", False)):
            with _unchecked(store, not check):  # the same open with the verification replaced by nothing
                runs = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    s = store.IndexStore("examples", root)
                    runs.append(time.perf_counter() - t0)
                    s.close()
            timings[label] = sorted(runs)[len(runs) // 2]
        chunks = store.read_live_manifest("examples", root).chunks
    return {"chunks": chunks, "bytes": size, "open_checked_ms": round(1000 * timings["checked"], 2),
            "open_unchecked_ms": round(1000 * timings["unchecked"], 2),
            "check_ms": round(1000 * (timings["checked"] - timings["unchecked"]), 2)}


def open_cost_at_scale(n: int) -> dict:
    """The same for a synthetic index of ``n`` chunks (random unit vectors, 384-d like all-MiniLM-L6-v2, ~700
    characters of text a chunk), written through the real IndexWriter: what a reader pays per MB."""
    import numpy as np

    from docqa.index import store
    from docqa.records import Chunk

    rng = np.random.default_rng(0)
    words = np.array("the of and to in a is that for it as was with be by on not he this are or his".split())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with store.writing("big", root, dim=384) as w:
            per_file = 1000
            for f in range(n // per_file):
                chunks = [Chunk(0, f"f{f}.txt", i, " ".join(rng.choice(words, 140)), 0, 700, None, 160)
                          for i in range(per_file)]
                vecs = rng.standard_normal((per_file, 384)).astype(np.float32)
                vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
                w.add_file(f"f{f}.txt", f"{f:064x}", 0, [], chunks, vecs)
            w.commit({"embedder": "synthetic", "tokenizer": "none", "chunk_tokens": 160, "overlap": 0, "dim": 384})
        size = sum(f.stat().st_size for f in (root / "big").rglob("*") if f.is_file())
        timings = {}
        for label in ("checked", "unchecked"):
            with _unchecked(store, label == "unchecked"):
                runs = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    store.IndexStore("big", root).close()
                    runs.append(time.perf_counter() - t0)
            timings[label] = sorted(runs)[1]
        t0 = time.perf_counter()
        full_ok = store.check_index("big", root).ok
        full = time.perf_counter() - t0
    return {"chunks": n, "bytes": size, "open_checked_ms": round(1000 * timings["checked"]),
            "open_unchecked_ms": round(1000 * timings["unchecked"]),
            "check_ms": round(1000 * (timings["checked"] - timings["unchecked"])),
            "full_check_ms": round(1000 * full), "full_check_ok": full_ok}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--fuzz", type=int, default=1000)
    ap.add_argument("--cli-fuzz", type=int, default=60)
    ap.add_argument("--scale", type=int, default=100_000, help="chunks of the synthetic index for the open cost")
    args = ap.parse_args()
    results = {"machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
               "date": datetime.now(timezone.utc).strftime("%Y-%m-%d")}
    for name, fn in (("kill", lambda: kill_trials(args.kills)), ("corruption", corruption_matrix),
                     ("fuzz", lambda: fuzz(args.fuzz, args.cli_fuzz)), ("messy_folder", messy_folder),
                     ("open_cost", open_cost), ("open_cost_scale", lambda: open_cost_at_scale(args.scale))):
        t0 = time.perf_counter()
        results[name] = fn()
        print(f"{name:13} {json.dumps(results[name])}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    k, c, f, m = results["kill"], results["corruption"], results["fuzz"], results["messy_folder"]
    print("\n| evidence | result |\n|---|---|")
    print(f"| kill -9 of a real ingest | {k['safe']} / {k['tried']} safe |")
    print(f"| corruption cases | {c['detected']} / {c['cases']} detected, {c['repaired']} repaired by --rebuild |")
    print(f"| fuzzed question files | {f['files']} files, {f['tracebacks']} tracebacks; through `docqa eval`: "
          f"{f['cli_files']} files, {f['cli_tracebacks']} tracebacks |")
    print(f"| messy folder | {m['indexed']} / {m['readable']} readable files indexed, {m['listed_with_reason']} / "
          f"{m['bad']} bad entries listed with a reason |")
    o = results["open_cost"]
    print(f"| open-time check | {o['check_ms']} ms on {o['chunks']} chunks ({o['bytes'] / 1e6:.1f} MB); open "
          f"{o['open_checked_ms']} ms vs {o['open_unchecked_ms']} ms unchecked |")
    o = results["open_cost_scale"]
    print(f"| open-time check at scale | {o['check_ms']} ms on {o['chunks']:,} chunks ({o['bytes'] / 1e6:.0f} MB); "
          f"open {o['open_checked_ms']} ms vs {o['open_unchecked_ms']} ms unchecked; `docqa check` "
          f"{o['full_check_ms']} ms |")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "reliability.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
