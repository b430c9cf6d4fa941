"""Every rope layout docqa loads in-process: plain, natively scaled (llama3, yarn, longrope, linear, dynamic) and
partial rotary (Phi, StableLM, GPT-NeoX), each on a tiny random model built from a config here (no hub).

Within the advertised window docqa's decoding path gives transformers' own logits (method ``native`` for scaled
checkpoints); past it, docqa's extension rotates cached keys and new queries alike, so token-by-token decoding
equals one full pass.
"""

import pytest

torch = pytest.importorskip("torch")

from docqa.generators import GeneratorConfig, TransformersGenerator  # noqa: E402
from docqa.rope import inv_freq_for, native_inv_freq, plan_for  # noqa: E402
from tests import tiny_llama  # noqa: E402

WINDOW = 64
# (architecture, the rope block its config ships). Tiny analogues of the real ones: Llama 3.1 (llama3, factor 8 over
# 8 192 → 131 072), Qwen2.5 / DeepSeek (yarn), Phi-3.5 (longrope: short factors up to the original window, long past).
LAYOUTS = {
    "llama": ("llama", None),
    "llama3": ("llama", {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 4.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 16}),
    "qwen2-yarn": ("qwen2", {"rope_type": "yarn", "rope_theta": 1e6, "factor": 4.0,
                             "original_max_position_embeddings": 16}),
    "phi3-longrope": ("phi3", {"rope_type": "longrope", "rope_theta": 10000.0, "original_max_position_embeddings": 16,
                               "short_factor": [1.0, 1.0, 1.1, 1.2, 1.5, 2.0, 2.5, 3.0],
                               "long_factor": [1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0]}),
    "llama-linear": ("llama", {"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0}),
    "llama-dynamic": ("llama", {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0}),
    "mistral": ("mistral", None),
    "phi-partial": ("phi", None),
    "stablelm-partial": ("stablelm", None),
    "gpt_neox-partial": ("gpt_neox", None),
    # Hybrid attention (sliding windows of 16 tokens): Gemma 3 with one rope per layer type (and, like Gemma 3 4B+, a
    # natively scaled rope on its full layers only), Mistral with every layer sliding, Qwen2 with use_sliding_window,
    # gpt-oss's alternating layers under one rope.
    "gemma3": ("gemma3", None),
    "gemma3-linear": ("gemma3", {"rope_type": "linear", "rope_theta": 1e6, "factor": 2.0}),
    "mistral-sliding": ("mistral-sw", None),
    "qwen2-sliding": ("qwen2-sw", None),
    "gpt_oss": ("gpt_oss", None),
}
HYBRID = {"gemma3", "gemma3-linear", "mistral-sliding", "qwen2-sliding", "gpt_oss"}


@pytest.fixture(scope="module", params=list(LAYOUTS))
def layout(request, tmp_path_factory):
    arch, rope = LAYOUTS[request.param]
    folder = tiny_llama.build(tmp_path_factory.mktemp(request.param), window=WINDOW, arch=arch, rope=rope)
    from transformers import AutoModelForCausalLM

    gen = TransformersGenerator(request.param, str(folder), GeneratorConfig(model=str(folder), prefill_chunk=24,
                                                                             device=tiny_llama.DEVICE,
                                                                             dtype=tiny_llama.DTYPE))
    # transformers' own, untouched
    reference = AutoModelForCausalLM.from_pretrained(str(folder)).to(gen.device).eval()
    return request.param, gen, reference


def _ids(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, 240, (n,), generator=g).tolist()


def _stepwise(gen, ids):
    """docqa's decoding path: the in-place KV cache, one token at a time."""
    from docqa.kv_cache import new_cache

    cache = new_cache(gen.model.config, expected=len(ids))
    with torch.inference_mode():
        return torch.stack([gen.model(input_ids=torch.tensor([[i]], device=gen.device), use_cache=True,
                                      **{gen._cache_kw: cache}).logits[0, -1] for i in ids])


def test_the_rope_model_reads_the_config(layout):
    name, gen, _ = layout
    rm = gen.rope_model()
    assert rm.trained_window == WINDOW
    assert bool(rm.native) == (LAYOUTS[name][1] is not None)
    partial = {"phi-partial": 0.5, "stablelm-partial": 0.25, "gpt_neox-partial": 0.25}.get(name, 1.0)
    head_dim = gen.model.config.hidden_size // gen.model.config.num_attention_heads
    assert rm.head_dim == int(head_dim * partial)


@pytest.mark.parametrize("length", [12, 40, WINDOW])  # 40 > the originals (16) of llama3/yarn/longrope, ≤ the window
def test_within_the_window_docqa_gives_transformers_own_logits(layout, length):
    name, gen, reference = layout
    ids = _ids(length)
    plan = plan_for("yarn", gen.rope_model(), length)  # docqa's default method
    plain = "none" if gen.rope_model().only_sliding else "yarn"
    assert plan.factor == 1.0 and plan.method == ("native" if LAYOUTS[name][1] else plain)
    with torch.inference_mode():
        want = reference(input_ids=torch.tensor([ids], device=gen.device)).logits[0]
        gen._apply_rope(plan)
        got_full = gen.model(input_ids=torch.tensor([ids], device=gen.device)).logits[0]
    assert (got_full - want).abs().max().item() <= 1e-4
    assert (_stepwise(gen, ids) - want).abs().max().item() <= 1e-4


@pytest.mark.parametrize("method", ["yarn", "ntk", "dynamic", "linear"])
def test_past_the_window_decoding_equals_one_full_pass(layout, method):
    name, gen, _ = layout
    ids = _ids(3 * WINDOW, seed=1)
    rm = gen.rope_model()
    plan = plan_for(method, rm, len(ids))
    if rm.only_sliding:  # no layer attends past its window: nothing to stretch, the sliding caches do the work
        assert plan.factor == 1.0 and plan.layers[0][0] == "all"
    else:
        assert plan.factor == 3.0
        inv, _ = inv_freq_for(plan, rm)
        native, _ = native_inv_freq(rm, rm.trained_window)
        assert inv.shape == native.shape and not torch.allclose(inv, native)  # the extension is active
        assert bool((inv <= native * (1 + 1e-6)).all())  # every method slows rotations, none speeds one up
    gen._apply_rope(plan)
    with torch.inference_mode():
        full = gen.model(input_ids=torch.tensor([ids], device=gen.device)).logits[0]
    assert (full - _stepwise(gen, ids)).abs().max().item() <= 1e-4


def test_generation_with_a_reused_prefix_equals_a_fresh_run_past_the_window(layout):
    name, gen, _ = layout
    doc, question = _ids(2 * WINDOW, seed=2), _ids(6, seed=3)
    plan = plan_for("yarn", gen.rope_model(), len(doc) + len(question) + 8)
    prefix = gen.prefill_prefix(doc, plan)
    reused = gen.generate(question, 8, prefix=prefix)
    again = gen.generate(question, 8, prefix=prefix)
    fresh = gen.generate(doc + question, 8, rope=plan)
    assert reused.text == again.text == fresh.text


def test_sliding_layers_keep_their_window_and_a_hybrid_prefix_survives_disk(layout, tmp_path):
    """A sliding layer holds its last window − 1 positions whatever the length; the saved prefix (full layers whole,
    sliding layers their window) answers like the prefix in memory, and its bytes count each layer type."""
    name, gen, _ = layout
    if name not in HYBRID:
        pytest.skip("no sliding layers")
    from docqa.kv_cache import SlidingLayer

    doc, question = _ids(3 * WINDOW, seed=4), _ids(5, seed=5)
    plan = plan_for("yarn", gen.rope_model(), len(doc) + 32)
    prefix = gen.prefill_prefix(doc, plan)
    kinds = [isinstance(layer, SlidingLayer) for layer in prefix.cache.layers]
    assert any(kinds)
    window = gen.model.config.sliding_window
    for layer, sliding in zip(prefix.cache.layers, kinds, strict=True):
        assert layer.keys.shape[2] == (window - 1 if sliding else len(doc))
    per_layer = gen.kv_bytes_per_token() // max(1, kinds.count(False)) if not all(kinds) else None
    if per_layer:
        assert gen.kv_bytes(len(doc)) == per_layer * (kinds.count(False) * len(doc) + kinds.count(True) * (window - 1))
    first = gen.generate(question, 6, prefix=prefix)
    gen.save_prefix(prefix, tmp_path / "p.safetensors")
    loaded = gen.load_prefix(tmp_path / "p.safetensors", doc, plan)
    assert loaded is not None and gen.generate(question, 6, prefix=loaded).text == first.text
    assert gen.generate(question, 6, prefix=prefix).text == first.text  # the prefix in memory is unchanged


def test_only_the_full_layers_rope_is_stretched_on_a_model_with_one_rope_per_layer_type(layout):
    name, gen, _ = layout
    if not gen.rope_model().layer_type:
        pytest.skip("one rope for every layer")
    rm = gen.rope_model()
    plan = plan_for("yarn", rm, 4 * WINDOW)
    gen._apply_rope(plan)
    rotary = gen._rotaries[0]
    stretched, _ = inv_freq_for(plan, rm)
    (sliding_name, sliding_rope), = rm.fixed
    assert torch.allclose(rotary.full_attention_inv_freq.cpu(), stretched)
    assert torch.allclose(getattr(rotary, f"{sliding_name}_inv_freq").cpu(), native_inv_freq(sliding_rope, 1)[0])
    assert sliding_rope.rope_theta == 10000.0 and rm.rope_theta == 1e6
    layers = plan.to_dict()["layers"]
    assert layers["full_attention"]["factor"] == 4.0 and layers["sliding_attention"]["factor"] == 1.0


def test_every_layer_can_be_stretched_for_comparison_with_at_all(layout):
    """``yarn@all`` stretches the sliding layers' rope too (the comparison docqa bench rope draws); plain ``yarn``
    leaves them alone; on a model with one rope the suffix changes nothing."""
    name, gen, _ = layout
    rm = gen.rope_model()
    plan, every = plan_for("yarn", rm, 4 * WINDOW), plan_for("yarn@all", rm, 4 * WINDOW)
    if not rm.fixed:
        assert every == plan
        return
    assert every.every_layer and every.to_dict()["layers"]["sliding_attention"]["factor"] == 4.0
    own = rm.layer_frequencies(plan)["sliding_attention"][0]
    stretched = rm.layer_frequencies(every)["sliding_attention"][0]
    assert not torch.allclose(own, stretched) and bool((stretched <= own * (1 + 1e-6)).all())
    full = [rm.layer_frequencies(p)["full_attention"][0] for p in (plan, every)]
    assert torch.equal(*full)
