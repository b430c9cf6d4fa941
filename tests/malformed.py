"""A folder as a real shared drive has it: two good documents among malformed files, odd names and special entries.

Used by the bad-document tests and by benchmarks/reliability.py. Every entry says what docqa must do with it:
"good" files are indexed, "bad" ones are listed with a reason and never indexed, "tolerated" ones are text in an
unusual form that docqa reads (legacy encodings, BOMs, odd names).
"""

from __future__ import annotations

import io
import os
import random
import zipfile
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "docs"


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def make_messy_folder(dst: Path, seed: int = 0) -> dict[str, str]:
    """Create the folder; returns {relative name (as docqa reports it): "good" | "bad" | "tolerated" | "ignored"}."""
    rng = random.Random(seed)
    dst.mkdir(parents=True, exist_ok=True)
    noise = lambda n: bytes(rng.randrange(256) for _ in range(n))  # noqa: E731
    pdf = (EXAMPLES / "q3_2026_quarterly_report.pdf").read_bytes()
    docx = (EXAMPLES / "travel_and_expense_policy.docx").read_bytes()
    files: dict[str, bytes] = {
        # bad: nothing a reader can use
        "empty.txt": b"", "empty.md": b"", "empty.pdf": b"", "empty.docx": b"", "empty.html": b"",
        "garbage.txt": noise(4096), "garbage.md": noise(4096), "garbage.pdf": noise(4096),
        "garbage.docx": noise(4096), "garbage.html": noise(4096), "garbage.htm": noise(2048),
        "nuls.txt": b"\x00" * 1000,
        "whitespace.txt": b" \n\t\n   \r\n",
        "control_codes.md": b"\x1b[31m\x07\x08\x1b[0m" * 300,
        "high_bytes.txt": bytes(rng.randrange(128, 256) for _ in range(4096)),
        "zip_not_docx.docx": _zip({"readme.txt": b"not a word document"}),
        "docx_bad_xml.docx": _zip({"[Content_Types].xml": b"<x/>", "word/document.xml": b"<<<not xml"}),
        "truncated.docx": docx[: len(docx) // 2],
        "truncated.pdf": pdf[: len(pdf) // 3],
        "header_only.pdf": b"%PDF-1.7\n%%EOF\n",
        "pdf_then_garbage.pdf": b"%PDF-1.4\n" + noise(3000),
        "empty_body.html": b"<html><head><title>t</title></head><body></body></html>",
        "script_only.html": b"<html><body><script>var x = 1;</script></body></html>",
        "deep.html": b"<html><body>" + b"<div>" * 60000 + b"deep text" + b"</div>" * 60000 + b"</body></html>",
        "utf16_no_bom.txt": "Policy text in UTF-16 without a byte-order mark.".encode("utf-16-le"),
        "big_one_line.txt": b"word " * (1200 * 1024 // 5),  # over the test's --max-file-mb 1
        "program.exe": b"MZ" + noise(1000),
        "sheet.xlsx": _zip({"xl/workbook.xml": b"<workbook/>"}),
        "[bold]markup[/] name.txt": b"\x00\x01binary under a name that looks like rich markup",
        # tolerated: real text in unusual encodings or names
        "latin1.txt": "Caf\u00e9 policy: the d\u00e9j\u00e0-vu allowance is 12 \u00a3 per day.".encode("latin-1"),
        "utf8_bom.md": "\ufeff# Notes\n\nThe badge office opens at 8 am.\n".encode(),
        "utf16_bom.txt": "The parking permit costs 40 euros a month.".encode("utf-16"),
        "crlf.txt": b"Line one of a Windows file.\r\nLine two: the fire drill is on Fridays.\r\n",
        "unclosed.html": b"<html><body><p>The cafeteria closes at 3 pm.<p>Unclosed tags everywhere",
        "odd name\nwith newline.txt": b"A file whose name holds a newline still has text.",
        "x" * 200 + ".txt": b"A file with a 204-character name.",
        "sub/deeper/nested.md": b"# Nested\n\nThe archive room is on floor -1.\n",
    }
    for name, data in files.items():
        path = dst / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    # good: two real documents
    for name in ("employee_handbook.md", "travel_and_expense_policy.docx"):
        (dst / name).write_bytes((EXAMPLES / name).read_bytes())
    # a name that is not valid UTF-8 (bytes on disk), with good text
    os.makedirs(dst / "legacy", exist_ok=True)
    with open(os.path.join(os.fsencode(dst / "legacy"), b"caf\xe9 menu.txt"), "wb") as f:
        f.write(b"The menu changes every Monday.")
    # special entries: never opened, always listed
    os.mkfifo(dst / "pipe.txt")
    os.symlink(dst / "does-not-exist.txt", dst / "dangling.txt")
    os.symlink(dst / "loop_b.txt", dst / "loop_a.txt")
    os.symlink(dst / "loop_a.txt", dst / "loop_b.txt")
    os.symlink(dst, dst / "sub" / "back_to_top")  # a folder link back up: a loop
    os.symlink(dst / "employee_handbook.md", dst / "link_to_handbook.md")  # a good link: indexed
    (dst / ".hidden").mkdir()
    (dst / ".hidden" / "secret.txt").write_bytes(b"hidden files are not documents")
    expected = {n: "bad" for n in files}
    for n in ("latin1.txt", "utf8_bom.md", "utf16_bom.txt", "crlf.txt", "unclosed.html",
              "deep.html",              "odd name\nwith newline.txt", "x" * 200 + ".txt", "sub/deeper/nested.md"):
        expected[n] = "tolerated"
    expected.update({"employee_handbook.md": "good", "travel_and_expense_policy.docx": "good",
                     "link_to_handbook.md": "good", "legacy/caf\ufffd menu.txt": "tolerated",
                     "pipe.txt": "bad", "dangling.txt": "bad", "loop_a.txt": "bad", "loop_b.txt": "bad",
                     "sub/back_to_top": "bad"})
    return expected
