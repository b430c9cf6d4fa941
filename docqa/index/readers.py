"""Readers: a file's bytes → its text, as one or more :class:`DocumentPart` (pages of a pdf, slides of a deck,
sheets of a workbook).

Each supported suffix maps to a reader in ``READERS`` with one signature, ``fn(path, name, data) -> list[DocumentPart]``
(``data``: the file's bytes, already read and size-checked). pdf and docx go through llama-index's readers; html,
plain text, CSV, RTF, e-mail and the Office Open XML decks and workbooks are read here with the standard library
(and striprtf and BeautifulSoup, which llama-index's file readers already install): llama-index's pptx reader needs
python-pptx and captions images with a vision model it downloads, its xlsx reader needs pandas and openpyxl, for text
that is a few XML elements away, and its html reader kept script and style text. Every reader raises
:class:`Unreadable` with the reason for a file it cannot read; nothing
else escapes to the ingest loop but the errors it reports per file.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

from ..errors import first_line
from ..registry import Registry
from .segments import DocumentPart

_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
         (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))
# Office Open XML: suffix → (what it is, the member every such file holds).
_OOXML = {".docx": ("a Word document", "word/document.xml"), ".pptx": ("a PowerPoint deck", "ppt/presentation.xml"),
          ".xlsx": ("an Excel workbook", "xl/workbook.xml")}


class Unreadable(Exception):
    """A file that cannot be ingested, with the reason shown to the user."""


def decode_text(data: bytes) -> str:
    """Bytes of a text file as text: a BOM's encoding, else UTF-8, else Windows-1252 (the usual encoding of older
    office text files), after checking the bytes are text at all. Raises :class:`Unreadable` for binary content."""
    for bom, enc in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(enc)
            except UnicodeDecodeError as e:
                raise Unreadable(f"starts with a {enc} byte-order mark but is not {enc} ({e.reason})") from e
    head = data[:65536]
    if b"\x00" in head:
        even, odd = head[0::2].count(0) / len(head[0::2]), head[1::2].count(0) / max(1, len(head[1::2]))
        if len(head) > 16 and max(even, odd) > 0.9 and min(even, odd) < 0.1:  # ASCII as UTF-16: every other byte 0
            raise Unreadable("UTF-16 text without a byte-order mark; save it as UTF-8")
        raise Unreadable("binary content (NUL bytes), not text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # Legacy 8-bit text has a few accented letters among ASCII; random bytes are half high bytes.
        if sum(1 for b in head if b >= 0x80) > 0.3 * len(head):
            raise Unreadable("binary content (not UTF-8, and too many non-ASCII bytes for legacy text)") from None
        text = data.decode("cp1252", errors="replace")
    sample = text[:65536]
    controls = sum(1 for c in sample if (ord(c) < 32 and c not in "\t\n\r\f") or c == "\ufffd" or 0x7F <= ord(c) < 0xA0)
    if sample and controls / len(sample) > 0.05:
        raise Unreadable(f"binary content ({100 * controls / len(sample):.0f}% control bytes), not text")
    return text


def sniff(path: Path, suffix: str, size: int, max_bytes: int, head: bytes) -> None:
    """Reject a file before any reader touches it when its size or first bytes (``head``) show it cannot be what its
    name says; readers given such files fail deep inside third-party code, or silently index garbage."""
    if size == 0:
        raise Unreadable("empty file")
    if size > max_bytes:
        raise Unreadable(f"{size / 2**20:.1f} MB, over the {max_bytes / 2**20:g} MB limit (raise --max-file-mb)")
    if suffix == ".pdf" and b"%PDF-" not in head:
        raise Unreadable("not a PDF (no %PDF- header)")
    if suffix in _OOXML:
        kind, member = _OOXML[suffix]
        if not zipfile.is_zipfile(path):
            raise Unreadable(f"not {kind} ({suffix} files are zip archives; this is not one)")
        try:
            with zipfile.ZipFile(path) as z:
                if member not in z.namelist():
                    raise Unreadable(f"a zip archive without {member}, not {kind}")
        except (zipfile.BadZipFile, OSError, ValueError) as e:
            raise Unreadable(f"damaged zip archive ({first_line(e)})") from e


def read_file(path: Path, name: str, max_bytes: int = 64 * 2**20, data: bytes | None = None) -> list[DocumentPart]:
    """Extract text with the reader of the file's suffix (``READERS``): one part per page, slide or sheet for paged
    formats, one part otherwise. ``data``, when the caller already read the file (to hash it), saves reading it
    again. Raises :class:`Unreadable` with the reason for a file that cannot be read."""
    suffix = path.suffix.lower()
    size = len(data) if data is not None else path.stat().st_size
    if data is None and size <= max_bytes:
        data = path.read_bytes()
    sniff(path, suffix, size, max_bytes, (data or b"")[:1024])
    return READERS.get(suffix)(path, name, data or b"")


def _text(path: Path, name: str, data: bytes) -> list[DocumentPart]:
    """Plain text (.txt, .md, .rst): decoded by BOM, UTF-8 or Windows-1252; binary content refused."""
    text = decode_text(data).replace("\x00", "").strip()
    return [DocumentPart(name, 0, None, text)] if text else []


def _llama_index(path: Path, name: str, data: bytes) -> list[DocumentPart]:
    """pdf (pypdf, one part per page) and docx (docx2txt: the text runs of the body, headers and footers; tracked
    deletions and field codes are not text runs, so they are left out) through llama-index's readers."""
    from llama_index.core import SimpleDirectoryReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its warnings about damaged files would litter the terminal
    try:
        docs = SimpleDirectoryReader(input_files=[str(path)], raise_on_error=True).load_data()
    except RecursionError as e:
        raise Unreadable("nested too deeply for the reader (recursion limit)") from e
    except Exception as e:  # noqa: BLE001 - any reader failure is this file's problem, reported with its reason
        while e.__cause__ is not None or e.__context__ is not None:  # llama-index wraps the reader's own error
            e = e.__cause__ or e.__context__
        first = str(e).splitlines()[0] if str(e) else ""
        raise Unreadable(f"the {path.suffix.lower()} reader failed: {type(e).__name__}: {first}"[:200]) from e
    parts = []
    for i, d in enumerate(docs):
        text = d.text.replace("\x00", "").strip()
        if text:
            parts.append(DocumentPart(name, i, d.metadata.get("page_label") if len(docs) > 1 else None, text))
    return parts


