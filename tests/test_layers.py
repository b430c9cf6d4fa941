"""docqa's imports flow one way: cli → api → eval → strategies → corpus → embedder / generators → index / rope, with
the small shared modules (errors, paths, registry, …) below them all. Read from the source (every import, those inside
functions too: a lazy import is still a dependency), so a circle fails here before it fails at import time."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "docqa"

# Each top-level module or package of docqa → its layer. An import may only go to a lower layer (or stay within its
# own module or package). A new module fails test_every_module_has_a_layer until it is placed here.
LAYERS = {
    "errors": 0,
    "registry": 1, "lists": 1, "records": 1, "paths": 1, "hub": 1, "threads": 1, "environment": 1,
    "model_catalogue": 1, "attention": 1, "kv_cache": 1, "embedder_numpy": 1,
    "models": 2, "rope": 2, "kv_budget": 2, "prompts": 2,
    "index": 3, "retrieval": 3, "prefix_cache": 3,
    "generators": 4,
    "embedder": 5,  # the embedder reads the generators' CPU probe; generators never use the embedder
    "corpus": 6,
    "strategies": 7, "bench": 7,
    "eval": 8,
    "api": 9,
    "cli": 10,
}


def _modules(root: Path = ROOT) -> dict[str, Path]:
    found = {}
    for path in root.rglob("*.py"):
        parts = ["docqa", *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module → the docqa modules it imports. The package root's lazy API facade (``docqa.__getattr__``) and reading
    the root's ``__version__`` constant are not dependencies: the root is always imported first."""
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        if name == "docqa":
            continue
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if [a.name for a in node.names] == ["__version__"]:
                    continue
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                elif (node.module or "").split(".")[0] == "docqa":
                    target = node.module
                else:
                    continue
                # `from . import x` imports the submodule x where there is one, else a name of the package
                candidates = [f"{target}.{a.name}" for a in node.names] + [target]
            elif isinstance(node, ast.Import):
                candidates = [a.name for a in node.names if a.name.split(".")[0] == "docqa"]
            else:
                continue
            hit = next((c for c in candidates if c in modules and c != name), None)
            if hit:
                edges[name].add(hit)
    return edges


def _top(module: str) -> str:
    return module.split(".")[1]


def test_every_module_has_a_layer():
    tops = {_top(m) for m in _modules() if m != "docqa"}
    assert tops <= set(LAYERS), f"place these in LAYERS: {sorted(tops - set(LAYERS))}"


def _upward(edges: dict[str, set[str]]) -> list[str]:
    wrong = []
    for source, targets in edges.items():
        for target in targets:
            a, b = _top(source), _top(target)
            if a != b and LAYERS[b] >= LAYERS[a]:
                wrong.append(f"{source} → {target} ({a} is layer {LAYERS[a]}, {b} is {LAYERS[b]})")
    return sorted(wrong)


def _circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(set(edges) | {t for ts in edges.values() for t in ts}):
        if module not in index:
            visit(module)
    return circles


def test_imports_go_down_the_layers():
    assert not _upward(_imports(_modules())), "\n".join(_upward(_imports(_modules())))


def test_no_module_imports_itself_back():
    """No circle at module level either: a helper that imports the module that uses it (generators/prefill_assist.py
    once read the package's registry, and the package imported it back for its list of choices)."""
    assert not _circles(_imports(_modules()))


def test_the_checks_see_a_circle_and_an_upward_import(tmp_path):
    """The checks above can fail: two modules importing each other inside functions, and index (layer 3) importing
    generators (layer 4)."""
    pkg = tmp_path / "docqa"
    (pkg / "generators").mkdir(parents=True)
    (pkg / "__init__.py").write_text("def __getattr__(name):\n    from . import index\n")
    (pkg / "generators" / "__init__.py").write_text("def f():\n    from .helper import x\n")
    (pkg / "generators" / "helper.py").write_text("def x():\n    from . import f\n")
    (pkg / "index.py").write_text("from . import __version__\n\ndef g():\n    from .generators import f\n")
    edges = _imports(_modules(pkg))
    assert _circles(edges) == [["docqa.generators", "docqa.generators.helper"]]
    assert _upward(edges) == ["docqa.index → docqa.generators (index is layer 3, generators is 4)"]
