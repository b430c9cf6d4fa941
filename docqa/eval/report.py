"""Summaries of evaluation records: per-strategy means and percentiles, files, and the accuracy-vs-latency plot."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from statistics import mean

from ..index.versions import write_atomic
from ..strategies.auto import KEPT_ROUTE, WHOLE_ROUTE
from .metrics import METRICS, primary
from .paired import paired_rows

SUMMARY_COLUMNS = ["strategy", "questions", "answerable", "unanswerable", "metric", "score", *METRICS.names(),
                   "refusal", "false_refusal", "recall_at_k", "context_recall", "hit", "mrr", "ndcg", "groundedness",
                   "unsupported_figures", "latency_p50_s",
                   "latency_p95_s", "cold_latency_s",
                   "warm_latency_p50_s", "ttft_p50_s", "prompt_tokens_mean", "completion_tokens_mean", "calls_mean",
                   "peak_rss_mb_max", "peak_cuda_mb_max", "errors", "error_rate", "server_errors", "cost_usd_total",
                   "cost_usd_mean"]


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100]); NaN for no values."""
    if not values:
        return float("nan")
    v = sorted(values)
    k = (len(v) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def _mean(values) -> float | None:
    vals = [v for v in values if v is not None]
    return mean(vals) if vals else None


def _mean_or_nan(values) -> float:
    vals = list(values)
    return mean(vals) if vals else float("nan")


def summarize(records: list[dict], prices: tuple[float, float] | None = None) -> list[dict]:
    """One row per strategy, in the order strategies first appear.

    A question that ended in an error of the strategy (a corpus too long for long-context, a budget exceeded) scores
    as a wrong answer in the accuracy columns; one the server never answered whole (``server_errors``: a cut answer,
    a server gone, see ``answering.SERVER_ERRORS``) is not scored at all. Both count in ``errors`` / ``error_rate`` and
    are left out of the latency, token and call statistics, which describe answers that happened (a time-to-failure
    is no latency). ``prices`` (US dollars per million prompt and completion tokens) add ``cost_usd_total`` and
    ``cost_usd_mean`` (per answered question), from the token counts the model reported."""
    from .answering import SERVER_ERRORS

    rows = []
    for strategy in dict.fromkeys(r["strategy"] for r in records):
        rs = [r for r in records if r["strategy"] == strategy]
        ok = [r for r in rs if not r.get("error")]
        lat = [r["latency_s"] for r in ok]
        row = {
            "strategy": strategy,
            "questions": len(rs),
            "answerable": sum(1 for r in rs if r["references"]),
            "unanswerable": sum(1 for r in rs if not r["references"]),
            # The set's own metric (token F1; choice accuracy for multiple choice), which the paired column and the
            # verdict compare on; "mixed" where questions are scored by different metrics.
            "metric": _metric_name(rs),
            "score": _mean(primary(r["metrics"]) for r in rs),
            **{m: _mean(r["metrics"].get(m) for r in rs) for m in METRICS.names()},
            "refusal": _mean(r["metrics"]["refusal"] for r in rs),
            "false_refusal": _mean(r["metrics"]["false_refusal"] for r in rs),
            "recall_at_k": _mean(r["metrics"]["recall_at_k"] for r in rs),
            # Passage-level retrieval (eval/retrieval.py), over the questions whose answer was located in a chunk.
            **{m: _mean(r["metrics"].get(m) for r in rs) for m in ("context_recall", "hit", "mrr", "ndcg")},
            # Share of answer sentences the text the strategy read supports (eval/grounding.py), answered questions.
            "groundedness": _mean(r["metrics"].get("groundedness") for r in rs),
            # Share of answered questions whose answer states a figure the text read and the question do not hold.
            "unsupported_figures": _mean(r["metrics"].get("unsupported_figures") for r in rs),
            "latency_p50_s": percentile(lat, 50),
            "latency_p95_s": percentile(lat, 95),
            # Cold: a strategy's first question of each index, paying whatever it builds (a document prefix); warm:
            # the questions after it. Eval starts every strategy cold, whatever the order of --strategies.
            "cold_latency_s": _mean_or_nan(r["latency_s"] for r in ok if r.get("cold")),
            "warm_latency_p50_s": percentile([r["latency_s"] for r in ok if not r.get("cold")], 50),
            "ttft_p50_s": percentile([r["ttft_s"] for r in ok], 50),
            "prompt_tokens_mean": _mean_or_nan(r["prompt_tokens"] for r in ok),
            "completion_tokens_mean": _mean_or_nan(r["completion_tokens"] for r in ok),
            "calls_mean": _mean_or_nan(r["calls"] for r in ok),
            "peak_rss_mb_max": max((r["peak_rss_mb"] for r in ok if r["peak_rss_mb"] == r["peak_rss_mb"]),
                                   default=float("nan")),
            # Device memory where the model ran on a GPU (summed over GPUs); RSS says little there.
            "peak_cuda_mb_max": max((r.get("peak_cuda_mb", float("nan")) for r in ok
                                     if r.get("peak_cuda_mb", float("nan")) == r.get("peak_cuda_mb", float("nan"))),
                                    default=float("nan")),
            "errors": len(rs) - len(ok),
            "error_rate": (len(rs) - len(ok)) / len(rs),
            "server_errors": sum(1 for r in rs if r.get("error_type") in SERVER_ERRORS),
        }
        if prices is not None:
            costs = [cost_usd(r, prices) for r in ok]
            row["cost_usd_total"] = sum(costs)
            row["cost_usd_mean"] = _mean_or_nan(costs)
        if strategy.split(":")[0] == "summarize":  # questions the chain declined that long-context answered
            row["second_look_long_context"] = sum(1 for r in rs if r.get("route") == "long-context")
        if strategy.split(":")[0] == "auto":
            routes = [r["route"] or "" for r in rs]
            whole = WHOLE_ROUTE.split("{")[0]
            row["routed_long_context"] = sum(1 for x in routes if x in ("long-context", KEPT_ROUTE) or
                                             x.startswith(whole))
            row["routed_kept_prefix"] = sum(1 for x in routes if x == KEPT_ROUTE)  # of those: no decline needed
            row["routed_whole_document"] = sum(1 for x in routes if x.startswith(whole))  # nor those: a summary asked
            row["routed_rag"] = len(routes) - row["routed_long_context"]
            lc = [r for r in records if r["strategy"] == "long-context" and not r.get("error")]
            if lc:  # cost saved against always answering with long-context, on the same questions
                lc_time, auto_time = sum(r["latency_s"] for r in lc), sum(lat)
                lc_tokens, auto_tokens = sum(r["prompt_tokens"] for r in lc), sum(r["prompt_tokens"] for r in rs)
                row["saved_latency_vs_long_context"] = 1 - auto_time / lc_time if lc_time else None
                row["saved_prompt_tokens_vs_long_context"] = 1 - auto_tokens / lc_tokens if lc_tokens else None
        rows.append(row)
    # Is a row's score really different from the first row's? Paired over the same questions (docqa/eval/paired.py).
    against_first = paired_rows(records)
    for row in rows[1:]:
        if row["strategy"] in against_first:
            row.update({"score_vs": rows[0]["strategy"], **against_first[row["strategy"]].as_dict("score_vs_")})
    return rows


def cost_usd(record: dict, prices: tuple[float, float]) -> float:
    """What one answer cost at ``prices`` (US dollars per million prompt, completion tokens). Cached prompt tokens
    are charged in full: discounts for them differ by provider."""
    return (record["prompt_tokens"] * prices[0] + record["completion_tokens"] * prices[1]) / 1e6


def parse_price(value: str | float | None, flag: str) -> float | None:
    """A price per million tokens from the command line: a non-negative number (a leading $ allowed)."""
    from ..errors import ConfigError

    if value is None:
        return None
    text = str(value).strip().lstrip("$").strip()
    try:
        price = float(text)
    except ValueError:
        price = float("nan")
    if not math.isfinite(price) or price < 0:
        raise ConfigError(f"{flag} takes a price in US dollars per million tokens, e.g. {flag} 0.15; got "
                          f"'{value}'.")
    return price


def _metric_name(records: list[dict]) -> str:
    names = {r.get("metric", "f1") for r in records if r["references"]}
    return names.pop() if len(names) == 1 else "mixed" if names else "f1"


def write(out: Path, records: list[dict], rows: list[dict], meta: dict) -> None:
    """summary.json, summary.csv and accuracy_vs_latency.png in ``out`` (each written atomically)."""
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "summary.json", json.dumps({"meta": meta, "strategies": rows}, indent=2))
    buf = io.StringIO()
    extra = sorted({k for r in rows for k in r} - set(SUMMARY_COLUMNS))
    writer = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS + extra)
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(out / "summary.csv", buf.getvalue())
    plot(out / "accuracy_vs_latency.png", rows, meta.get("title", ""))


