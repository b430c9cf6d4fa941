"""Queries embedded in numpy: the same vectors as sentence-transformers, for exactly the models it can run, without
importing torch."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")

from docqa.embedder import QueriesInNumpy, SentenceTransformerEmbedder, load_embedder  # noqa: E402
from docqa.embedder_numpy import NumpyBert, supported  # noqa: E402
from docqa.errors import ConfigError, ModelLoadError  # noqa: E402
from tests import tiny_st  # noqa: E402

TEXTS = ["what is the hotel cap", "", "w1", " ".join(f"w{i % 200}" for i in range(300)),  # past the 64-token window
         "Équipe Paris, période d'essai de quatre mois, 東京 W3 W4", "hotel hotel cap cap w5 : query passage"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("st")
    return {"sym": tiny_st.build(root / "sym"),
            "asym": tiny_st.build(root / "asym", {"query": "query : ", "document": "passage : "})}


def _sentence_transformers(folder, texts):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu").encode(texts, normalize_embeddings=True)


def test_numpy_vectors_are_sentence_transformers_vectors(folders):
    bert = NumpyBert(folders["sym"])
    got = bert.encode(TEXTS)
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), 32)
    np.testing.assert_allclose(got, _sentence_transformers(folders["sym"], TEXTS), atol=1e-5)
    # batching and order do not change a vector: each text alone gives the same one
    np.testing.assert_allclose(np.vstack([bert.encode([t]) for t in TEXTS]), got, atol=1e-6)
    assert bert.max_tokens == 64 and bert.encode([]).shape == (0, 32)


def test_token_counts_are_untruncated_like_sentence_transformers(folders):
    emb = SentenceTransformerEmbedder("sym", str(folders["sym"]))
    assert NumpyBert(folders["sym"]).count_tokens(TEXTS) == emb.count_tokens(TEXTS)
    assert max(emb.count_tokens(TEXTS)) > 64


def _copy(folder, tmp_path, name):
    out = tmp_path / name
    shutil.copytree(folder, out)
    return out


def _edit(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_only_the_pipeline_it_reproduces_runs_in_numpy(folders, tmp_path):
    assert supported(folders["sym"]) is None
    assert "prompts" in supported(folders["asym"])
    cls = _copy(folders["sym"], tmp_path, "cls")
    _edit(cls / "1_Pooling" / "config.json", pooling_mode="cls")
    assert "pooling" in supported(cls)
    extra = _copy(folders["sym"], tmp_path, "extra")
    modules = json.loads((extra / "modules.json").read_text())
    (extra / "modules.json").write_text(json.dumps(modules + [{"idx": 2, "name": "2", "path": "2_Dense",
                                                               "type": "sentence_transformers.models.Dense"}]))
    assert "modules" in supported(extra)
    other = _copy(folders["sym"], tmp_path, "roberta")
    _edit(other / "config.json", model_type="roberta")
    assert "BERT" in supported(other)
    lower = _copy(folders["sym"], tmp_path, "lower")
    _edit(lower / "sentence_bert_config.json", do_lower_case=True)
    assert "lower-cases" in supported(lower)
    bare = _copy(folders["sym"], tmp_path, "bare")
    (bare / "tokenizer.json").unlink()
    assert "tokenizer.json" in supported(bare)
    assert "modules.json" in supported(tmp_path)
    with pytest.raises(ValueError, match="not run in numpy"):
        NumpyBert(cls)


def test_local_folders_embed_queries_in_numpy_and_documents_with_sentence_transformers(folders, monkeypatch):
    import docqa.embedder as embedder

    monkeypatch.setattr(embedder, "_LOADED", {})
    emb = load_embedder(str(folders["sym"]))
    assert isinstance(emb, QueriesInNumpy) and emb.dim == 32 and emb.max_tokens == 64
    assert emb._documents is None  # sentence-transformers waits for the first document
    want = _sentence_transformers(folders["sym"], TEXTS)
    np.testing.assert_allclose(emb.embed(TEXTS, kind="query"), want, atol=1e-5)
    assert emb._documents is None
    np.testing.assert_allclose(emb.embed(TEXTS, kind="document"), want, atol=2e-2)  # bf16 where the probe says
    # an asymmetric model keeps its prompts on sentence-transformers
    assert isinstance(load_embedder(str(folders["asym"])), SentenceTransformerEmbedder)


def test_the_environment_picks_the_query_path(folders, monkeypatch):
    import docqa.embedder as embedder

    for value, kind in (("sentence-transformers", SentenceTransformerEmbedder), ("numpy", QueriesInNumpy)):
        monkeypatch.setattr(embedder, "_LOADED", {})
        monkeypatch.setenv("DOCQA_QUERY_EMBED", value)
        assert isinstance(load_embedder(str(folders["sym"])), kind)
    monkeypatch.setattr(embedder, "_LOADED", {})
    with pytest.raises(ConfigError, match="cannot run in numpy.*prompts"):
        load_embedder(str(folders["asym"]))
    monkeypatch.setenv("DOCQA_QUERY_EMBED", "onnx")
    with pytest.raises(ConfigError, match="DOCQA_QUERY_EMBED='onnx': use auto, numpy or sentence-transformers"):
        load_embedder(str(folders["sym"]))


def test_a_damaged_weights_file_is_one_line(folders, tmp_path, monkeypatch):
    import docqa.embedder as embedder

    monkeypatch.setattr(embedder, "_LOADED", {})
    for name, junk in (("model.safetensors", b"not safetensors"), ("tokenizer.json", b"garbage")):
        broken = _copy(folders["sym"], tmp_path, f"broken-{name}")
        (broken / name).write_bytes(junk)
        with pytest.raises(ModelLoadError, match=f"Could not load embedder .*{name}: .*Reinstall the model"):
            load_embedder(str(broken))


def test_the_embedded_model_answers_a_query_without_torch():
    """The embedded all-MiniLM-L6-v2: vectors equal to sentence-transformers' in float32, computed in a process that
    never imports torch, transformers or sentence-transformers."""
    from docqa.models import embedded_model_path

    try:
        folder = embedded_model_path("all-minilm-l6-v2", "embedder", "--embedder")
    except ModelLoadError:
        pytest.skip("the embedded model's wheel is not installed")
    code = ("import json, sys; from docqa.embedder import load_embedder; "
            "e = load_embedder('all-minilm-l6-v2'); v = e.embed(json.loads(sys.argv[1]), kind='query'); "
            "heavy = [m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules]; "
            "print(json.dumps({'heavy': heavy, 'v': v.tolist(), 'type': type(e).__name__}))")
    texts = ["What is the nightly hotel cap in most cities?", "Combien de mois dure la période d'essai ?"]
    out = subprocess.run([sys.executable, "-c", code, json.dumps(texts)], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["type"] == "QueriesInNumpy" and got["heavy"] == []
    np.testing.assert_allclose(np.array(got["v"]), _sentence_transformers(folder, texts), atol=1e-5)
