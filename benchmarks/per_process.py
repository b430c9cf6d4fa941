"""What the benchmarks that measure one configuration per process share (reader.py, llamacpp_knobs.py).

Why a process each: peak resident memory is the process's own, and a module constant or a loaded library patched for
one configuration cannot leak into the next. The script calls itself with ``--one NAME`` and prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys


def parse_lengths(ap: argparse.ArgumentParser, text: str) -> list[int]:
    """``--lengths 1024,8192`` as token counts; a bad one is argparse's one-line error."""
    try:
        return [int(x) for x in text.split(",")]
    except ValueError:
        ap.error(f"--lengths takes token counts like 1024,8192, got {text!r}")


def check_tag(ap: argparse.ArgumentParser, tag: str) -> str:
    """A ``--tag`` that names a results file: letters, digits, - and _ (empty: no tag)."""
    if tag and not tag.replace("-", "").replace("_", "").isalnum():
        ap.error(f"--tag names a results file (letters, digits, - and _), got {tag!r}")
    return f"-{tag}" if tag else ""


def run_one_json(run, *args) -> None:
    """The ``--one`` side: print ``run(*args)`` as one JSON line; a DocQAError (an unknown model, a missing part)
    exits with its one line, which the parent shows as that row's error."""
    from docqa.errors import DocQAError

    try:
        print(json.dumps(run(*args)))
    except DocQAError as e:
        sys.exit(str(e))


def run_each(script: str, names: list[str], args: list[str], key: str, echo: bool = False) -> list[dict]:
    """``script --one NAME *args`` for each name, one after another; each process's last JSON line is its row, or
    ``{key: NAME, "error": …}`` when it printed none. ``echo`` prints the processes' other lines and stderr's tail."""
    rows = []
    for name in names:
        print(f"{name} ...", flush=True)
        proc = subprocess.run([sys.executable, script, "--one", name, *args], capture_output=True, text=True,
                              env=os.environ)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if echo:
            sys.stderr.write(proc.stderr[-2000:])
            for ln in proc.stdout.splitlines():
                if not ln.startswith("{"):
                    print(ln)
        rows.append(json.loads(lines[-1]) if lines else {key: name, "error": proc.stderr.strip()[-300:]})
    if all("error" in r for r in rows):  # nothing measured: keep whatever results file was there
        sys.exit("error: nothing ran; " + "; ".join(f"{r[key]}: {r['error']}" for r in rows))
    return rows


def write_results(stem: str, tag: str, model: str, lengths: list[int], rows: list[dict]) -> None:
    """benchmarks/results/STEM[-TAG].json with the machine, the model, the lengths and the rows."""
    from pathlib import Path

    from docqa.environment import describe

    out = Path(__file__).resolve().parent / "results" / f"{stem}{tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"environment": describe(), "model": model, "lengths": lengths, "rows": rows},
                              indent=1))


def print_table(rows: list[dict], key: str, headers: list[str], cells) -> None:
    """A markdown table: one line per row, ``cells(row)`` its columns after the first (``row[key]``); a row that
    failed shows its error."""
    print("\n| " + " | ".join(headers) + " |")
    print("|---" * len(headers) + "|")
    for r in rows:
        if "error" in r:
            print(f"| {r[key]} | error: {r['error']} |")
        else:
            print(f"| {r[key]} | " + " | ".join(str(c) for c in cells(r)) + " |")