# Office Open XML (pptx, xlsx): the XML parts read, at most this many bytes uncompressed in all, so that a small zip
# that inflates to gigabytes (a zip bomb) is refused instead of filling memory.
_ZIP_BUDGET = 256 * 2**20
_NS = {"a": "http://schemas.openxmlformats.org/drawingml/2006/main",
       "p": "http://schemas.openxmlformats.org/presentationml/2006/main",
       "s": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
       "rel": "http://schemas.openxmlformats.org/package/2006/relationships"}
_R_ID = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"


class _Package:
    """The XML parts of an Office Open XML file, parsed with defusedxml (no entity expansion, no external
    entities) within :data:`_ZIP_BUDGET`."""

    def __init__(self, data: bytes):
        try:
            self.zip = zipfile.ZipFile(io.BytesIO(data))
        except (zipfile.BadZipFile, OSError, ValueError) as e:
            raise Unreadable(f"damaged zip archive ({first_line(e)})") from e
        self.names = set(self.zip.namelist())
        self.used = 0

    def xml(self, member: str):
        from defusedxml import ElementTree

        try:
            info = self.zip.getinfo(member)
            self.used += info.file_size
            if self.used > _ZIP_BUDGET:
                raise Unreadable(f"inflates past {_ZIP_BUDGET >> 20} MB of XML (a zip bomb, or far too large)")
            return ElementTree.fromstring(self.zip.read(member))
        except Unreadable:
            raise
        except Exception as e:  # noqa: BLE001 - bad zip members, bad XML, forbidden entities: this file's problem
            raise Unreadable(f"damaged part {member} ({type(e).__name__}: {str(e)[:80]})") from e

    def relations(self, rels_member: str, base: str) -> list[tuple[str, str, str]]:
        """(id, type, the part it points to) of every relationship in ``rels_member``, targets resolved against
        ``base``, the folder of the source part; none where the part is absent."""
        if rels_member not in self.names:
            return []
        out = []
        for rel in self.xml(rels_member).findall("rel:Relationship", _NS):
            target = rel.get("Target", "")
            parts = (target.lstrip("/") if target.startswith("/") else f"{base}/{target}").split("/")
            path: list[str] = []
            for p in parts:  # resolve "../notesSlides/x.xml"
                if p == "..":
                    if path:
                        path.pop()
                elif p and p != ".":
                    path.append(p)
            out.append((rel.get("Id", ""), rel.get("Type", ""), "/".join(path)))
        return out

    def targets(self, rels_member: str, base: str) -> dict[str, str]:
        """Relationship id → the part it points to."""
        return {rid: target for rid, _, target in self.relations(rels_member, base)}

    def rel_of_type(self, rels_member: str, base: str, kind: str) -> str | None:
        """The part the first relationship of type ``kind`` (e.g. "notesSlide") points to."""
        return next((t for _, typ, t in self.relations(rels_member, base) if typ.endswith("/" + kind)), None)


