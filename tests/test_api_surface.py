import pytest

import docqa
from docqa import errors


def test_public_api_is_pinned():
    assert sorted(docqa.__all__) == sorted([
        "Answer", "DocQAError", "Evidence", "Index", "IngestReport", "Source", "evaluate", "ingest", "list_indexes",
        "open_index", "strategies",
    ])
    for name in docqa.__all__:
        assert hasattr(docqa, name)


def test_error_tree_is_pinned_and_rooted():
    assert sorted(errors.__all__) == sorted([
        "DocQAError", "ConfigError", "UnknownComponent", "IndexError_", "IndexNotFound", "EmbedderMismatch",
        "LexicalMissing",
        "DimensionMismatch", "IndexCorrupt", "IndexWriteError", "IngestError", "ModelLoadError", "ServerError",
        "ServerUnreachable", "AnswerCut",
        "ContextTooLong", "OutOfMemory", "BudgetExceeded", "BadQuestionFile",
    ])
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.DocQAError)


def test_error_messages_name_the_value_and_the_fix():
    e = errors.IndexNotFound("handbok", "indexes", ["handbook"])
    assert "handbok" in str(e) and "handbook" in str(e) and "docqa ingest" in str(e)
    e = errors.EmbedderMismatch("x", "all-minilm-l6-v2", "bge-small")
    assert "all-minilm-l6-v2" in str(e) and "--rebuild" in str(e)
    e = errors.DimensionMismatch("x", "all-minilm-l6-v2", 64, 384)
    assert "64-d" in str(e) and "384-d" in str(e) and "--rebuild" in str(e) and isinstance(e, errors.EmbedderMismatch)


@pytest.mark.parametrize("call, message", [
    (lambda: docqa.ingest(123, "x"), r"ingest\(\): argument 'paths' got 123 \(int\); it takes str \| Path"),
    (lambda: docqa.ingest("docs", 5), r"ingest\(\): argument 'index' got 5 \(int\); it takes str"),
    (lambda: docqa.open_index(None), r"open_index\(\): argument 'name' got None"),
    (lambda: docqa.list_indexes(root=5), r"list_indexes\(\): argument 'root' got 5"),
    (lambda: docqa.ingest(index="x"), r"ingest\(\) needs the argument 'paths'"),
    (lambda: docqa.evaluate("q.jsonl", index="t", strategies="rag"),
     r"evaluate\(\): argument 'strategies' got 'rag' \(str\); it takes list\[str\] \| None"),
])
def test_public_functions_check_their_arguments(call, message):
    with pytest.raises(errors.ConfigError, match=message):
        call()


def test_index_methods_check_their_arguments(small_docs):
    from tests.conftest import FAKE_EMBEDDER, FAKE_MODEL

    docqa.ingest(small_docs, "t", embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    idx = docqa.open_index("t", model=FAKE_MODEL)
    with pytest.raises(errors.ConfigError, match=r"Index\.ask\(\): argument 'question' got 5 \(int\); it takes str"):
        idx.ask(5)
    with pytest.raises(errors.ConfigError, match=r"Index\.ask_many\(\): argument 'questions' got 'q\?' \(str\)"):
        idx.ask_many("q?")
    assert idx.ask("How many vacation days?", top_k="2").text  # read as the command line reads it


def test_a_schema_error_from_inside_a_checked_call_is_not_blamed_on_its_arguments():
    from pydantic import BaseModel, ValidationError

    from docqa.api.checked import checked

    class Record(BaseModel):
        n: int

    @checked
    def parse(text: str) -> Record:
        return Record.model_validate({"n": text})

    assert parse("3").n == 3
    with pytest.raises(ValidationError, match="Record"):
        parse("three")


def test_an_opened_index_says_what_it_holds(small_docs):
    from tests.conftest import FAKE_EMBEDDER, FAKE_MODEL

    docqa.ingest(small_docs, "t", embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    idx = docqa.open_index("t", model=FAKE_MODEL)
    chunks = idx.manifest["chunks"]
    assert repr(idx) == (f"<docqa.Index 't' version 1: {len(idx.files())} files, {chunks} chunks, "
                         f"{idx.manifest['tokens']} tokens; embedder {FAKE_EMBEDDER}>")
