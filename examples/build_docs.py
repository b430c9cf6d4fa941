"""Build the pdf and docx documents of examples/docs from their plain-text sources in examples/sources.

The binary files are committed, so nobody needs to run this; it exists so that the corpus can be edited as text and
rebuilt (``.venv/bin/python examples/build_docs.py``, needs the ``dev`` extra: reportlab and python-docx).
The first line of a source is its title; blank lines separate paragraphs; a short line without a final full stop
that starts with a number is a heading.
"""

from __future__ import annotations

import re
from pathlib import Path

HERE = Path(__file__).parent
PDF = ["aquasense_x3_product_guide", "q3_2026_quarterly_report", "field_operations_manual"]
DOCX = ["travel_and_expense_policy", "engineering_release_process", "data_retention_and_privacy_policy"]


def blocks(name: str) -> tuple[str, list[tuple[str, str]]]:
    lines = (HERE / "sources" / f"{name}.txt").read_text().split("\n")
    title, body = lines[0].strip(), "\n".join(lines[1:])
    out = []
    for para in re.split(r"\n\s*\n", body):
        para = para.strip()
        if not para:
            continue
        if re.match(r"^\d+(\.\d+)*\.? ", para) and len(para) < 80 and "\n" not in para and not para.endswith("."):
            out.append(("heading", para))
        else:
            for line in para.split("\n"):
                out.append(("item" if line.startswith("- ") else "para", line.strip()))
    return title, out


def build_pdf(name: str) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer

    title, items = blocks(name)
    styles = getSampleStyleSheet()
    story = [Paragraph(title, styles["Title"]), Spacer(1, 12)]
    for kind, text in items:
        text = text.replace("&", "&amp;").replace("<", "&lt;")
        style = styles["Heading2"] if kind == "heading" else styles["BodyText"]
        story.append(Paragraph(("• " + text[2:]) if kind == "item" else text, style))
    doc = SimpleDocTemplate(str(HERE / "docs" / f"{name}.pdf"), pagesize=A4, title=title, author="Tidewell Instruments",
                            invariant=1)
    doc.build(story)


def build_docx(name: str) -> None:
    import docx

    title, items = blocks(name)
    d = docx.Document()
    d.core_properties.title = title
    d.add_heading(title, level=0)
    for kind, text in items:
        if kind == "heading":
            d.add_heading(text, level=1)
        elif kind == "item":
            d.add_paragraph(text[2:], style="List Bullet")
        else:
            d.add_paragraph(text)
    d.save(str(HERE / "docs" / f"{name}.docx"))


if __name__ == "__main__":
    for n in PDF:
        build_pdf(n)
    for n in DOCX:
        build_docx(n)
    print("built", len(PDF), "pdf and", len(DOCX), "docx files")
