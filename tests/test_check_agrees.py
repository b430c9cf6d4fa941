"""`docqa check` reads what `ask` reads; only text a reader sees is indexed; lists are parsed strictly; every error is
one line (issue: check reads what ask reads)."""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

import docqa
from docqa import api
from docqa.cli.main import app
from docqa.errors import ConfigError, DimensionMismatch, DocQAError, first_line, one_line
from docqa.eval.questions import load_jsonl
from docqa.lists import split_list
from tests.conftest import FAKE_EMBEDDER, FAKE_MODEL
from tests.faults import CORRUPTIONS, live


def _offline(monkeypatch) -> None:
    """No hub: the environment variable for processes this test starts, the constant huggingface_hub read at import
    (an earlier test may have imported it before the variable was set) for this one."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def _edit_manifest(change):
    def damage(home, v, p):
        m = json.loads((v / "manifest.json").read_text())
        change(m)
        (v / "manifest.json").write_text(json.dumps(m))
    return damage


# Edits of what the manifest says (each file's checksums still hold): the cases `check` used to call intact.
MANIFEST_EDITS = {
    "manifest names an embedder of another size": _edit_manifest(lambda m: m.update(embedder="fake:hash32")),
    "manifest names an embedder this machine lacks":
        _edit_manifest(lambda m: m.update(embedder="sentence-transformers/not-installed-here-xyz")),
    "manifest records another vector size": _edit_manifest(lambda m: m.update(dim=32)),
    "manifest records no vector size (an older index)": _edit_manifest(lambda m: m.pop("dim")),
    "manifest records other chunk settings": _edit_manifest(lambda m: m.update(chunk_tokens=999)),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS) + sorted(MANIFEST_EDITS))
def test_check_and_ask_agree_on_every_kind_of_damage(two_versions, case, monkeypatch):
    """check finds it, or ask works: never "intact" followed by a refusal or a crash."""
    _offline(monkeypatch)
    _, root = two_versions
    home = root / "t"
    versions = sorted(home.glob("v*"))
    (CORRUPTIONS | MANIFEST_EDITS)[case](home, versions[-1], versions[-2])
    try:
        report = api.check("t", root=root)
        check_ok = report.ok
    except DocQAError:
        check_ok = False
    try:
        answer = docqa.open_index("t", root=root, model=FAKE_MODEL).ask("What is the nightly hotel cap?", "rag")
        ask_ok = bool(answer.sources)
    except DocQAError:
        ask_ok = False
    assert not check_ok or ask_ok, f"check called '{case}' intact, and ask failed"
    runner = CliRunner()
    r_check = runner.invoke(app, ["check", "t", "--root", str(root)])
    r_ask = runner.invoke(app, ["ask", "hotel cap?", "--index", "t", "--root", str(root), "--model", FAKE_MODEL,
                                "--strategy", "rag"])
    assert r_check.exit_code == (0 if check_ok else 1), r_check.output
    assert r_ask.exit_code == (0 if ask_ok else 1), r_ask.output  # 2 would be a bug said as "internal error"
    assert "Traceback" not in r_ask.output + r_check.output


def test_an_embedder_of_another_size_is_one_red_line_on_check_and_ask(indexed, tmp_path):
    """The issue's reproduction: ingest with the 64-d test embedder, then let the manifest name another size."""
    root = tmp_path / "indexes"
    v = live(root / indexed)
    m = json.loads((v / "manifest.json").read_text())
    m["embedder"] = "fake:hash384"
    (v / "manifest.json").write_text(json.dumps(m))
    r = CliRunner().invoke(app, ["check", indexed])
    assert r.exit_code == 1
    line = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(line) == 1 and "64-d" in line[0] and "384-d" in line[0] and "--rebuild" in line[0]
    r = CliRunner().invoke(app, ["ask", "hotel cap?", "--index", indexed, "--model", FAKE_MODEL])
    assert r.exit_code == 1 and "internal error" not in r.output
    assert r.output.count("\n") == 1 and "64-d" in r.output and "384-d" in r.output and "--rebuild" in r.output
    with pytest.raises(DimensionMismatch):
        docqa.open_index(indexed, model=FAKE_MODEL).ask("hotel cap?", "rag")
    # long-context reads no vectors, so it still answers (and check said why rag cannot)
    assert docqa.open_index(indexed, model=FAKE_MODEL).ask("hotel cap?", "long-context").text


