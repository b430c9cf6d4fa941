"""``report.html``: one self-contained page per eval run, for the person deciding "rag or long-context?".

The page holds everything inline (styles, a few lines of script, the accuracy-vs-latency plot as a data URI), so it
opens from disk with no network: the summary per strategy (score with its paired interval, latency p50 / p95, cold
and warm, tokens, cost where priced, errors), the verdict, the plot, and every question side by side — the
references, each strategy's answer and score, and the passages it read with the answer's words marked. Filters show
the questions where strategies disagree, where all are wrong, or where one ended in an error.

Built from the run's files alone (``results.jsonl``, ``summary.json``, ``accuracy_vs_latency.png``), so ``docqa
report RUN_DIR`` rebuilds it for any finished run, older ones included (a record without passages shows none).
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import ConfigError, first_line
from ..index.versions import write_atomic
from .metrics import primary
from .metrics import tokens as word_tokens
from .runner import ResultRecord

CORRECT = 0.5  # a question counts as answered right at this score (token F1 ≥ 0.5, or a right option letter)


class RunSummary(BaseModel):
    """summary.json as eval writes it: the run's settings and one row per strategy."""

    model_config = ConfigDict(extra="allow")

    meta: dict[str, Any]
    strategies: list[dict[str, Any]]


def load_run(run: Path) -> tuple[list[dict], RunSummary]:
    """The records and summary of an eval run folder; one line naming the problem when it is not a whole run."""
    run = Path(run)
    results = run / "results.jsonl"
    if not run.is_dir() or not results.is_file():
        raise ConfigError(f"'{run}' is not a docqa eval run (no results.jsonl in it). Give the folder an eval wrote "
                          f"with --out.")
    records, torn = [], 0
    for n, line in enumerate(results.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except ValueError:
            torn += 1
            continue
        try:
            ResultRecord.model_validate(raw)
        except ValidationError as e:
            raise ConfigError(f"{results} line {n} is not a record this docqa writes ({first_line(e, 120)}): the run "
                              f"was made by another version. Run the eval again with this one.") from e
        records.append(raw)
    summary_path = run / "summary.json"
    if torn or not summary_path.is_file():
        why = f"{torn} torn line{'s' if torn != 1 else ''} in results.jsonl" if torn else "no summary.json"
        raise ConfigError(f"The run in '{run}' is half-written ({why}): it was interrupted. Finish it with the same "
                          f"docqa eval command plus --resume --out {run}, then docqa report {run}.")
    try:
        # json.loads, not pydantic's parser: summary.json holds NaN where a figure has no value (as json.dumps writes)
        summary = RunSummary.model_validate(json.loads(summary_path.read_text(encoding="utf-8")))
    except (ValidationError, ValueError) as e:
        raise ConfigError(f"{summary_path} is unreadable ({first_line(e, 120)}). Run the eval again, or rebuild it "
                          f"with --resume --out {run}.") from e
    if not records:
        raise ConfigError(f"The run in '{run}' has no answers in results.jsonl. Run the eval with --out {run}.")
    return records, summary


def write_report(run: Path) -> Path:
    """(Re)build ``RUN/report.html`` from the run's files; returns its path."""
    records, summary = load_run(Path(run))
    plot = Path(run) / "accuracy_vs_latency.png"
    page = render(records, summary.meta, summary.strategies, plot.read_bytes() if plot.is_file() else None)
    path = Path(run) / "report.html"
    write_atomic(path, page)
    return path


# --------------------------------------------------------------------------------------------------- rendering
def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: Any, fmt: str = "{:.1f}", scale: float = 1.0) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return fmt.format(value * scale)


