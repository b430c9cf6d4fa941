"""docqa bench on a tiny random Llama: files, resume, and that every method equals plain RoPE within the window."""

from __future__ import annotations

import json
import random

import pytest
from typer.testing import CliRunner

import docqa
from docqa.bench.common import BenchProgress, parse_fractions, parse_lengths
from docqa.bench.needle import NeedleBenchConfig, run_needle
from docqa.bench.rope_ppl import RopeBenchConfig, run_rope
from docqa.cli.main import app
from docqa.errors import ConfigError
from docqa.generators import GeneratorConfig, TransformersGenerator
from tests import tiny_llama

WINDOW = 64


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tiny_llama.build(tmp_path_factory.mktemp("tiny"), window=WINDOW)
    gen = TransformersGenerator("tiny", str(folder), GeneratorConfig(model=str(folder), prefill_chunk=32))
    return folder, gen


def _text(n_words: int = 600, seed: int = 0) -> str:
    rng = random.Random(seed)
    words = tiny_llama.WORDS
    return " ".join(rng.choice(words) + (" ." if i % 9 == 8 else "") for i in range(n_words))


class Counting(BenchProgress):
    def __init__(self):
        self.cells, self.labels = 0, []

    def done(self, label, result):
        self.cells += 1
        self.labels.append(label)


def _ppls(rows):
    return {(r["length"], r["method"]): round(r["ppl"], 9) for r in rows}


def test_lengths_and_depths_parse():
    assert parse_lengths("2k, 4K,8192,2k") == [2048, 4096, 8192]
    assert parse_fractions("0,50,100") == [0.0, 0.5, 1.0]
    for bad in ("2x", "", "-1"):
        with pytest.raises(ConfigError):
            parse_lengths(bad)


def test_rope_bench_writes_files_resumes_and_is_plain_within_the_window(tiny, tmp_path):
    _, gen = tiny
    cfg = RopeBenchConfig(lengths=[48, 128], methods=["none", "yarn"], tail=16, reuse_identical=False)
    p1 = Counting()
    res = run_rope(gen, _text(), cfg, tmp_path / "r", progress=p1)
    assert p1.cells == 4 and res.computed == 4
    for name in ("results.json", "results.csv", "ppl_vs_length.png", "cells.jsonl"):
        assert (tmp_path / "r" / name).stat().st_size > 0
    rows = {(r["length"], r["method"]): r for r in res.rows}
    # Within the window, yarn's plan is plain RoPE, computed separately here: the same perplexity.
    assert rows[(48, "yarn")]["ppl"] == pytest.approx(rows[(48, "none")]["ppl"], rel=1e-6)
    assert rows[(128, "yarn")]["factor"] > 1 and rows[(128, "yarn")]["ppl"] != rows[(128, "none")]["ppl"]
    # Every length scored the same slice: the cells' token ids end the same way (same window, same tail).
    cells = [json.loads(x) for x in (tmp_path / "r" / "cells.jsonl").read_text().splitlines()[1:]]
    assert {c["length"] for c in cells} == {48, 128}
    # Resume: a second run computes nothing and reports the same numbers.
    p2 = Counting()
    again = run_rope(gen, _text(), cfg, tmp_path / "r", progress=p2)
    assert p2.cells == 0 and again.computed == 0 and again.rows == res.rows
    # An interrupted run (only some cells logged) computes only the rest.
    lines = (tmp_path / "r" / "cells.jsonl").read_text().splitlines()
    (tmp_path / "r" / "cells.jsonl").write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])  # one torn line
    p3 = Counting()
    resumed = run_rope(gen, _text(), cfg, tmp_path / "r", progress=p3)
    assert p3.cells == 2 and _ppls(resumed.rows) == _ppls(res.rows)


def test_identical_plans_are_computed_once(tiny, tmp_path):
    _, gen = tiny
    cfg = RopeBenchConfig(lengths=[48, 128], methods=["none", "linear", "ntk", "dynamic", "yarn"], tail=16)
    res = run_rope(gen, _text(), cfg, tmp_path / "r")
    # 48 (inside the window): one plain plan for all five; 128: none, linear, ntk = dynamic (same frequencies when
    # sized for the same length), yarn.
    assert res.computed == 5
    shared = [r for r in res.rows if r["shared"]]
    assert {(r["length"], r["method"]) for r in shared} == {(48, m) for m in ("linear", "ntk", "dynamic", "yarn")} | {
        (128, "dynamic")}
    rows = {(r["length"], r["method"]): r["ppl"] for r in res.rows}
    assert rows[(128, "ntk")] == rows[(128, "dynamic")]