def plot(path: Path, rows: list[dict], title: str = "") -> None:
    """Accuracy (answer-contains and the set's score, token F1 by default) against median latency, one point per
    strategy."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    from .metrics import label

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    # A strategy with no answered question (every one an error) has no latency: it cannot be placed, and is named.
    timed = [r for r in rows if r["latency_p50_s"] == r["latency_p50_s"] and r["latency_p50_s"] > 0]
    for metric, marker, name in (("contains", "o", "contains"), ("score", "s", label(rows))):
        xs = [r["latency_p50_s"] for r in timed]
        ys = [100 * (r[metric] or 0) for r in timed]
        ax.scatter(xs, ys, marker=marker, s=60, label=name)
        for r, x, y in zip(timed, xs, ys):
            ax.annotate(r["strategy"], (x, y), textcoords="offset points", xytext=(6, 4), fontsize=9)
    untimed = [r["strategy"] for r in rows if r not in timed]
    if untimed:
        ax.text(0.01, 0.01, "no answer to place: " + ", ".join(untimed), transform=ax.transAxes, fontsize=8)
    if timed:
        ax.set_xscale("log")
    ax.set_xlabel("median latency per question (s, log scale)")
    ax.set_ylabel("score on answerable questions (%)")
    ax.set_title(title or "accuracy vs latency")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)

