"""Hybrid-attention models in process (Gemma 3, Mistral with sliding windows, Qwen2 with use_sliding_window, gpt-oss):
tiny random models built from configs (no hub) run through every strategy, and the plan each answer reports says
per layer type what was stretched. The numerics (transformers' own logits within the window, decoding = one full pass
past it, a reused or reloaded prefix = a fresh run) are in tests/test_rope_layouts.py."""

import pytest

torch = pytest.importorskip("torch")

import docqa  # noqa: E402
from docqa.strategies import STRATEGIES  # noqa: E402
from tests import tiny_llama  # noqa: E402
from tests.conftest import FAKE_EMBEDDER  # noqa: E402

WINDOW = 512  # room for summarize's prompt around a chunk (--summary-window takes 256 at least)
# The tiny Qwen2's tokenizer is byte-level (tests/tiny_llama.py): its prompts are ~5× longer in tokens.
SCALE = {"qwen2-sw": 5}


def _document(n: int, seed: int) -> str:
    g = torch.Generator().manual_seed(seed)
    words = [tiny_llama.WORDS[i] for i in torch.randint(0, len(tiny_llama.WORDS), (n,), generator=g).tolist()]
    return " ".join(words) + " ."


@pytest.fixture(scope="module", params=["gemma3", "mistral-sw", "qwen2-sw", "gpt_oss"])
def hybrid(request, tmp_path_factory):
    window = WINDOW * SCALE.get(request.param, 1)
    return request.param, window, tiny_llama.build(tmp_path_factory.mktemp(request.param), window=window,
                                                   arch=request.param)


def test_every_strategy_answers_on_a_hybrid_attention_model(hybrid, tmp_path):
    arch, window, folder = hybrid
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(2):
        (docs / f"d{i}.txt").write_text(_document(400, seed=i))
    docqa.ingest(docs, "h", embedder=FAKE_EMBEDDER, model=str(folder), chunk_tokens=64 * SCALE.get(arch, 1))
    index = docqa.open_index("h", model=str(folder))
    question = "w1 w2 w3 ?"
    for strategy in STRATEGIES.names():
        answer = index.ask(question, strategy, max_new_tokens=4, top_k=2, summary_window=window,
                           max_context=8 * window, truncate=True)
        assert answer.tokens["completion"] >= 1, strategy
        rope = answer.details.get("rope")
        if strategy == "long-context":
            layers = rope["layers"]  # the corpus (~800 tokens) is past the 512-token window
            if arch == "mistral-sw":  # every layer slides: nothing is ever stretched
                assert rope["method"] == "none" and layers["all"]["factor"] == 1.0
            elif arch == "gemma3":  # only the global layers stretch
                assert layers["full_attention"]["factor"] > 1.0 and layers["sliding_attention"]["factor"] == 1.0
            else:  # one rope for every layer
                assert layers["all"]["factor"] > 1.0 and "sliding" in layers["all"]["note"]
    again = index.ask(question, "long-context", max_new_tokens=4, max_context=8 * window, truncate=True)
    first = index.ask(question, "long-context", max_new_tokens=4, max_context=8 * window, truncate=True)
    assert again.text == first.text and first.tokens["cached"] > 0  # the hybrid prefix is reused as it is


def test_a_sliding_window_model_prefills_in_chunks(hybrid):
    """In one pass a sliding layer attends through a mask over every earlier position, as costly as a full layer; in
    chunks it sees only its window (Gemma 3 270M at 32 k tokens: ~450 s in one pass, 79 s in 1 024-token chunks)."""
    from docqa.generators import GeneratorConfig, TransformersGenerator
    from docqa.generators.memory import SLIDING_PREFILL_CHUNK

    arch, window, folder = hybrid
    gen = TransformersGenerator(arch, str(folder), GeneratorConfig(model=str(folder)))
    assert gen.prefill_step(100_000) == SLIDING_PREFILL_CHUNK
    gen.config.prefill_chunk = 300  # an explicit chunk still wins
    assert gen.prefill_step(100_000) == 300