def _paragraphs(root) -> str:
    """The text of every DrawingML paragraph (``a:p``) under ``root``, one a line."""
    lines = ("".join(t.text or "" for t in p.iter(f"{{{_NS['a']}}}t")).strip() for p in root.iter(f"{{{_NS['a']}}}p"))
    return "\n".join(line for line in lines if line)


def _notes(root) -> str:
    """The speaker's notes of a notes slide: its body placeholder's text (the other placeholders repeat the slide's
    image and number); where no shape is marked as the body, every paragraph but a lone slide number."""
    bodies = [sp for sp in root.iter(f"{{{_NS['p']}}}sp")
              if any(ph.get("type") == "body" for ph in sp.iter(f"{{{_NS['p']}}}ph"))]
    if bodies:
        return "\n".join(t for t in (_paragraphs(sp) for sp in bodies) if t)
    return "\n".join(line for line in _paragraphs(root).split("\n") if not line.strip().isdigit())


def _pptx(path: Path, name: str, data: bytes) -> list[DocumentPart]:
    """PowerPoint (.pptx): one part per slide in presentation order, labelled "slide N", its text boxes, tables and
    speaker notes."""
    pkg = _Package(data)
    order = pkg.targets("ppt/_rels/presentation.xml.rels", "ppt")
    ids = pkg.xml("ppt/presentation.xml").findall("p:sldIdLst/p:sldId", _NS)
    slides = [order[s.get(_R_ID, "")] for s in ids if order.get(s.get(_R_ID, "")) in pkg.names]
    if not slides:  # no list of slides: the parts by number
        slides = sorted((n for n in pkg.names if re.fullmatch(r"ppt/slides/slide\d+\.xml", n)),
                        key=lambda n: int(re.findall(r"\d+", n)[-1]))
    parts = []
    for i, slide in enumerate(slides, 1):
        text = _paragraphs(pkg.xml(slide))
        folder, file = slide.rsplit("/", 1)
        notes = pkg.rel_of_type(f"{folder}/_rels/{file}.rels", folder, "notesSlide")
        if notes and notes in pkg.names:
            note = _notes(pkg.xml(notes))
            if note:
                text = f"{text}\nNotes: {note}" if text else f"Notes: {note}"
        if text.strip():
            parts.append(DocumentPart(name, i - 1, f"slide {i}", text.strip()))
    return parts


def _column(ref: str) -> int:
    """Zero-based column of a cell reference ("C7" → 2)."""
    n = 0
    for ch in re.match(r"[A-Z]*", ref).group():
        n = n * 26 + ord(ch) - 64
    return n - 1


