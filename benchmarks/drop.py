"""Calibrating summarize's drop step: P("NOTHING RELEVANT" | map prompt) against whether a group holds the answer.

    .venv/bin/python benchmarks/drop.py [--window 8192] [--limit N]

For every answerable question of examples/questions.jsonl, the map-reduce chain's first-pass groups are packed exactly
as the chain packs them, and each map prompt is scored (one short forward after the group's cached prefix; the
answer itself is not decoded). A group "holds the answer" when a reference answer appears in its text (normalised).
Prints the AUC of the probability for groups without the answer, the share of map calls that *say* "nothing
relevant", and a threshold table; writes benchmarks/results/drop.json. The default of ``--drop-threshold``
(docqa/strategies/summarize.py DROP_P) follows from it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
THRESHOLDS = [1e-4, 1e-3, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--window", type=int, default=None)
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    import docqa
    from docqa.eval.metrics import normalize
    from docqa.eval.questions import load_jsonl
    from docqa.strategies import summarize as sm
    from docqa.strategies.base import AskConfig

    root = Path(tempfile.mkdtemp(prefix="docqa-drop-"))
    docqa.ingest(ROOT / "examples" / "docs", "examples", root=root)
    idx = docqa.open_index("examples", root=root)
    corpus, gen = idx.corpus, idx.corpus.generator()
    window = min(args.window or gen.trained_window, gen.trained_window)
    chunks = corpus.store.chunks()
    blocks = sm._chunk_blocks(chunks)
    rows = []
    qs = [q for q in load_jsonl(ROOT / "examples" / "questions.jsonl") if q.answers][: args.limit]
    for qi, q in enumerate(qs):
        cfg = AskConfig()
        run = sm.ChainRun(corpus, q.question, cfg, gen, window)
        groups = run.pack(blocks, run.first_pass_room(sm._map_user, sm._MAP_SYSTEM))
        run.cfg = dataclasses.replace(cfg, max_new_tokens=1)  # same groups; only the score is needed
        for group in groups:
            text = "\n\n".join(blocks[i] for i in group)
            run.call("map", sm._map_user(q.question, text), system=sm._MAP_SYSTEM, stop=(), score=sm.NOTHING)
            holds = any(normalize(a) and f" {normalize(a)} " in f" {normalize(text)} " for a in q.answers)
            rows.append({"question": q.id, "groups": len(groups), "p_nothing": run.last_score, "holds": holds})
        print(f"{qi + 1}/{len(qs)} {q.id}: {len(groups)} groups", flush=True)
    neg = [r["p_nothing"] for r in rows if not r["holds"]]
    pos = [r["p_nothing"] for r in rows if r["holds"]]
    auc = sum((n > p) + 0.5 * (n == p) for n in neg for p in pos) / max(1, len(neg) * len(pos))
    table = []
    print(f"{len(rows)} map calls: {len(pos)} hold the answer, {len(neg)} do not; AUC {auc:.3f}")
    print(f"{'threshold':>10}{'dropped':>9}{'of them without':>17}{'answer groups lost':>20}")
    for t in THRESHOLDS:
        drop = [r for r in rows if r["p_nothing"] >= t]
        table.append({"threshold": t, "dropped": len(drop), "dropped_without": sum(not r["holds"] for r in drop),
                      "lost": sum(r["holds"] for r in drop)})
        print(f"{t:>10}{len(drop):>9}{table[-1]['dropped_without']:>17}{table[-1]['lost']:>20}")
    out = ROOT / "benchmarks" / "results" / "drop.json"
    out.write_text(json.dumps({"window": window, "auc": auc, "table": table, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
