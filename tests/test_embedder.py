"""The sentence-transformers embedder: asymmetric query / document prompts, dtype and device choice."""

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")

from docqa.embedder import EmbedderConfig, SentenceTransformerEmbedder  # noqa: E402
from tests import tiny_st  # noqa: E402


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("st")
    return {"asym": tiny_st.build(root / "asym", {"query": "query : ", "document": "passage : "}),
            "sym": tiny_st.build(root / "sym")}


def _direct(folder, texts):
    from sentence_transformers import SentenceTransformer

    m = SentenceTransformer(str(folder), device="cpu")
    return m.encode(texts, normalize_embeddings=True, convert_to_numpy=True)


def test_an_asymmetric_model_gets_its_query_and_document_prompts(folders):
    emb = SentenceTransformerEmbedder("asym", str(folders["asym"]), EmbedderConfig(device="cpu", dtype="float32"))
    text = ["what is the hotel cap"]
    q, d = emb.embed(text, kind="query"), emb.embed(text, kind="document")
    np.testing.assert_allclose(q, _direct(folders["asym"], ["query : what is the hotel cap"]), atol=1e-5)
    np.testing.assert_allclose(d, _direct(folders["asym"], ["passage : what is the hotel cap"]), atol=1e-5)
    assert not np.allclose(q, d, atol=1e-3)  # the prompts matter
    assert np.allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)


def test_a_symmetric_model_embeds_queries_and_documents_alike(folders):
    emb = SentenceTransformerEmbedder("sym", str(folders["sym"]), EmbedderConfig(device="cpu", dtype="float32"))
    texts = ["w1 w2 w3", "the hotel cap is w5"]
    np.testing.assert_allclose(emb.embed(texts, kind="query"), emb.embed(texts), atol=1e-6)
    np.testing.assert_allclose(emb.embed(texts), _direct(folders["sym"], texts), atol=1e-5)


def test_bf16_embeddings_stay_close_to_fp32(folders):
    import torch

    texts = [" ".join(f"w{(7 * i + j) % 200}" for j in range(20)) for i in range(12)]
    e32 = SentenceTransformerEmbedder("s", str(folders["sym"]), EmbedderConfig(device="cpu", dtype="float32"))
    e16 = SentenceTransformerEmbedder("s", str(folders["sym"]), EmbedderConfig(device="cpu", dtype="bfloat16"))
    assert e16.dtype == torch.bfloat16 and next(e16._model.parameters()).dtype == torch.bfloat16
    a, b = e32.embed(texts), e16.embed(texts)
    assert b.dtype == np.float32 and (a * b).sum(1).min() > 0.99  # cosine between the two


def test_an_unknown_dtype_is_one_clear_error(folders):
    from docqa.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="dtype 'int4'"):
        SentenceTransformerEmbedder("s", str(folders["sym"]), EmbedderConfig(device="cpu", dtype="int4"))
