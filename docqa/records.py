"""Plain records passed between layers: chunks, sources, answers and ingest reports.

They are dataclasses with no behaviour beyond conversion to JSON-ready dicts, so that the library, the CLI's
``--json`` output and ``docqa eval`` files all share one shape.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Chunk:
    """One piece of a document as stored in an index."""

    id: int
    file: str  # path relative to the ingested root, as given to ingest
    ordinal: int  # position of the chunk within its file
    text: str
    start_char: int  # span of the chunk in the file's extracted text
    end_char: int
    page: str | None = None  # page label for paged formats (pdf), else None
    tokens: int = 0  # generator tokens in `text`


@dataclass
class Source:
    """A passage an answer drew on: where it is, and how it scored."""

    file: str
    start_char: int
    end_char: int
    page: str | None = None
    score: float | None = None  # retrieval similarity (cosine), when the strategy retrieved
    chunk_id: int | None = None
    text: str = ""

    def location(self) -> str:
        """Human-readable place: 'handbook.md:1200-2400', 'report.pdf p.3', 'deck.pptx, slide 4' or 'prices.xlsx,
        sheet Q3' (readers label slides and sheets as such; any other label is a page's)."""
        if self.page:
            if self.page.startswith(("slide ", "sheet ")):
                return f"{self.file}, {self.page}"
            return f"{self.file} p.{self.page}"
        return f"{self.file}:{self.start_char}-{self.end_char}"


@dataclass
class Evidence:
    """Where an answer is found in the text its strategy read (:meth:`docqa.Index.evidence`): passages best first,
    each with the share of an answer sentence's content words it holds, and the figures the answer states that the
    text read does not hold (a figure made up or computed: the first thing to check)."""

    passages: list[tuple[Source, float]] = field(default_factory=list)
    missing_figures: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"passages": [{"location": s.location(), "file": s.file, "start_char": s.start_char,
                              "end_char": s.end_char, "page": s.page, "chunk_id": s.chunk_id, "share": share}
                             for s, share in self.passages],
                "missing_figures": list(self.missing_figures)}


@dataclass
class Answer:
    """What every strategy returns."""

    text: str
    strategy: str
    sources: list[Source] = field(default_factory=list)
    # Seconds per stage, e.g. {"embed": .01, "search": .001, "prefill": 1.2, "generate": 3.4, "total": 4.6}.
    timings: dict[str, float] = field(default_factory=dict)
    # Token counts: {"prompt": …, "completion": …}, plus stage-specific counts where a strategy has stages.
    tokens: dict[str, int] = field(default_factory=dict)
    calls: int = 0  # model calls made (1 for rag and long-context)
    # Strategy-specific facts (rope method and factor, chain, route taken, …).
    details: dict[str, Any] = field(default_factory=dict)
    model: str = ""  # the generator that answered, as "backend:model" (e.g. "llama.cpp:qwen2.5-coder-1.5b")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {"answer": d.pop("text"), **d}


@dataclass
class FileOutcome:
    """What ingest did with one file."""

    file: str
    status: str  # "added" | "updated" | "skipped" | "failed" | "removed"
    reason: str = ""
    chunks: int = 0
    tokens: int = 0


@dataclass
class IngestReport:
    """Summary of one ingest run."""

    index: str
    files: list[FileOutcome] = field(default_factory=list)
    chunks_total: int = 0  # chunks in the index after the run
    chunks_added: int = 0
    tokens_added: int = 0
    seconds: float = 0.0
    truncated_chunks: int = 0  # chunks longer than the embedder's window (their tail is not embedded)
    version: int = 0
    summaries: int = 0  # documents summarized in this run (ingest --summaries)
    lexical_added: int = 0  # chunks given BM25 postings in place (an index written before docqa kept them)

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
