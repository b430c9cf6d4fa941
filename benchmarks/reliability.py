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
- kill -9 inside a merge: an index brought to the merge threshold, then a real ingest killed at each merge step.
- fuzzed inputs beyond question files: random bytes as documents of every supported type, random index names, and
  random option values, through ingest / open_index / ask: anything but a result or a DocQAError is a traceback.
- concurrent ingest + ask + check: a writer process re-ingesting in a loop while this process asks and checks.
- served-model faults (llama-cpp-python's real server, SmolLM2, behind tests/fault_proxy.py): every kind of injected
  fault retried to a whole answer or recorded as a server error; the server at its defaults at concurrency 2; a
  server killed mid-eval and the run resumed to the answers of a clean run.

Prints a table and writes benchmarks/out/reliability.json. ``--only kill,served`` runs some sections.
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


def merge_kills() -> dict:
    import docqa
    from docqa.index import segments as sg
    from docqa.index.store import MERGE_FAULT_POINTS, check_index
    from tests.faults import live, run_ingest

    emb, model = _setup_fakes()
    out = {"tried": 0, "safe": 0, "failures": []}
    for point in MERGE_FAULT_POINTS:
        with tempfile.TemporaryDirectory() as tmp:
            docs, root = _docs(Path(tmp) / "docs"), Path(tmp) / "idx"
            docqa.ingest(docs, "t", root=root, embedder=emb, model=model)
            for i in range(1, sg.MERGE_FACTOR):
                (docs / f"n{i}.md").write_text(f"# Note {i}\n\nThe cap in city {i} is {100 + i} euros.\n")
                docqa.ingest(docs, "t", root=root, embedder=emb, model=model)
            before = live(root / "t").name
            (docs / "last.md").write_text("# Last\n\nThe nightly hotel cap in Oslo is 240 euros.\n")
            rc, _, err = run_ingest(docs, root, fault=point)
            out["tried"] += 1
            ok = rc == -9 and live(root / "t").name == before
            ok = ok and bool(docqa.open_index("t", root=root, model=model).ask("What is the cap?", "rag").sources)
            rc2, _, _ = run_ingest(docs, root)
            ok = ok and rc2 == 0 and check_index("t", root).ok and not list((root / "t").glob(".tmp-*"))
            out["safe"] += ok
            if not ok:
                out["failures"].append(point)
    return out


def fuzz_inputs(n: int) -> dict:
    """Random documents, index names and option values through the API; counts tracebacks."""
    import docqa
    from docqa.errors import DocQAError

    emb, model = _setup_fakes()
    rng = random.Random(1)
    counts = {"documents": 0, "index_names": 0, "options": 0, "ok": 0, "refused": 0, "tracebacks": 0,
              "examples": []}
    tmp = Path(tempfile.mkdtemp())
    good = _docs(tmp / "good")
    docqa.ingest(good, "base", root=tmp / "idx", embedder=emb, model=model)
    exts = [".md", ".txt", ".pdf", ".docx", ".html", ".htm", ".eml", ".csv", ".json", ".rst", ""]
    alphabet = "abc-_./\\ \x00é😀\n:*?<>|" + "x" * 10

    def blob() -> bytes:
        kind = rng.random()
        if kind < 0.3:
            return rng.randbytes(rng.randint(0, 4000))
        if kind < 0.6:  # a real file's head, cut or with bytes changed
            src = rng.choice(list((ROOT / "examples" / "docs").iterdir())).read_bytes()
            b = bytearray(src[: rng.randint(0, len(src))])
            for _ in range(rng.randint(0, 20)):
                if b:
                    b[rng.randrange(len(b))] = rng.randrange(256)
            return bytes(b)
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 3000))).encode("utf-8", "surrogatepass")

    def name() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))

    values = [None, -1, 0, 1, 2**40, 0.5, float("nan"), float("inf"), "", "x", "yarn", [], {}, True, "1e9", -0.0]
    option_names = ["top_k", "rope", "max_context", "truncate", "chain", "max_calls", "map_top_k", "summary_window",
                    "max_new_tokens", "style", "route_threshold", "drop_threshold", "kv_budget", "length_hint",
                    "instruction", "nonsense_option"]

    def attempt(kind: str, fn) -> None:
        counts[kind] += 1
        try:
            fn()
            counts["ok"] += 1
        except DocQAError:
            counts["refused"] += 1
        except Exception as e:  # noqa: BLE001 - what we count
            counts["tracebacks"] += 1
            if len(counts["examples"]) < 5:
                counts["examples"].append(f"{kind}: {type(e).__name__}: {str(e)[:100]}")

    t0 = time.perf_counter()
    for i in range(n):
        which = i % 3
        if which == 0:
            d = tmp / f"d{i}"
            d.mkdir()
            for j in range(rng.randint(1, 3)):
                (d / f"f{j}{rng.choice(exts)}").write_bytes(blob())
            attempt("documents", lambda d=d, i=i: docqa.ingest(d, f"fz{i}", root=tmp / "idx", embedder=emb,
                                                               model=model))
            shutil.rmtree(d, ignore_errors=True)
        elif which == 1:
            nm = name()
            attempt("index_names", lambda nm=nm: docqa.open_index(nm, root=tmp / "idx", model=model))
        else:
            opts = {rng.choice(option_names): rng.choice(values) for _ in range(rng.randint(1, 3))}
            strategy = rng.choice(["rag", "long-context", "summarize", "auto", "nope", ""])
            attempt("options", lambda o=opts, s=strategy: docqa.open_index("base", root=tmp / "idx", model=model)
                    .ask("What is the hotel cap?", s, **o))
    counts["seconds"] = round(time.perf_counter() - t0, 1)
    shutil.rmtree(tmp, ignore_errors=True)
    return counts


