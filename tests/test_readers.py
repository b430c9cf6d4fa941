"""File readers (docqa/index/readers.py): every registered suffix reads a small real-shaped file, and refuses a
damaged one with a reason; decks and workbooks are parsed safely (no entity expansion, bounded inflation)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

import docqa
from docqa.index import readers
from docqa.index.readers import READERS, Unreadable, read_file
from tests.conftest import FAKE_EMBEDDER, FAKE_MODEL

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "docs"
A = 'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"'
P = 'xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"'
R = 'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
REL = 'xmlns="http://schemas.openxmlformats.org/package/2006/relationships"'
S = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
NOTES = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/notesSlide"


def _zip(entries: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in entries.items():
            z.writestr(name, text)
    return buf.getvalue()


def _shape(paras: list[str], placeholder: str | None = None) -> str:
    ph = f'<p:nvSpPr><p:nvPr><p:ph type="{placeholder}"/></p:nvPr></p:nvSpPr>' if placeholder else ""
    body = "".join(f"<a:p><a:r><a:t>{t}</a:t></a:r></a:p>" for t in paras)
    return f"<p:sp>{ph}<p:txBody>{body}</p:txBody></p:sp>"


def _slide(*shapes: str) -> str:
    return f'<p:sld {A} {P}><p:cSld><p:spTree>{"".join(shapes)}</p:spTree></p:cSld></p:sld>'


def pptx(slide_xml: str | None = None) -> bytes:
    """Two slides whose presentation order is the reverse of their part numbers; the second has speaker notes."""
    return _zip({
        "ppt/presentation.xml": f'<p:presentation {P} {R}><p:sldIdLst><p:sldId id="256" r:id="rId3"/>'
                                f'<p:sldId id="257" r:id="rId2"/></p:sldIdLst></p:presentation>',
        "ppt/_rels/presentation.xml.rels": f'<Relationships {REL}><Relationship Id="rId2" Type="x/slide" '
                                           f'Target="slides/slide1.xml"/><Relationship Id="rId3" Type="x/slide" '
                                           f'Target="slides/slide2.xml"/></Relationships>',
        "ppt/slides/slide1.xml": slide_xml or _slide(_shape(["Q3 results", "Revenue grew 12 % to 4.1 million."])),
        "ppt/slides/slide2.xml": _slide(_shape(["Agenda"])),
        "ppt/slides/_rels/slide1.xml.rels": f'<Relationships {REL}><Relationship Id="rId1" Type="{NOTES}" '
                                            f'Target="../notesSlides/notesSlide1.xml"/></Relationships>',
        "ppt/notesSlides/notesSlide1.xml": _slide(_shape(["Mention the Berlin office."], "body"),
                                                  _shape(["2"], "sldNum")),
    })


def xlsx() -> bytes:
    return _zip({
        "xl/workbook.xml": f'<workbook {S} {R}><sheets><sheet name="Prices" sheetId="1" r:id="rId1"/></sheets>'
                           f'</workbook>',
        "xl/_rels/workbook.xml.rels": f'<Relationships {REL}><Relationship Id="rId1" Type="x/worksheet" '
                                      f'Target="worksheets/sheet1.xml"/></Relationships>',
        "xl/sharedStrings.xml": f"<sst {S}><si><t>Product</t></si><si><t>Price</t></si><si><r><t>Widget </t></r>"
                                f"<r><t>Pro</t></r></si></sst>",
        "xl/worksheets/sheet1.xml": f'<worksheet {S}><sheetData><row r="1"><c r="A1" t="s"><v>0</v></c>'
                                    f'<c r="B1" t="s"><v>1</v></c></row><row r="2"><c r="A2" t="s"><v>2</v></c>'
                                    f'<c r="B2"><v>320</v></c><c r="D2" t="inlineStr"><is><t>new</t></is></c></row>'
                                    f"</sheetData></worksheet>",
    })


# suffix → (file bytes, [(page label, text)] expected); every registered reader must appear here.
SAMPLES: dict[str, tuple[bytes, list[tuple[str | None, str]]]] = {
    ".txt": (b"The badge office opens at 8 am.\n", [(None, "The badge office opens at 8 am.")]),
    ".md": (b"# Notes\n\nThe archive is on floor -1.\n", [(None, "# Notes\n\nThe archive is on floor -1.")]),
    ".rst": (b"Parking\n=======\n\nPermits cost 40 euros.\n", [(None, "Parking\n=======\n\nPermits cost 40 euros.")]),
    ".html": (b"<html><body><p>The cafeteria closes at 3 pm.</p></body></html>",
              [(None, "The cafeteria closes at 3 pm.")]),
    ".htm": (b"<html><body><p>Lockers are free.</p></body></html>", [(None, "Lockers are free.")]),
    ".pptx": (pptx(), [("slide 1", "Agenda"), ("slide 2", "Q3 results\nRevenue grew 12 % to 4.1 million.\n"
                                                          "Notes: Mention the Berlin office.")]),
    ".xlsx": (xlsx(), [("sheet Prices", "Product; Price\nProduct: Widget Pro; Price: 320; column 4: new")]),
    ".csv": (b'city,nightly cap\nBerlin,180 EUR\n"New York, NY",320 USD\n',
             [(None, "city; nightly cap\ncity: Berlin; nightly cap: 180 EUR\n"
                     "city: New York, NY; nightly cap: 320 USD")]),
    ".tsv": (b"city\tcap\nOslo\t200 NOK\n", [(None, "city; cap\ncity: Oslo; cap: 200 NOK")]),
    ".rtf": (rb"{\rtf1\ansi{\fonttbl\f0\fswiss Helvetica;}\f0\pard The drill is on {\b Fridays}.\par}",
             [(None, "The drill is on Fridays.")]),
    ".eml": (b"Subject: Parking\nFrom: hr@example.com\nTo: all@example.com\nContent-Type: text/plain\n\n"
             b"The permit costs 40 euros a month.\n",
             [(None, "Subject: Parking\nFrom: hr@example.com\nTo: all@example.com\n\n"
                     "The permit costs 40 euros a month.")]),
    ".pdf": ((EXAMPLES / "q3_2026_quarterly_report.pdf").read_bytes(), []),  # pages checked below
    ".docx": ((EXAMPLES / "travel_and_expense_policy.docx").read_bytes(), []),
}


def test_every_registered_reader_has_a_sample():
    assert set(READERS.names()) == set(SAMPLES)


@pytest.mark.parametrize("suffix", READERS.names())
def test_every_reader_reads_its_sample(tmp_path, suffix):
    data, expected = SAMPLES[suffix]
    path = tmp_path / f"doc{suffix}"
    path.write_bytes(data)
    parts = read_file(path, path.name)
    assert parts and all(p.file == path.name and p.text.strip() for p in parts)
    if expected:
        assert [(p.page, p.text) for p in parts] == expected


@pytest.mark.parametrize("suffix", READERS.names())
def test_every_reader_refuses_garbage_and_empty_files_with_a_reason(tmp_path, suffix):
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(bytes(range(256)) * 16)
    with pytest.raises(Unreadable):
        read_file(path, path.name)
    path.write_bytes(b"")
    with pytest.raises(Unreadable, match="empty file"):
        read_file(path, path.name)


@pytest.mark.parametrize("suffix, entries, reason", [
    (".pptx", {"readme.txt": "x"}, "without ppt/presentation.xml, not a PowerPoint deck"),
    (".xlsx", {"readme.txt": "x"}, "without xl/workbook.xml, not an Excel workbook"),
    (".pptx", {"ppt/presentation.xml": "<<<not xml"}, "damaged part ppt/presentation.xml"),
    # billion laughs: defusedxml refuses entity declarations instead of expanding them
    (".xlsx", {"xl/workbook.xml": '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>'
                                  "<workbook>&b;</workbook>"}, "damaged part xl/workbook.xml .*Entit"),
])
def test_damaged_and_hostile_office_files_are_refused(tmp_path, suffix, entries, reason):
    path = tmp_path / f"x{suffix}"
    path.write_bytes(_zip(entries))
    with pytest.raises(Unreadable, match=reason):
        read_file(path, path.name)


def test_a_deck_that_inflates_past_the_budget_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "_ZIP_BUDGET", 2000)
    path = tmp_path / "big.pptx"
    path.write_bytes(pptx(_slide(_shape(["padding " * 500]))))
    with pytest.raises(Unreadable, match="inflates past"):
        read_file(path, path.name)


def test_rtf_without_its_header_is_not_rtf(tmp_path):
    path = tmp_path / "memo.rtf"
    path.write_bytes(b"just text in a file named .rtf")
    with pytest.raises(Unreadable, match="not RTF"):
        read_file(path, path.name)


def test_new_formats_are_ingested_and_cited_by_slide_and_sheet(tmp_path):
    for name, suffix in (("deck", ".pptx"), ("prices", ".xlsx"), ("rates", ".csv"), ("memo", ".rtf"), ("note", ".eml")):
        (tmp_path / f"{name}{suffix}").write_bytes(SAMPLES[suffix][0])
    report = docqa.ingest(tmp_path, "formats", embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    assert {f.file for f in report.files if f.status == "added"} == {"deck.pptx", "prices.xlsx", "rates.csv",
                                                                       "memo.rtf", "note.eml"}
    chunks = docqa.open_index("formats", model=FAKE_MODEL).corpus.store.chunks()
    assert {(c.file, c.page) for c in chunks} >= {("deck.pptx", "slide 2"), ("prices.xlsx", "sheet Prices")}
    answer = docqa.open_index("formats", model=FAKE_MODEL).ask("How much did revenue grow?", "rag")
    assert "deck.pptx, slide 2" in [s.location() for s in answer.sources]