def test_a_resumed_grid_shares_finished_cells_with_identical_plans(tiny, tmp_path):
    """Methods added to a finished grid compute only what differs: within the window their plans are the finished
    plain cell's (before, a resumed grid computed each of them again: ~3 min a 32 k cell for Gemma 3)."""
    folder, gen = tiny
    run_rope(gen, _text(), RopeBenchConfig(lengths=[48, 128], methods=["none"], tail=16), tmp_path / "r")
    more = run_rope(gen, _text(), RopeBenchConfig(lengths=[48, 128], methods=["none", "yarn", "linear"], tail=16),
                    tmp_path / "r")
    assert more.computed == 2  # yarn and linear at 128; at 48 both are the logged plain cell
    rows = {(r["length"], r["method"]): r["ppl"] for r in more.rows}
    assert rows[(48, "yarn")] == rows[(48, "linear")] == rows[(48, "none")]
    needle = TransformersGenerator("tiny", str(folder), GeneratorConfig(model=str(folder), trained_window=160))
    cfg = dict(lengths=[120, 240], depths=[0.0, 1.0], needle="w1 w2 w3 w200 .", question="w1 w2 w3 ?",
               answer="w200", max_new_tokens=4, forms=["passkey"])
    run_needle(needle, _text(), NeedleBenchConfig(methods=["none"], **cfg), tmp_path / "n")
    resumed = run_needle(needle, _text(), NeedleBenchConfig(methods=["none", "yarn"], **cfg), tmp_path / "n")
    assert resumed.computed == 2  # yarn at 240 only


def test_rope_bench_refuses_other_settings_in_the_same_folder_and_short_texts(tiny, tmp_path):
    _, gen = tiny
    run_rope(gen, _text(), RopeBenchConfig(lengths=[48, 96], methods=["none"], tail=16), tmp_path / "r")
    with pytest.raises(ConfigError, match="other settings .*tail"):
        run_rope(gen, _text(), RopeBenchConfig(lengths=[48, 96], methods=["none"], tail=8), tmp_path / "r")
    res = run_rope(gen, _text(), RopeBenchConfig(lengths=[48, 96], methods=["none"], tail=8, fresh=True),
                   tmp_path / "r")
    assert res.computed == 2
    with pytest.raises(ConfigError, match="The text has .* tokens"):
        run_rope(gen, _text(20), RopeBenchConfig(lengths=[48, 96], methods=["none"], tail=8), tmp_path / "s")


def test_needle_bench_writes_a_heatmap_per_method_and_resumes(tiny, tmp_path):
    folder, _ = tiny
    # The chat prompt alone is ~60 tokens here (the tiny vocabulary spells the system prompt as <unk>s): a wider
    # trained window leaves room for a haystack.
    gen = TransformersGenerator("tiny", str(folder), GeneratorConfig(model=str(folder), trained_window=160))
    cfg = NeedleBenchConfig(lengths=[120, 240], depths=[0.0, 1.0], methods=["none", "yarn"],
                            needle="w1 w2 w3 w200 .", question="w1 w2 w3 ?", answer="w200", max_new_tokens=4)
    p1 = Counting()
    res = run_needle(gen, _text(), cfg, tmp_path / "n", progress=p1)
    assert res.computed == p1.cells == 6  # within the window both methods share one cell per depth
    assert len(res.cells) == 2 * 2 * 2 * 2  # lengths × depths × methods × forms
    for name in ("results.json", "needle_none.png", "needle_yarn.png", "cells.jsonl"):
        assert (tmp_path / "n" / name).stat().st_size > 0
    assert all(c["prompt_tokens"] <= c["length"] for c in res.cells)
    assert {c["form"] for c in res.cells} == {"question", "passkey"}
    p2 = Counting()
    again = run_needle(gen, _text(), cfg, tmp_path / "n", progress=p2)
    assert p2.cells == 0 and again.rows == res.rows


def test_cli_bench_rope_prints_a_table(tiny, tmp_path):
    folder, _ = tiny
    text = tmp_path / "t.txt"
    text.write_text(_text())
    r = CliRunner().invoke(app, ["bench", "rope", "--model", str(folder), "--lengths", "48,128", "--methods",
                                 "none,ntk", "--tail", "16", "--text", str(text), "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    flat = " ".join(r.output.split())
    assert "perplexity of the final 16 tokens" in flat and "128 *" in flat, r.output
    r = CliRunner().invoke(app, ["bench", "needle", "--model", str(folder), "--lengths", "200", "--text",
                                 str(text), "--needle", "w5 w6 .", "--out", str(tmp_path / "n")])
    assert r.exit_code == 1 and "--answer" in r.output and "Traceback" not in r.output


def test_library_entry_point(tiny, tmp_path):
    folder, _ = tiny
    text = tmp_path / "t.txt"
    text.write_text(_text())
    res = docqa.api.bench_rope(lengths=[48], methods=["none"], tail=16, text=text, model=str(folder),
                               out=tmp_path / "o")
    assert res.rows[0]["ppl"] > 1