def _rows_text(rows: list[dict[int, str]]) -> str:
    """Table rows (column number → cell text; sparse, so a lone cell far to the right costs nothing) as lines a
    retriever and a model can read alone: the first non-empty row is the header, each later row "header: value;
    header: value" (empty cells left out)."""
    rows = [r for r in rows if any(c.strip() for c in r.values())]
    if not rows:
        return ""
    header = {j: c.strip() for j, c in rows[0].items() if c.strip()}
    lines = ["; ".join(header[j] for j in sorted(header))]
    for row in rows[1:]:
        lines.append("; ".join(f"{header.get(j) or f'column {j + 1}'}: {row[j].strip()}"
                               for j in sorted(row) if row[j].strip()))
    return "\n".join(lines)


def _xlsx(path: Path, name: str, data: bytes) -> list[DocumentPart]:
    """Excel (.xlsx): one part per worksheet, labelled "sheet NAME", each row "header: value; …" under the first
    row as header. Cached values are read (a formula's last result); dates stay Excel's serial numbers."""
    pkg = _Package(data)
    shared = []
    if "xl/sharedStrings.xml" in pkg.names:
        shared = ["".join(t.text or "" for t in si.iter(f"{{{_NS['s']}}}t"))
                  for si in pkg.xml("xl/sharedStrings.xml").findall("s:si", _NS)]
    targets = pkg.targets("xl/_rels/workbook.xml.rels", "xl")
    parts = []
    for i, sheet in enumerate(pkg.xml("xl/workbook.xml").findall("s:sheets/s:sheet", _NS)):
        member = targets.get(sheet.get(_R_ID, ""))
        if member not in pkg.names:
            continue
        rows = []
        for row in pkg.xml(member).iter(f"{{{_NS['s']}}}row"):
            cells: dict[int, str] = {}
            for c in row.findall("s:c", _NS):
                kind, v = c.get("t", "n"), c.find("s:v", _NS)
                if kind == "inlineStr":
                    value = "".join(t.text or "" for t in c.iter(f"{{{_NS['s']}}}t"))
                elif v is None or v.text is None:
                    continue
                elif kind == "s":
                    k = int(v.text) if v.text.strip().isdigit() else -1
                    value = shared[k] if 0 <= k < len(shared) else ""
                elif kind == "b":
                    value = "TRUE" if v.text.strip() == "1" else "FALSE"
                else:
                    value = v.text
                ref = c.get("r") or ""
                cells[_column(ref) if re.match(r"[A-Z]{1,3}[0-9]", ref) else len(cells)] = value
            if cells:
                rows.append(cells)
        text = _rows_text(rows)
        if text:
            parts.append(DocumentPart(name, i, f"sheet {sheet.get('name') or i + 1}", text))
    return parts


def _csv(path: Path, name: str, data: bytes) -> list[DocumentPart]:
    """CSV / TSV: each row "header: value; …" under the first row as header, so that a chunk cut from the middle
    of a table still says what its numbers are."""
    text = decode_text(data)
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter="\t" if path.suffix.lower() == ".tsv" else ","))
    except csv.Error as e:
        raise Unreadable(f"not valid CSV ({first_line(e)})") from e
    out = _rows_text([dict(enumerate(row)) for row in rows])
    return [DocumentPart(name, 0, None, out)] if out else []


def _rtf(path: Path, name: str, data: bytes) -> list[DocumentPart]:
    """Rich Text Format (.rtf): the text without control words (striprtf)."""
    from striprtf.striprtf import rtf_to_text

    if not data.lstrip().startswith(b"{\\rtf"):
        raise Unreadable("not RTF (no {\\rtf header)")
    try:
        text = rtf_to_text(data.decode("cp1252", errors="replace"), errors="replace")
    except RecursionError as e:
        raise Unreadable("nested too deeply for the RTF reader") from e
    except Exception as e:  # noqa: BLE001 - striprtf's failures on damaged files are this file's problem
        raise Unreadable(f"the .rtf reader failed: {type(e).__name__}: {str(e)[:120]}") from e
    text = text.replace("\x00", "").strip()
    return [DocumentPart(name, 0, None, text)] if text else []