def mark(text: str, answer: str) -> str:
    """``text`` escaped, with every word of ``answer`` it contains (longer than two characters) in ``<mark>``."""
    words = {w for w in word_tokens(answer) if len(w) > 2}
    if not words:
        return _e(text)
    out, last = [], 0
    for m in re.finditer(r"[\w$%.,-]+", text):
        token = word_tokens(m.group(0))
        if token and token[0] in words:
            out += [_e(text[last:m.start()]), "<mark>", _e(m.group(0)), "</mark>"]
            last = m.end()
    out.append(_e(text[last:]))
    return "".join(out)


def _summary_table(rows: list[dict]) -> str:
    head = ("strategy", "n", "score", "paired Δ [95 %]", "grounded", "figure not in text", "passage hit / MRR",
            "p50 s", "p95 s",
            "cold / warm s", "tokens in / out", "$ / question", "errors")
    body = []
    for r in rows:
        paired = "–"
        if "score_vs_diff" in r:
            paired = (f"{r['score_vs_diff']:+.1f} [{r['score_vs_ci_low']:+.1f}, {r['score_vs_ci_high']:+.1f}] "
                      f"vs {r['score_vs']}")
        errors = str(r.get("errors", 0)) + (f" ({r['server_errors']} server)" if r.get("server_errors") else "")
        cells = (r["strategy"], r.get("questions"), _num(r.get("score"), scale=100), paired,
                 _num(r.get("groundedness"), scale=100), _num(r.get("unsupported_figures"), scale=100),
                 f"{_num(r.get('hit'), scale=100)} / {_num(r.get('mrr'), '{:.2f}')}",
                 _num(r.get("latency_p50_s")), _num(r.get("latency_p95_s")),
                 f"{_num(r.get('cold_latency_s'))} / {_num(r.get('warm_latency_p50_s'))}",
                 f"{_num(r.get('prompt_tokens_mean'), '{:,.0f}')} / {_num(r.get('completion_tokens_mean'), '{:,.0f}')}",
                 _num(r.get("cost_usd_mean"), "{:.5f}"), errors)
        body.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    return ("<table class='summary'><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) +
            "</tr></thead><tbody>" + "".join(body) + "</tbody></table>")


def _passage(p: dict, answer: str, gold: set[int]) -> str:
    where = [p.get("location") or p.get("file") or "?"]
    if p.get("chunk_id") is not None and p["chunk_id"] in gold:
        where.append("holds the reference")
    if p.get("score") is not None:
        where.append(f"similarity {p['score']:.2f}")
    if p.get("cut"):
        where.append("excerpt")
    cls = "passage gold" if "holds the reference" in where else "passage"
    return f"<div class='{cls}'><div class='loc'>{_e(' · '.join(where))}</div>{mark(p.get('text', ''), answer)}</div>"


