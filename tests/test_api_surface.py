import docqa
from docqa import errors


def test_public_api_is_pinned():
    assert sorted(docqa.__all__) == sorted([
        "Answer", "DocQAError", "Index", "IngestReport", "Source", "evaluate", "ingest", "list_indexes", "open_index",
        "strategies",
    ])
    for name in docqa.__all__:
        assert hasattr(docqa, name)


def test_error_tree_is_pinned_and_rooted():
    assert sorted(errors.__all__) == sorted([
        "DocQAError", "ConfigError", "UnknownComponent", "IndexError_", "IndexNotFound", "EmbedderMismatch",
        "IndexCorrupt", "IndexWriteError", "IngestError", "ModelLoadError", "ServerError", "ServerUnreachable",
        "ContextTooLong", "OutOfMemory", "BudgetExceeded", "BadQuestionFile",
    ])
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.DocQAError)


def test_error_messages_name_the_value_and_the_fix():
    e = errors.IndexNotFound("handbok", "indexes", ["handbook"])
    assert "handbok" in str(e) and "handbook" in str(e) and "docqa ingest" in str(e)
    e = errors.EmbedderMismatch("x", "all-minilm-l6-v2", "bge-small")
    assert "all-minilm-l6-v2" in str(e) and "--rebuild" in str(e)