def _eml(path: Path, name: str, data: bytes) -> list[DocumentPart]:
    """E-mail (.eml): subject, sender, recipients and date, then the plain-text body (or the html body's text);
    attachments are not read."""
    import email
    import email.policy

    decode_text(data[:65536])  # an e-mail is text (its attachments are encoded as text too): refuse binary garbage
    try:
        msg = email.message_from_bytes(data, policy=email.policy.default)
        head = [f"{h}: {msg[h]}" for h in ("Subject", "From", "To", "Date") if msg[h]]
        part = msg.get_body(preferencelist=("plain", "html"))
        body = part.get_content() if part is not None else ""
    except Exception as e:  # noqa: BLE001 - a malformed message is this file's problem
        raise Unreadable(f"not a readable e-mail ({type(e).__name__}: {str(e)[:120]})") from e
    if part is not None and part.get_content_type() == "text/html":
        body = html_text(body)
    if not head and not body.strip():
        raise Unreadable("no e-mail headers or body (not an e-mail?)")
    text = "\n".join(head) + "\n\n" + re.sub(r"\n{3,}", "\n\n", body.replace("\x00", "")).strip()
    return [DocumentPart(name, 0, None, text.strip())]


# What a browser never shows as text: code, styles, fallbacks for browsers without scripts, inert templates, vector
# graphics (their <text> is drawing labels), embedded frames and objects. llama-index's HTMLTagReader kept all of it
# (a page whose body held only <script>var x = 1;</script> was indexed as the chunk "var x = 1;").
_HTML_HIDDEN = ("script", "style", "noscript", "template", "svg", "iframe", "object", "embed", "canvas", "head")
# Elements after which a browser starts a new line; inline ones (b, a, span) join their text to the words around.
_HTML_BLOCKS = frozenset(("address", "article", "aside", "blockquote", "br", "caption", "dd", "details", "div", "dl",
                          "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5",
                          "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table",
                          "td", "th", "tr", "ul"))


def html_text(markup: str) -> str:
    """The text a reader of the page sees: the body (or the whole fragment) without :data:`_HTML_HIDDEN` elements,
    comments and elements marked ``hidden``; a line break after each block element, table cells separated by tabs,
    runs of blanks collapsed. Used for .html files and the html bodies of e-mails."""
    from bs4 import BeautifulSoup, Comment, Declaration, Doctype, ProcessingInstruction

    soup = BeautifulSoup(markup, "html.parser")
    for tag in soup.find_all(list(_HTML_HIDDEN)):
        tag.decompose()
    for tag in soup.find_all(attrs={"hidden": True}):
        tag.decompose()
    for node in soup.find_all(string=lambda s: isinstance(s, (Comment, Declaration, Doctype, ProcessingInstruction))):
        node.extract()
    root = soup.body or soup
    for tag in root.find_all(list(_HTML_BLOCKS)):
        tag.insert_after("\t" if tag.name in ("td", "th") else "\n")
    text = root.get_text("")
    lines = (re.sub(r" *\t[ \t]*", "\t", re.sub(r"[ \f\v\u00a0]+", " ", line)).strip()
             for line in text.replace("\r", "\n").split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _html(path: Path, name: str, data: bytes) -> list[DocumentPart]:
    """HTML (.html, .htm): :func:`html_text` of the page, decoded by BOM, UTF-8 or Windows-1252 as text files are.
    A page with no visible text (only scripts, styles or markup) has no part: ingest reports it like an empty file."""
    text = html_text(decode_text(data)).replace("\x00", "")
    return [DocumentPart(name, 0, None, text)] if text else []


# Suffix → reader, fn(path, name, data) -> list[DocumentPart]; ingest reads every suffix listed here and lists any
# other file as skipped ("unsupported type").
READERS: Registry[Callable[[Path, str, bytes], list[DocumentPart]]] = Registry("file reader")
for _suffix in (".txt", ".md", ".rst"):
    READERS.register(_suffix, _text)
for _suffix in (".pdf", ".docx"):
    READERS.register(_suffix, _llama_index)
for _suffix in (".html", ".htm"):
    READERS.register(_suffix, _html)
READERS.register(".pptx", _pptx)
READERS.register(".xlsx", _xlsx)
READERS.register(".csv", _csv)
READERS.register(".tsv", _csv)
READERS.register(".rtf", _rtf)
READERS.register(".eml", _eml)
SUPPORTED = tuple(READERS.names())
