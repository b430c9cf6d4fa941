import pytest

from docqa.embedder import EMBEDDERS
from docqa.errors import UnknownComponent
from docqa.eval.metrics import METRICS
from docqa.generators import GENERATORS
from docqa.registry import Registry
from docqa.retrieval import FUSIONS, RERANKERS, RETRIEVERS
from docqa.rope import ROPE_METHODS
from docqa.strategies import STRATEGIES
from docqa.strategies.summarize import CHAINS


def test_unknown_name_suggests_the_closest():
    with pytest.raises(UnknownComponent) as e:
        STRATEGIES.get("rga")
    assert "Did you mean 'rag'?" in str(e.value)
    assert "Available: rag" in str(e.value)


def test_aliases_resolve_and_names_exclude_them():
    r: Registry[int] = Registry("thing")
    r.register("long-context", 1, aliases=("lc",))
    assert r.get("LC") == 1 and r.canonical("lc") == "long-context"
    assert r.names() == ["long-context"]
    r.unregister("long-context")
    assert "lc" not in r


def test_lazy_entries_import_on_first_use():
    r: Registry = Registry("thing")
    r.register("join", "os.path:join")
    assert r._entries["join"] == "os.path:join"
    import os.path

    assert r.get("join") is os.path.join


REGISTRIES = [STRATEGIES, ROPE_METHODS, EMBEDDERS, GENERATORS, CHAINS, METRICS, RETRIEVERS, FUSIONS, RERANKERS]


@pytest.mark.parametrize("registry", REGISTRIES, ids=lambda r: r.kind)
def test_every_entry_loads_and_is_documented(registry):
    for name in registry.names():
        obj = registry.get(name)
        assert callable(obj), name
        doc = (obj.__doc__ or "").strip()
        assert len(doc) > 40, f"{registry.kind} '{name}' needs a one-paragraph docstring"