def test_an_unloadable_embedder_is_one_line_without_the_hubs_paragraph(indexed, tmp_path, monkeypatch):
    _offline(monkeypatch)
    v = live(tmp_path / "indexes" / indexed)
    m = json.loads((v / "manifest.json").read_text())
    m["embedder"] = "sentence-transformers/not-installed-here-xyz"
    (v / "manifest.json").write_text(json.dumps(m))
    r = CliRunner().invoke(app, ["ask", "hotel cap?", "--index", indexed, "--model", FAKE_MODEL])
    assert r.exit_code == 1
    err = r.output.strip()
    assert err.startswith("error:") and "\n" not in err and ".." not in err, err
    assert "not-installed-here-xyz" in err and "--rebuild" in err
    r = CliRunner().invoke(app, ["check", indexed])
    assert r.exit_code == 1 and "does not load here" in r.output
    assert CliRunner().invoke(app, ["check", indexed, "--no-embedder"]).exit_code == 0


# ------------------------------------------------------------------------------------------- only visible text
def test_html_script_style_and_hidden_text_are_not_indexed(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "only_script.html").write_text("<html><head><style>p { color: red }</style></head><body>"
                                           "<script>var x = 1;</script><noscript>Enable JavaScript</noscript>"
                                           "</body></html>")
    (docs / "page.html").write_text(
        "<html><head><title>Policy</title><script>track('visit')</script></head><body><p>Probation lasts "
        "<b>90</b> days.</p><template><p>TEMPLATE ROW</p></template><svg><text>chart label</text></svg>"
        "<div hidden>draft text</div><!-- internal comment --><p>Parking is free.</p></body></html>")
    r = CliRunner().invoke(app, ["ingest", str(docs), "--index", "h", "--embedder", FAKE_EMBEDDER,
                                 "--model", FAKE_MODEL])
    assert r.exit_code == 0, r.output
    assert "only_script.html" in r.output and "no extractable text" in r.output  # said in the summary, like empty
    store = docqa.open_index("h", model=FAKE_MODEL).corpus.store
    assert store.file_names() == ["page.html"]
    text = "\n".join(c.text for c in store.chunks())
    assert "Probation lasts 90 days." in text and "Parking is free." in text
    for hidden in ("var x", "track(", "color: red", "Enable JavaScript", "TEMPLATE ROW", "chart label", "draft text",
                   "internal comment", "Policy"):
        assert hidden not in text


def test_an_html_e_mail_body_drops_its_styles(tmp_path):
    from docqa.index.readers import read_file

    eml = tmp_path / "note.eml"
    eml.write_bytes(b"Subject: Parking\r\nFrom: a@example.com\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
                    b"<html><head><style>.x{}</style></head><body><p>Parking is free.</p>"
                    b"<script>alert(1)</script></body></html>")
    text = read_file(eml, "note.eml")[0].text
    assert "Parking is free." in text and "alert" not in text and ".x{}" not in text


# ------------------------------------------------------------------------------------------- strict lists
@pytest.mark.parametrize("args,position", [
    (["ask", "q?", "--strategy", "rag,,"], "item 2 of 3"),
    (["ask", "q?", "--strategy", ",rag"], "item 1 of 2 (the first)"),
    (["ask", "q?", "--strategy", "rag,"], "item 2 of 2 (the last)"),
    (["eval", "examples/questions.jsonl", "--strategies", "rag,,long-context"], "item 2 of 3"),
    (["eval", "examples/questions.jsonl", "--strategies", "rag:top_k=4||8"], "item 2 of 3"),
    (["eval", "examples/questions.jsonl", "--strategies", "rag:top_k=|8"], "item 1 of 2"),
    (["bench", "rope", "--methods", "none,,yarn"], "item 2 of 3"),
    (["bench", "needle", "--forms", "question,"], "item 2 of 2"),
    (["bench", "needle", "--lengths", "2k,,4k"], "item 2 of 3"),
    (["bench", "needle", "--depths", "0,,50"], "item 2 of 3"),
])
def test_an_empty_list_item_is_one_red_line_naming_its_position(args, position, indexed):
    r = CliRunner().invoke(app, args + (["--index", indexed] if args[0] in ("ask", "eval") else []))
    assert r.exit_code == 1, r.output
    assert r.output.strip().count("\n") == 0 and position in r.output and "empty" in r.output, r.output


