"""The real Gemma 3 270M checkpoint (five 512-token sliding layers with rope base 10 k to one global layer with base
1 M) through docqa's in-process path. Its terms of use keep it out of docqa's default install, so these run where
``make gemma3`` installed it and are skipped, saying so, elsewhere. benchmarks/gemma3_numerics.py runs the same checks
at 16 k tokens and past the 32 k window."""

import pytest

torch = pytest.importorskip("torch")

from docqa import models  # noqa: E402
from tests.conftest import EXAMPLES  # noqa: E402

GEMMA = models.MODELS["gemma3-270m"]
pytestmark = pytest.mark.skipif(not models.parts_installed(GEMMA),
                                reason="Gemma 3 270M is not installed (make gemma3; Gemma's terms of use apply)")

TEXT = ("The committee met on a Tuesday in March to review the budget for the coming year. Every department had sent "
        "its numbers in advance, and most of them asked for more than they had spent the year before. ")


@pytest.fixture(scope="module")
def gemma():
    from transformers import AutoModelForCausalLM

    from docqa.generators import GeneratorConfig, TransformersGenerator
    from docqa.generators.gguf import resolve_model

    folder = resolve_model("gemma3-270m")
    gen = TransformersGenerator("gemma3-270m", folder, GeneratorConfig(model="gemma3-270m", dtype="float32"))
    return gen, AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


def test_docqa_gives_transformers_own_logits_past_the_sliding_window(gemma):
    from docqa.kv_cache import SlidingLayer, new_cache
    from docqa.rope import plan_for

    gen, reference = gemma
    text = "\n\n".join(p.read_text() for p in sorted(EXAMPLES.glob("*.md")))
    ids = gen.encode(text)[:1536]  # three sliding windows of real text
    plan = plan_for("yarn", gen.rope_model(), len(ids))
    assert plan.to_dict()["layers"]["sliding_attention"]["base"] == 10000.0
    with torch.inference_mode():
        want = reference(input_ids=torch.tensor([ids]), logits_to_keep=32).logits[0]
        gen._apply_rope(plan)
        cache = new_cache(gen.model.config, expected=len(ids))
        gen._prefill(ids[:-32], cache, None, logits=False)
        got = gen.model(input_ids=torch.tensor([ids[-32:]]), use_cache=True, **{gen._cache_kw: cache}).logits[0]
    assert (got - want).abs().max().item() <= 1e-4
    assert sum(isinstance(layer, SlidingLayer) for layer in cache.layers) == 15
    assert {layer.keys.shape[2] for layer in cache.layers if isinstance(layer, SlidingLayer)} == {511}


def test_a_question_over_a_reused_prefix_gives_a_fresh_runs_tokens(gemma, tmp_path):
    from docqa.rope import plan_for

    gen, _ = gemma
    doc = (gen.encode(TEXT) * 30)[:1200]
    question = gen.encode("\n\nThe committee met on a")
    plan = plan_for("yarn", gen.rope_model(), len(doc) + len(question) + 8)
    prefix = gen.prefill_prefix(doc, plan)
    fresh = gen.generate(doc + question, 8, rope=plan).text
    assert gen.generate(question, 8, prefix=prefix).text == fresh == gen.generate(question, 8, prefix=prefix).text
    gen.save_prefix(prefix, tmp_path / "p.safetensors")
    assert gen.generate(question, 8, prefix=gen.load_prefix(tmp_path / "p.safetensors", doc, plan)).text == fresh
    assert "Tuesday" in fresh  # a base model continues the pattern it has read 30 times
