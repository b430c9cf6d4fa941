"""The static-buffer decode step that CUDA graphs replay (docqa/generators/cuda_graphs.py), checked on CPU by running
the same step eagerly: same logits and answers as ordinary decoding, and the cache left as ordinary decoding leaves
it (a prefix reused afterwards). The capture itself needs a GPU: tests/test_cuda.py."""

import pytest

torch = pytest.importorskip("torch")

from docqa.generators import GeneratorConfig, TransformersGenerator, cuda_graphs  # noqa: E402
from docqa.rope import plan_for  # noqa: E402
from tests import tiny_llama  # noqa: E402


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    folder = tiny_llama.build(tmp_path_factory.mktemp("tiny-graphs"), window=64)
    return TransformersGenerator("tiny", str(folder), GeneratorConfig(model=str(folder), device=tiny_llama.DEVICE,
                                                                       dtype="float32", prefill_chunk=32))


def _ids(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, 240, (n,), generator=g).tolist()


@pytest.mark.parametrize("n", [5, 40, 90])  # inside and past the 64-token window (rope extension)
def test_static_steps_give_the_logits_of_ordinary_steps(gen, n):
    from docqa.kv_cache import new_cache

    ids, follow = _ids(n, seed=n), _ids(12, seed=n + 1)
    plan = plan_for("yarn", gen.rope_model(), n + len(follow))  # past the window for n = 90
    with torch.inference_mode():
        gen._apply_rope(plan)
        a, b = new_cache(gen.model.config, expected=n), new_cache(gen.model.config, expected=n)
        gen._prefill(ids, a, None)
        gen._prefill(ids, b, None)
        step = cuda_graphs.StaticStep(gen, b, n, len(follow), capture=False)
        try:
            for tok in follow:
                want = gen.model(input_ids=torch.tensor([[tok]], device=gen.device), use_cache=True,
                                 **{gen._cache_kw: a}).logits[0, -1]
                got = step(tok)
                assert (got - want).abs().max().item() <= 1e-4
        finally:
            step.close()
    assert b.get_seq_length() == a.get_seq_length() == n + len(follow)
    for la, lb in zip(a.layers, b.layers, strict=True):
        torch.testing.assert_close(la.keys, lb.keys, rtol=0, atol=1e-5)


def test_answers_and_prefix_reuse_are_unchanged_with_static_steps(gen, monkeypatch):
    prefix = gen.prefill_prefix(_ids(50, seed=3), gen.plain_plan(120))
    questions = [_ids(k, seed=10 + k) for k in (4, 9, 15)]
    eager = [gen.generate(q, 12, prefix=prefix).text for q in questions]
    used = []

    def forced(g, cache, max_new):  # the CUDA path's step, eagerly: what the graph replays
        used.append(max_new)
        return cuda_graphs.StaticStep(g, cache, cache.layers[0].length, max_new, capture=False)

    monkeypatch.setattr(cuda_graphs, "static_step", forced)
    static = [gen.generate(q, 12, prefix=prefix).text for q in questions]
    assert used and static == eager
    assert prefix.cache.get_seq_length() == 50  # cropped back: the prefix serves the next question
    assert all(layer.static_pos is None for layer in prefix.cache.layers)


def test_static_steps_apply_only_on_cuda(gen):
    from docqa.kv_cache import new_cache

    cache = new_cache(gen.model.config, expected=10)
    with torch.inference_mode():
        gen._prefill(_ids(10), cache, None)
    if not str(gen.device).startswith("cuda"):
        assert cuda_graphs.static_step(gen, cache, 32) is None
    assert cuda_graphs.static_step(gen, cache, cuda_graphs.MIN_TOKENS - 1) is None  # too short to pay for a capture


def test_a_failed_capture_falls_back_to_eager_steps_once(gen, monkeypatch, caplog):
    """Where capture fails (an operation that synchronises, a driver refusing), the answer is still the eager one, the
    cache is left as eager decoding leaves it, and the generator stops trying (one warning)."""
    prefix = gen.prefill_prefix(_ids(40, seed=4), gen.plain_plan(120))
    q = _ids(6, seed=5)
    want = gen.generate(q, 12, prefix=prefix).text
    tried = []

    def broken(self):
        tried.append(1)
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(cuda_graphs.StaticStep, "_capture", broken)
    monkeypatch.setattr(cuda_graphs, "_on_cuda", lambda g: True)  # the CUDA path's checks, on this model
    monkeypatch.setattr(gen, "_graphs_failed", False, raising=False)
    with caplog.at_level("WARNING", logger="docqa.generators.cuda_graphs"):
        assert gen.generate(q, 12, prefix=prefix).text == want
        assert gen.generate(q, 12, prefix=prefix).text == want
    assert tried == [1] and gen._graphs_failed  # tried once, then eager for good
    assert sum("CUDA graph capture failed" in r.message for r in caplog.records) == 1
    assert prefix.cache.get_seq_length() == 40 and all(layer.static_pos is None for layer in prefix.cache.layers)