def concurrent(seconds: float = 30.0) -> dict:
    """A writer process re-ingesting (a file changed each time) while this process asks and checks."""
    import subprocess

    import docqa
    from docqa.index.store import check_index
    from tests.faults import run_ingest

    _, model = _setup_fakes()
    out = {"ingests": 0, "ingest_failures": 0, "asks": 0, "ask_failures": 0, "checks": 0, "check_failures": 0,
           "examples": []}
    with tempfile.TemporaryDirectory() as tmp:
        docs, root = _docs(Path(tmp) / "docs"), Path(tmp) / "idx"
        run_ingest(docs, root)
        script = ("import sys, time, subprocess\n"
                  "from pathlib import Path\n"
                  "d = Path(sys.argv[1]); end = time.time() + float(sys.argv[3]); n = 0\n"
                  "while time.time() < end:\n"
                  "    (d / 'notes.md').write_text(f'# Notes\\n\\nRun {n}: the cap is {100 + n} euros.\\n')\n"
                  "    r = subprocess.run([sys.executable, '-c', sys.argv[4], str(d), sys.argv[2]], "
                  "capture_output=True)\n"
                  "    print(r.returncode, flush=True); n += 1\n")
        from tests.faults import INGEST

        writer = subprocess.Popen([sys.executable, "-c", script, str(docs), str(root), str(seconds),
                                   INGEST.format(repo=str(ROOT))], stdout=subprocess.PIPE, text=True)
        end = time.time() + seconds
        while time.time() < end:
            try:
                ans = docqa.open_index("t", root=root, model=model).ask("What is the cap?", "rag")
                out["asks"] += 1
                out["ask_failures"] += not ans.sources
            except Exception as e:  # noqa: BLE001 - any failure counts
                out["asks"] += 1
                out["ask_failures"] += 1
                out["examples"].append(f"ask: {type(e).__name__}: {str(e)[:100]}")
            rep = check_index("t", root)
            out["checks"] += 1
            if not rep.ok:
                out["check_failures"] += 1
                out["examples"].append(f"check: {[c for c in rep.checks if not c[1]][:1]}"[:160])
        codes = writer.communicate(timeout=300)[0].split()
        out["ingests"] = len(codes)
        out["ingest_failures"] = sum(c != "0" for c in codes)
        out["final_check_ok"] = check_index("t", root).ok
    out["examples"] = out["examples"][:5]
    return out


