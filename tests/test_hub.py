"""Model names that are not embedded aliases or local paths: one line at once, not the hub's retries (docqa/hub.py).

No test touches the network: the hub's reachability is what :func:`socket.create_connection` says, and each test sets
it; the Hugging Face cache is a folder under tmp_path laid out as huggingface_hub lays it out."""

from __future__ import annotations

import socket
import time

import pytest

from docqa import hub
from docqa.embedder import load_embedder
from docqa.errors import ModelLoadError
from docqa.generators.gguf import resolve_model

ALIASES = ["qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b", "smollm2"]


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network (the connect fails at once, as without DNS), an empty HF cache, no proxy, hub not marked offline."""
    calls = []

    def refuse(address, timeout=None):
        calls.append(address)
        raise OSError("Name or service not known")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(hub, "_reachable", {})
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    return calls


def _cache(tmp_path, repo: str, file: str = "config.json") -> None:
    """A cached snapshot of ``repo`` holding ``file``, laid out as huggingface_hub's cache is."""
    folder = tmp_path / "hf" / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("abc123")
    (folder / "snapshots" / "abc123").mkdir(parents=True)
    (folder / "snapshots" / "abc123" / file).write_text("{}")


@pytest.mark.parametrize(("name", "needle"), [
    ("qwen2.5-coder-1.5", "did you mean qwen2.5-coder-1.5b?"),
    ("SmolLM-2", "did you mean smollm2?"),
    ("./weights/missing.gguf", "'./weights/missing.gguf': no such file or folder"),
    ("/nowhere/model", "no such file or folder"),
    ("org/not-cached", "the hub cannot be reached from this machine"),
    ("nomodel", "the hub cannot be reached"),
])
def test_a_name_that_cannot_load_is_one_line_at_once(offline, name, needle):
    t0 = time.perf_counter()
    with pytest.raises(ModelLoadError, match="--model") as e:
        hub.check_model_name(name, "generator", "--model", ALIASES)
    assert needle in str(e.value) and "\n" not in str(e.value)
    assert time.perf_counter() - t0 < 1.0  # no retries, no back-off
    assert len(offline) <= 1  # the hub was probed at most once


def test_the_hub_is_probed_once_a_process(offline):
    for _ in range(3):
        with pytest.raises(ModelLoadError):
            hub.check_model_name("org/x", "generator", "--model", ALIASES)
    assert len(offline) == 1


def test_what_can_load_passes(offline, tmp_path, monkeypatch):
    hub.check_model_name("SmolLM2", "generator", "--model", ALIASES)  # an alias, any case
    hub.check_model_name(str(tmp_path), "generator", "--model", ALIASES)  # a local folder
    _cache(tmp_path, "org/cached")
    hub.check_model_name("org/cached", "generator", "--model", ALIASES)  # in the HF cache: loads offline
    _cache(tmp_path, "sentence-transformers/mini", "modules.json")
    hub.check_model_name("mini", "embedder", "--embedder", ["all-minilm-l6-v2"],
                         hub_ids=["mini", "sentence-transformers/mini"], files=("modules.json",))
    assert offline == []  # none of these needed the hub
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the loader fails at once itself; no probe
    hub.check_model_name("org/other", "generator", "--model", ALIASES)
    assert offline == []


def test_a_reachable_hub_or_a_proxy_lets_an_id_through(monkeypatch, tmp_path):
    monkeypatch.setattr(hub, "_reachable", {})
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    class Conn:
        def close(self):
            pass

    monkeypatch.setattr(socket, "create_connection", lambda address, timeout=None: Conn())
    hub.check_model_name("org/downloadable", "generator", "--model", ALIASES)
    monkeypatch.setattr(hub, "_reachable", {})
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: (_ for _ in ()).throw(OSError("blocked")))
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")  # a direct probe cannot judge a proxy
    hub.check_model_name("org/downloadable", "generator", "--model", ALIASES)


def test_generators_tokenizers_and_embedders_check_before_loading(offline):
    with pytest.raises(ModelLoadError, match="--model 'qwen2.5-coder-1.5' is not an embedded generator"):
        resolve_model("qwen2.5-coder-1.5")
    with pytest.raises(ModelLoadError, match="--tokenizer 'org/tok'"):
        resolve_model("org/tok", "--tokenizer")
    t0 = time.perf_counter()
    with pytest.raises(ModelLoadError, match="--embedder 'minilm' is not an embedded alias.*or a local folder"):
        load_embedder("minilm")
    assert time.perf_counter() - t0 < 1.0


def test_an_alias_of_the_other_kind_says_where_it_goes():
    """The embedder passed as --model failed deep in the loader ("no rotary embedding module"); a generator passed
    as --embedder with a sentence-transformers error about a file that is not a folder."""
    with pytest.raises(ModelLoadError, match="--model 'all-minilm-l6-v2' is docqa's embedded embedder, not a "
                                             "generator: it goes to --embedder"):
        resolve_model("all-minilm-l6-v2")
    with pytest.raises(ModelLoadError, match="--embedder 'smollm2' is docqa's embedded generator, not an embedder: "
                                             "it goes to --model. Embedded embedders: all-minilm-l6-v2"):
        load_embedder("smollm2")
