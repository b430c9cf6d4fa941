from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# The suite's default reader is SmolLM2 (fast; answers do not matter in most tests). Set before docqa is imported:
# the default is read once, at import. Tests of real answers name the Qwen readers explicitly.
os.environ["DOCQA_MODEL"] = "smollm2"
# The suite uses only what the project ships, so it never asks the Hugging Face hub: a model name that is not here must
# fail at once. huggingface_hub reads this once, at import; set per test (monkeypatch.setenv) it came too late once an
# earlier test had imported the hub, and on a machine whose connections hang instead of failing, one test then waited
# in the hub's retry back-off for minutes.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from docqa import embedder as embedder_mod
from docqa import generators as generator_mod
from tests.fakes import CannedGenerator, ExtractiveGenerator, HashEmbedder

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "docs"

FAKE_EMBEDDER = "fake:hash"
FAKE_MODEL = "fake:extractive"


def fake_embedder(spec: str, model: str) -> HashEmbedder:
    """Test-only embedder: hashed bag of words, 64 dimensions (``fake:hashN``: N), unit norm; needs no weights and
    runs in microseconds."""
    digits = model.removeprefix("hash")
    return HashEmbedder(spec, dim=int(digits)) if digits.isdigit() else HashEmbedder(spec)


def fake_generator(spec: str, model: str, cfg) -> ExtractiveGenerator:
    """Test-only generator: answers with the context sentence sharing most words with the question, and records
    every prompt, so tests can check what a strategy sends to the model."""
    return ExtractiveGenerator(spec)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Every test gets its own index root; fakes are registered through the real registries and removed after."""
    monkeypatch.setenv("DOCQA_INDEX_ROOT", str(tmp_path / "indexes"))
    embedder_mod.EMBEDDERS.register("fake", fake_embedder, replace=True)
    generator_mod.GENERATORS.register("fake", fake_generator, replace=True)
    try:
        yield tmp_path
    finally:
        embedder_mod.EMBEDDERS.unregister("fake")
        generator_mod.GENERATORS.unregister("fake")
        for key in [k for k in embedder_mod._LOADED if k.startswith("fake")]:
            del embedder_mod._LOADED[key]
        for key in [k for k in generator_mod._LOADED if k[0].startswith("fake")]:
            del generator_mod._LOADED[key]
        for key in [k for k in generator_mod._TOKENIZERS if k.startswith("fake")]:
            del generator_mod._TOKENIZERS[key]


@pytest.fixture
def docs(tmp_path) -> Path:
    """A private copy of examples/docs that a test may change."""
    dst = tmp_path / "docs"
    shutil.copytree(EXAMPLES, dst)
    return dst


@pytest.fixture
def small_docs(tmp_path) -> Path:
    """Three example documents of different formats."""
    dst = tmp_path / "small"
    dst.mkdir()
    for name in ("employee_handbook.md", "travel_and_expense_policy.docx", "q3_2026_quarterly_report.pdf"):
        shutil.copy(EXAMPLES / name, dst / name)
    return dst


@pytest.fixture
def indexed(small_docs) -> str:
    """The three small documents ingested as index "t" with the fakes; returns the index name."""
    import docqa

    docqa.ingest(small_docs, "t", embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    return "t"


def example_questions(path: Path, n: int) -> Path:
    """The first ``n`` questions of examples/questions.jsonl as a question file at ``path``."""
    import json

    rows = [json.loads(x) for x in (EXAMPLES.parent / "questions.jsonl").read_text().splitlines() if x.strip()][:n]
    return write_jsonl(path, rows)


def example_index(tmp_path: Path, files: tuple[str, ...] = ("employee_handbook.md",), name: str = "t") -> Path:
    """Some of examples/docs ingested with the fakes as index ``name``; returns the documents' folder."""
    import docqa

    d = tmp_path / "docs"
    d.mkdir(parents=True)
    for f in files:
        shutil.copy(EXAMPLES / f, d / f)
    docqa.ingest(d, name, embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    return d


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    """``rows`` as a JSONL question file at ``path``."""
    import json

    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def two_versions(small_docs, tmp_path):
    """Index "t" under tmp_path/idx with a live version and its predecessor (the handbook changed in between), built
    with the fakes; returns (the documents' folder, the index root)."""
    import docqa
    from tests.faults import change_for_second_version

    root = tmp_path / "idx"
    docqa.ingest(small_docs, "t", root=root, embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    change_for_second_version(small_docs)
    docqa.ingest(small_docs, "t", root=root, embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    return small_docs, root


@pytest.fixture
def canned(small_docs):
    """The three small documents as index "t", answered by :class:`CannedGenerator` (RAG prompts: its ``canned``
    text; long-context prompts: "from the whole corpus")."""
    import docqa

    docqa.ingest(small_docs, "t", embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    generator_mod.GENERATORS.register("canned", lambda spec, model, cfg: CannedGenerator(spec), replace=True)
    yield docqa.open_index("t", model="canned:x")
    generator_mod.GENERATORS.unregister("canned")
    for key in [k for k in generator_mod._LOADED if k[0].startswith("canned")]:
        del generator_mod._LOADED[key]


def canned_eval(idx, tmp_path: Path, answer: str, rows: list[dict], strategies: list[str]) -> list[dict]:
    """``rows`` (question records) evaluated with ``strategies`` on the :func:`canned` index ``idx``, whose RAG
    prompts are answered ``answer`` and whose documents (~6 k tokens) fit a 16 k window; the records."""
    import docqa

    gen = idx.corpus.generator()
    gen.canned, gen.trained_window = answer, 16384
    records, _ = docqa.evaluate(write_jsonl(tmp_path / "q.jsonl", rows), index="t", strategies=strategies,
                                model="canned:x")
    return records