def served_faults(rounds: int = 3) -> dict:
    """Injected faults through a real llama-cpp-python server (tests/fault_proxy.py), the server at its defaults at
    concurrency 2, and a kill mid-eval with --resume."""
    import logging

    import docqa
    from docqa.errors import ServerUnreachable
    from tests.fault_proxy import FaultProxy
    from tests.llama_server import free_port, start_server, stop

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    emb, model = _setup_fakes()
    out: dict = {}
    tmp = Path(tempfile.mkdtemp())
    docs = _docs(tmp / "docs")
    root = tmp / "idx"
    docqa.ingest(docs, "t", root=root, embedder=emb, model=model)
    rows = [json.loads(x) for x in (ROOT / "examples" / "questions.jsonl").read_text().splitlines() if x.strip()]
    qfile = tmp / "q.jsonl"
    qfile.write_text("".join(json.dumps(r) + "\n" for r in rows[:6 * rounds]))
    log = open(tmp / "server.log", "w")  # noqa: SIM115 - closed below

    from tests.llama_server import served_config as gen

    def run(url: str, name: str, **kw):
        return docqa.evaluate(qfile, index="t", root=root, strategies=["rag"], generator=gen(url, **kw.pop("g", {})),
                              out=tmp / name, max_new_tokens=24, **kw)

    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    proc = start_server(port, log)
    try:
        kinds = ["429", "503", "500", "cut", "abort", "drop"]
        faults = {}
        for r in range(rounds):  # each kind once per round, on a question's first request (0 is the warm-up)
            for k, kind in enumerate(kinds):
                faults[1 + 2 * (r * len(kinds) + k)] = kind
        proxy = FaultProxy(url, faults)
        t0 = time.perf_counter()
        recs, srows = run(proxy.url, "faults", g={"max_retries": 3})
        proxy.close()
        out["injected"] = {"faults": len([f for f in proxy.seen if f != "ok"]), "answers": len(recs),
                           "whole": sum(1 for x in recs if not x["error"] and x["finish_reason"] in ("stop", "length")),
                           "errors": srows[0]["errors"], "seconds": round(time.perf_counter() - t0, 1)}
        always = FaultProxy(url, {i: "cut" for i in range(1, 1000)})
        recs, srows = run(always.url, "always-cut", g={"max_retries": 2})
        always.close()
        out["always_cut"] = {"answers": len(recs), "server_errors": srows[0]["server_errors"],
                             "scored": sum(1 for x in recs if x["metrics"]["score"] is not None)}
        stop(proc)
        proc = start_server(port, log, interrupt=True)
        qfile.write_text("".join(json.dumps(r) + "\n" for r in rows[:6]))
        one, _ = run(url, "c1")
        notices: list[str] = []
        two, srows = run(url, "c2", concurrency=2, notice=notices.append)
        out["defaults_concurrency_2"] = {"same_answers": sum(a["answer"] == b["answer"] for a, b in zip(one, two)),
                                         "questions": len(one), "errors": srows[0]["errors"],
                                         "lowered_to_1": any("one question at a time" in n for n in notices)}
        stop(proc)
        proc = start_server(port, log)
        clean, _ = run(url, "clean")
        state = {"proc": proc}

        def killer(done, total, label):
            if done == 3 and state["proc"].poll() is None:
                state["proc"].kill()
                state["proc"].wait()

        try:
            run(url, "killed", progress=killer, g={"max_retries": 1})
            stopped = "no"
        except ServerUnreachable as e:
            stopped = "yes" if "--resume" in str(e) else "without --resume"
        proc = state["proc"] = start_server(port, log)
        resumed, _ = run(url, "killed", resume=True)
        out["kill_resume"] = {"said_resume": stopped, "questions": len(clean),
                              "same_answers": sum(a["answer"] == b["answer"] for a, b in zip(clean, resumed)),
                              "errors_after_resume": sum(1 for x in resumed if x["error"])}
    finally:
        stop(proc)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--fuzz", type=int, default=1000)
    ap.add_argument("--cli-fuzz", type=int, default=60)
    ap.add_argument("--scale", type=int, default=100_000, help="chunks of the synthetic index for the open cost")
    ap.add_argument("--fuzz-inputs", type=int, default=1200, help="random documents, index names and options")
    ap.add_argument("--concurrent-s", type=float, default=30.0)
    ap.add_argument("--only", default="", help="comma-separated sections (default: all)")
    args = ap.parse_args()
    results = {"machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
               "date": datetime.now(timezone.utc).strftime("%Y-%m-%d")}
    sections = (("kill", lambda: kill_trials(args.kills)), ("merge_kill", merge_kills),
                ("corruption", corruption_matrix), ("fuzz", lambda: fuzz(args.fuzz, args.cli_fuzz)),
                ("fuzz_inputs", lambda: fuzz_inputs(args.fuzz_inputs)), ("messy_folder", messy_folder),
                ("concurrent", lambda: concurrent(args.concurrent_s)), ("served", served_faults),
                ("open_cost", open_cost), ("open_cost_scale", lambda: open_cost_at_scale(args.scale)))
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    for name, fn in sections:
        if only and name not in only:
            continue
        t0 = time.perf_counter()
        results[name] = fn()
        print(f"{name:13} {json.dumps(results[name])}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    name = "reliability.json" if not only else f"reliability-{'-'.join(sorted(only))}.json"
    (OUT / name).write_text(json.dumps(results, indent=2))
    if only:
        return
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


if __name__ == "__main__":
    main()