def _question_rows(records: list[dict], strategies: list[str]) -> tuple[str, int]:
    by_q: dict[tuple, dict[str, dict]] = {}
    for r in records:
        by_q.setdefault((r.get("document"), r["id"]), {})[r["strategy"]] = r
    rows = []
    for (document, qid), per in by_q.items():
        first = next(iter(per.values()))
        scores = {s: primary(per[s]["metrics"]) for s in strategies if s in per}
        right = {s: v is not None and v >= CORRECT for s, v in scores.items()}
        disagree = len(set(right.values())) > 1
        all_wrong = not any(right.values())
        errors = any(per[s].get("error") for s in per)
        cells = []
        for s in strategies:
            rec = per.get(s)
            if rec is None:
                cells.append("<td class='answer'>–</td>")
                continue
            score = scores.get(s)
            cls = "error" if rec.get("error") else "right" if right.get(s) else "wrong"
            text = (f"<div class='err'>{_e(rec['error_type'])}: {_e(rec['error'])}</div>" if rec.get("error")
                    else f"<div class='text'>{_e(rec.get('answer'))}</div>")
            gold = set(rec.get("gold_chunks") or [])
            passages = "".join(_passage(p, rec.get("answer", ""), gold) for p in rec.get("passages") or [])
            grounding = rec.get("grounding") or []
            if grounding:
                ok = sum(1 for g in grounding if g["supported"])
                unsupported = "".join(f"<li>{_e(g['text'])}</li>" for g in grounding if not g["supported"])
                text += (f"<div class='loc'>grounded: {ok} of {len(grounding)} sentences supported by what it read"
                         f"</div>" + (f"<ul class='unsupported'>{unsupported}</ul>" if unsupported else ""))
            figures = rec.get("missing_figures") or []
            if figures:
                text += (f"<div class='figures'>states {_e(', '.join(figures))}, which the text it read does not "
                         f"contain</div>")
            mrr = (rec.get("metrics") or {}).get("mrr")
            if mrr is not None:
                text += f"<div class='loc'>retrieval: reciprocal rank of the reference's passage {mrr:.2f}</div>"
            read = (f"<details><summary>passages read ({len(rec.get('passages') or [])})</summary>{passages}"
                    f"</details>" if passages else "")
            cells.append(f"<td class='answer {cls}'><div class='score'>{_num(score, scale=100)}</div>{text}{read}"
                         f"</td>")
        refs = "".join(f"<li>{_e(a)}</li>" for a in first.get("references") or []) or "<li><i>unanswerable</i></li>"
        where = f"<div class='doc'>{_e(document)}</div>" if document else ""
        rows.append(f"<tr class='q' data-disagree='{int(disagree)}' data-allwrong='{int(all_wrong)}' "
                    f"data-errors='{int(errors)}'><td class='question'><div class='qid'>{_e(qid)}</div>{where}"
                    f"{_e(first.get('question'))}<ul class='refs'>{refs}</ul></td>{''.join(cells)}</tr>")
    return "".join(rows), len(by_q)


STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d1d1f;background:#fff}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px} .meta{color:#555;margin:0 0 12px}
table{border-collapse:collapse;width:100%}
th,td{border:1px solid #ddd;padding:6px 8px;vertical-align:top;text-align:left}
th{background:#f4f4f6;position:sticky;top:0} table.summary td:not(:first-child){text-align:right;white-space:nowrap}
.verdict{background:#eef6ee;border-left:4px solid #3a3;padding:8px 12px;margin:12px 0}
.filters button{margin:0 6px 8px 0;padding:4px 10px;border:1px solid #bbb;background:#f8f8f8;border-radius:4px;
  cursor:pointer}
.filters button.on{background:#1d4ed8;color:#fff;border-color:#1d4ed8} .count{color:#555;margin-left:6px}
td.question{width:24%} .qid{font-size:12px;color:#777} .doc{font-size:12px;color:#777}
.refs{margin:6px 0 0 16px;padding:0;color:#225}
td.right{background:#f1faf1} td.wrong{background:#fdf3f2} td.error{background:#fff6dd}
.score{float:right;font-weight:600;color:#444;margin-left:8px} .err{color:#8a5a00}
details{margin-top:6px} summary{cursor:pointer;color:#1d4ed8;font-size:12px}
.passage{border-top:1px dashed #ccc;margin-top:6px;padding-top:4px;font-size:12px;white-space:pre-wrap}
.unsupported{margin:2px 0 0 16px;padding:0;color:#a33;font-size:12px} .figures{color:#8a5a00;font-size:12px}
.gold{border-left:3px solid #3a3;padding-left:6px} .loc{color:#777;font-size:11px}
mark{background:#ffe066;padding:0 1px} img.plot{max-width:720px;width:100%}
"""

SCRIPT = """
(function(){
  var errs = 0;
  window.addEventListener('error', function(){ errs++; document.body.dataset.errors = errs; });
  function apply(name){
    var shown = 0;
    document.querySelectorAll('tr.q').forEach(function(tr){
      var on = name === 'all' || tr.dataset[name] === '1';
      tr.style.display = on ? '' : 'none';
      if (on) shown++;
    });
    document.querySelectorAll('.filters button').forEach(function(b){
      b.classList.toggle('on', b.dataset.f === name);
    });
    document.getElementById('count').textContent = shown + ' shown';
    document.body.dataset.shown = shown;
    document.body.dataset.filter = name;
  }
  document.querySelectorAll('.filters button').forEach(function(b){
    b.addEventListener('click', function(){
      apply(b.dataset.f);
      history.replaceState(null, '', '#filter=' + b.dataset.f);
    });
  });
  var m = /filter=(\\w+)/.exec(location.hash);
  apply(m ? m[1] : 'all');
  // #click=NAME presses that filter's button, as a person would (what the browser test drives)
  var c = /click=(\\w+)/.exec(location.hash);
  if (c) { document.querySelector('.filters button[data-f="' + c[1] + '"]').click(); }
  document.body.dataset.ready = '1';
})();
"""


def render(records: list[dict], meta: dict, rows: list[dict], plot_png: bytes | None) -> str:
    """The page's HTML (see the module's docstring)."""
    strategies = [r["strategy"] for r in rows] or list(dict.fromkeys(r["strategy"] for r in records))
    questions, n = _question_rows(records, strategies)
    verdict = (meta.get("verdict") or {}).get("text")
    server = meta.get("server") or {}
    facts = [f"model {meta.get('model', '?')}", f"{meta.get('questions', n)} questions",
             f"docqa {meta['docqa_version']}" if meta.get("docqa_version") else "docqa version not recorded"]
    if server:
        facts.append(f"server {server.get('model_id')} ({server.get('build') or 'build not reported'})")
    if meta.get("length_hint"):
        facts.append("length hints (L-Eval protocol)")
    plot = (f"<img class='plot' alt='accuracy against median latency' src='data:image/png;base64,"
            f"{base64.b64encode(plot_png).decode()}'>" if plot_png else "<p>(no plot in this run)</p>")
    head = "".join(f"<th>{_e(s)}</th>" for s in strategies)
    located = (meta.get("answers_located") or {}).get("located", "–")
    judged = meta.get("grounding") or {}
    grounded_how = ("judged by " + str(judged.get("model")) if judged.get("method") == "judge"
                    else "its words and numbers found in one 3-sentence window" if judged else "not measured")
    filters = "".join(f"<button data-f='{f}'>{label}</button>" for f, label in (
        ("all", "all questions"), ("disagree", "strategies disagree"), ("allwrong", "all wrong"),
        ("errors", "errors")))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>docqa eval — {_e(meta.get('title', 'run'))}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>
<body data-questions="{n}">
<h1>docqa eval — {_e(meta.get('title', 'run'))}</h1>
<p class="meta">{_e(' · '.join(facts))}</p>
{f'<div class="verdict"><b>Verdict:</b> {_e(verdict)}</div>' if verdict else ''}
<h2>Strategies</h2>
{_summary_table(rows)}
<p class="meta">score: the set's metric on answerable questions (%); paired Δ: mean per-question difference against
the first row, 95 % bootstrap interval; grounded: share of answer sentences supported by the text the strategy
read ({_e(grounded_how)}); figure not in text: share of answers that state a figure neither the text read nor
the question holds; passage hit / MRR: how often the retrieval step ranked a chunk holding the
reference answer (%), and the mean reciprocal rank of the first one, over the {located} questions whose answer was
located in the corpus; p50 / p95: latency per answered question; cold: a strategy's first question
of each index. A strategy's error scores as a wrong answer; a server's is not scored.</p>
<h2>Accuracy against latency</h2>
{plot}
<h2>Every question</h2>
<div class="filters">{filters}<span class="count" id="count"></span></div>
<table class="questions"><thead><tr><th>question and references</th>{head}</tr></thead>
<tbody>{questions}</tbody></table>
<p class="meta">A cell is green when its score is at least {int(CORRECT * 100)}, red below, amber for an error. In the
passages, the answer's words are marked.</p>
<script>{SCRIPT}</script>
</body></html>
"""