@given(st.lists(st.text(alphabet=string.ascii_letters + ":=_-| ", min_size=1).filter(lambda s: s.strip() and
                                                                                        "," not in s), min_size=1),
       st.data())
def test_split_list_round_trips_and_names_an_empty_item(items, data):
    items = [i.strip() for i in items]
    assert split_list(",".join(items), "--x") == items
    at = data.draw(st.integers(0, len(items)))
    holed = items[:at] + [" "] + items[at:]
    with pytest.raises(ConfigError, match=f"item {at + 1} of {len(holed)}"):
        split_list(",".join(holed), "--x")


def test_a_csv_answer_list_with_an_empty_item_names_the_line(tmp_path):
    f = tmp_path / "q.csv"
    f.write_text('question,answers\n"How long?","90 days||three months"\n')
    with pytest.raises(DocQAError, match=r"q.csv:2: answers .*item 2 of 3 is empty"):
        load_jsonl(f)


# ------------------------------------------------------------------------------------------- files and errors
def test_question_files_with_cr_only_line_ends_are_read(tmp_path):
    jl = tmp_path / "mac.jsonl"
    jl.write_bytes(b'{"question": "How long is probation?", "answers": ["90 days"]}\r'
                   b'{"question": "Hotel cap?", "answers": ["220"]}\r')
    assert [q.question for q in load_jsonl(jl)] == ["How long is probation?", "Hotel cap?"]
    csv = tmp_path / "mac.csv"
    csv.write_bytes(b'question,answers\r"How long is probation?",90 days|three months\r"Hotel cap?",220\r')
    qs = load_jsonl(csv)
    assert [q.answers for q in qs] == [["90 days", "three months"], ["220"]]
    bad = tmp_path / "bad.jsonl"  # line numbers still count CR-only lines
    bad.write_bytes(b'{"question": "a?"}\r{not json\r')
    with pytest.raises(DocQAError, match=r"bad.jsonl:2:"):
        load_jsonl(bad)


def test_eval_reads_a_cr_only_question_file_through_the_cli(indexed, tmp_path):
    q = tmp_path / "mac.jsonl"
    q.write_bytes(b'{"id": "probation", "question": "How long is the probation period for new employees?", '
                  b'"answers": ["90 days"]}\r{"id": "hotel", "question": "What is the nightly hotel cap?", '
                  b'"answers": ["220 US dollars"]}\r')
    r = CliRunner().invoke(app, ["eval", str(q), "--index", indexed, "--strategies", "rag", "--model", FAKE_MODEL,
                                 "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    ids = [json.loads(line)["id"] for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    assert sorted(ids) == ["hotel", "probation"]


def test_first_line_keeps_the_meaningful_line_without_its_period():
    hub = OSError("We couldn't connect to 'https://huggingface.co' to load the files.\nCheck your internet "
                  "connection or see https://huggingface.co/docs/offline.")
    assert first_line(hub) == "We couldn't connect to 'https://huggingface.co' to load the files"
    assert first_line(ValueError("\n\n  Traceback (most recent call last):\n  File \"x\"\nboom: bad.\n")) == "boom: bad"
    assert first_line(KeyError()) == "KeyError"
    assert len(first_line("x" * 500)) == 200
    assert one_line("a\n\n b \nc") == "a · b · c"


def test_no_inline_imports_left_in_the_question_reader():
    from pathlib import Path

    src = (Path(__file__).parents[1] / "docqa" / "eval" / "questions.py").read_text()
    assert "__import__(" not in src
