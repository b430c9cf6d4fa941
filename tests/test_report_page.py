"""report.html: every eval run writes one self-contained page, `docqa report` rebuilds it, and a real headless
Chromium (from the distribution's packages; `make test` installs it) loads it without errors, shows one row per
question, filters them, and paints something."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

import docqa
from docqa.cli.main import app
from docqa.errors import ConfigError
from docqa.eval.html_report import load_run, mark, write_report
from tests.conftest import EXAMPLES, FAKE_EMBEDDER, FAKE_MODEL

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def run_dir(tmp_path):
    tmp = tmp_path / "run"
    docs = tmp / "docs"
    docs.mkdir(parents=True)
    for name in ("employee_handbook.md", "travel_and_expense_policy.docx"):
        shutil.copy(EXAMPLES / name, docs / name)
    docqa.ingest(docs, "t", root=tmp / "idx", embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    rows = [json.loads(x) for x in (EXAMPLES.parent / "questions.jsonl").read_text().splitlines() if x.strip()][:10]
    qfile = tmp / "q.jsonl"
    qfile.write_text("".join(json.dumps(r) + "\n" for r in rows))
    docqa.evaluate(qfile, index="t", root=tmp / "idx", strategies=["rag", "long-context"], out=tmp / "out",
                   model=FAKE_MODEL, max_new_tokens=32)
    return tmp / "out"


def test_every_run_writes_a_self_contained_page_with_every_question(run_dir):
    page = (run_dir / "report.html").read_text()
    records = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]
    questions = {r["id"] for r in records}
    assert page.count("<tr class='q'") == len(questions) == 10
    assert "data:image/png;base64," in page  # the plot travels inside the page
    assert not re.search(r"""(src|href)=["']https?://""", page)  # nothing fetched from the network
    assert all(r.get("passages") for r in records if not r["error"])  # what each strategy read is kept
    assert "<mark>" in page  # the answer's words marked in the passages


def test_docqa_report_rebuilds_the_page_from_the_files(run_dir):
    before = (run_dir / "report.html").read_text()
    (run_dir / "report.html").unlink()
    r = CliRunner().invoke(app, ["report", str(run_dir)])
    assert r.exit_code == 0, r.output
    assert (run_dir / "report.html").read_text() == before


def test_a_folder_that_is_not_a_whole_run_is_one_line(run_dir, tmp_path):
    with pytest.raises(ConfigError, match="is not a docqa eval run"):
        load_run(tmp_path)
    half = tmp_path / "half"
    shutil.copytree(run_dir, half)
    (half / "summary.json").unlink()
    with pytest.raises(ConfigError, match=r"half-written \(no summary.json\).*--resume"):
        load_run(half)
    torn = tmp_path / "torn"
    shutil.copytree(run_dir, torn)
    with open(torn / "results.jsonl", "a") as f:
        f.write('{"id": "x", "strat')
    with pytest.raises(ConfigError, match="1 torn line"):
        load_run(torn)
    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    (other / "results.jsonl").write_text(json.dumps({"id": "q", "strategy": "rag"}) + "\n")
    with pytest.raises(ConfigError, match="another version"):
        load_run(other)
    r = CliRunner().invoke(app, ["report", str(tmp_path / "nope")])
    assert r.exit_code == 1 and r.output.count("error:") == 1 and "Traceback" not in r.output


def test_an_older_run_without_passages_still_gets_a_page(run_dir, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(run_dir, old)
    lines = [json.loads(x) for x in (old / "results.jsonl").read_text().splitlines()]
    (old / "results.jsonl").write_text("".join(json.dumps({k: v for k, v in r.items() if k != "passages"}) + "\n"
                                               for r in lines))
    page = write_report(old).read_text()
    assert page.count("<tr class='q'") == 10 and "passages read" not in page


def test_marking_escapes_the_text_and_marks_the_answers_words():
    out = mark("The cap is <b>220</b> dollars & more.", "220 dollars")
    assert "<mark>220</mark>" in out and "<mark>dollars</mark>" in out and "&lt;b&gt;" in out and "<b>" not in out


def _chromium(url: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--enable-logging=stderr", "--v=0", "--virtual-time-budget=3000", *extra, url],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (make test installs it: "
                                             "apt-get install chromium)")
def test_the_page_in_a_real_browser(run_dir, tmp_path):
    url = (run_dir / "report.html").resolve().as_uri()
    records = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]
    n = len({r["id"] for r in records})

    def shown(filter_name: str | None, hash_: str | None = None) -> tuple[int, str]:
        r = _chromium(url + (f"#filter={filter_name}" if filter_name else f"#{hash_}" if hash_ else ""), "--dump-dom")
        body = re.search(r"<body[^>]*>", r.stdout)
        assert body, r.stderr[-2000:]
        attrs = dict(re.findall(r'data-(\w+)="([^"]*)"', body.group(0)))
        assert attrs.get("ready") == "1", (attrs, r.stderr[-2000:])  # the script ran to its end
        assert "errors" not in attrs, attrs  # no script error on the page
        console = [x for x in r.stderr.splitlines() if ":CONSOLE(" in x]
        assert not console, console  # nothing said on the console
        return int(attrs["shown"]), r.stdout

    total, dom = shown(None)
    assert total == n == int(re.search(r'data-questions="(\d+)"', dom).group(1))
    assert dom.count('class="q"') == n
    counts = {f: shown(f)[0] for f in ("disagree", "allwrong", "errors")}
    assert all(0 <= c <= n for c in counts.values())
    assert any(c != n for c in counts.values()), counts  # a filter changes what is shown
    changing = next(f for f, c in counts.items() if c != n)
    clicked, dom = shown(None, f"click={changing}")  # the button pressed, through its click handler
    assert clicked == counts[changing] and f'data-filter="{changing}"' in dom
    shot = tmp_path / "page.png"
    r = _chromium(url, f"--screenshot={shot}", "--window-size=1280,1600")
    assert shot.is_file(), r.stderr[-2000:]
    from PIL import Image

    img = Image.open(shot).convert("L")
    lo, hi = img.getextrema()
    colors = len(img.getcolors(maxcolors=256 * 256) or [])
    assert hi - lo > 100 and colors > 20, (lo, hi, colors)  # text, table lines and the plot: not a blank page
