"""Two eval runs compared question by question: ``docqa compare RUN_A RUN_B``.

Each strategy present in both runs (or the pair named, ``--strategy rag`` or ``--strategy rag:long-context``) is
compared on the same questions — matched by document and question id — as the paired difference B − A with its
bootstrap interval and wins / losses / ties (:func:`docqa.eval.paired.paired`). Before any number, what makes the
runs comparable is checked: the question set (its sha256), the corpus (each index's content id, embedder and
chunking), the model and, for a served model, its build; a difference is said, not hidden.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from .html_report import load_run
from .metrics import primary
from .paired import Paired, paired


@dataclass
class Comparison:
    a: str
    b: str
    rows: list[tuple[str, str, Paired]] = field(default_factory=list)  # (strategy in A, strategy in B, B − A)
    differences: list[str] = field(default_factory=list)  # what differs between the runs' settings
    unmatched: int = 0  # questions of A with no counterpart in B (or the other way round)


def _identity(meta: dict) -> dict:
    server = meta.get("server") or {}
    return {"question set": meta.get("questions_sha256"), "corpus": (meta.get("corpus") or {}).get("sha256"),
            "model": meta.get("model"), "server build": server.get("build"), "options": meta.get("options"),
            "length hints": meta.get("length_hint")}


def compare_runs(run_a: Path, run_b: Path, strategy: str | None = None, resamples: int = 10_000) -> Comparison:
    records_a, summary_a = load_run(Path(run_a))
    records_b, summary_b = load_run(Path(run_b))
    out = Comparison(str(run_a), str(run_b))
    ia, ib = _identity(summary_a.meta), _identity(summary_b.meta)
    for key in ia:
        if ia[key] != ib[key] and not (ia[key] is None or ib[key] is None):
            out.differences.append(f"the {key} differs between the runs")
        elif ia[key] is None and ib[key] is None and key in ("question set", "corpus"):
            out.differences.append(f"neither run recorded its {key} (made before docqa recorded it): whether they "
                                   f"match is unknown")
    names_a = list(dict.fromkeys(r["strategy"] for r in records_a))
    names_b = list(dict.fromkeys(r["strategy"] for r in records_b))
    if strategy:
        left, _, right = strategy.partition(":")
        right = right or left
        if left not in names_a or right not in names_b:
            raise ConfigError(f"--strategy {strategy}: run A has {', '.join(names_a)}; run B has "
                              f"{', '.join(names_b)}. Name one of each (A:B), or one both have.")
        pairs = [(left, right)]
    else:
        pairs = [(s, s) for s in names_a if s in names_b]
        if not pairs:
            raise ConfigError(f"The runs share no strategy (A: {', '.join(names_a)}; B: {', '.join(names_b)}). "
                              f"Compare two with --strategy A_STRATEGY:B_STRATEGY.")

    def scores(records: list[dict], name: str) -> dict[tuple, float]:
        return {(r.get("document"), r["id"]): 100 * primary(r["metrics"]) for r in records
                if r["strategy"] == name and primary(r["metrics"]) is not None}

    for left, right in pairs:
        sa, sb = scores(records_a, left), scores(records_b, right)
        keys = [k for k in sa if k in sb]
        out.unmatched = max(out.unmatched, len(set(sa) ^ set(sb)))
        if not keys:
            raise ConfigError(f"Runs A and B have no scored question in common for {left} / {right}: they were "
                              f"asked different questions.")
        out.rows.append((left, right, paired([sa[k] for k in keys], [sb[k] for k in keys], resamples)))
    return out
