"""The llama.cpp backend on a real GGUF (the embedded SmolLM2, 94 MB): the generator contract, prefix reuse across
evictions and disk, rope settings, scoring, and the backend choice for embedded aliases."""

from __future__ import annotations

import math

import pytest

from docqa.errors import ConfigError, ModelLoadError
from docqa.generators import GeneratorConfig, load_generator, parse_spec
from docqa.generators.llamacpp import LlamaCppGenerator, PrefixHeader
from docqa.rope import plan_for

DOC = ("The probation period for new employees is 90 days. Employees may work remotely up to three days a week. "
       "The nightly hotel cap is 220 US dollars in most cities. ") * 3


@pytest.fixture(scope="module")
def gen() -> LlamaCppGenerator:
    g = load_generator(GeneratorConfig(model="llama.cpp:smollm2", threads=2))
    assert isinstance(g, LlamaCppGenerator)
    return g


def _prompt(gen, question: str) -> str:
    return gen.chat("Answer from the document in a few words.", f"Document:\n{DOC}\n\nQuestion: {question}")


def test_embedded_qwen_aliases_run_on_llama_cpp_and_smollm2_on_transformers():
    assert parse_spec("qwen2.5-coder-1.5b")[1] == "llama.cpp"
    assert parse_spec("qwen2.5-coder-0.5b")[1] == "llama.cpp"
    assert parse_spec("smollm2")[1] == "transformers"
    assert parse_spec("transformers:qwen2.5-coder-1.5b")[1] == "transformers"  # forced
    assert parse_spec("llama.cpp:smollm2") == ("llama.cpp:smollm2", "llama.cpp", "smollm2")
    # Where a GPU is asked for, a bare alias runs on transformers (llama.cpp is built for the CPU here); a named
    # backend stays as named.
    from docqa.generators import _resolve

    assert _resolve(GeneratorConfig(model="qwen2.5-coder-1.5b", device="cuda"))[1] == "transformers"
    assert _resolve(GeneratorConfig(model="qwen2.5-coder-1.5b", device="cpu"))[1] == "llama.cpp"
    assert _resolve(GeneratorConfig(model="llama.cpp:qwen2.5-coder-1.5b", device="cuda"))[1] == "llama.cpp"


def test_text_round_trips_and_the_chat_template_comes_from_the_gguf(gen):
    text = "Hello, wörld — 90 days."
    assert gen.decode(gen.encode(text)) == text
    prompt = gen.chat("SYS", "USER")
    assert "SYS" in prompt and "USER" in prompt and prompt.rstrip().endswith("assistant")
    # Chat markers in text are the model's special tokens, one token each (as transformers tokenizes them).
    assert len(gen.encode("<|im_start|>")) == 1
    assert gen.kv_bytes_per_token() == 30 * 2 * 3 * 64 * 2  # SmolLM2-135M: 30 layers, 3 KV heads of 64, f16


def test_greedy_answers_are_reproducible_and_end_for_a_reason(gen):
    p = _prompt(gen, "How long is the probation period?")
    a = gen.generate(p, 24, stop=("\n",))
    b = gen.generate(p, 24, stop=("\n",))
    assert a.text == b.text and a.text
    assert a.finish_reason in ("eos", "stop", "length") and a.completion_tokens <= 24
    assert a.prompt_tokens == len(gen.encode(p)) and a.cached_tokens == 0
    assert a.prefill_s > 0 and a.decode_s > 0 and a.ttft_s >= a.prefill_s


def test_a_prefix_answers_as_a_fresh_prompt_does_across_evictions_and_disk(gen, tmp_path):
    q1, q2 = "How long is the probation period?", "What is the nightly hotel cap?"
    full1, full2 = gen.encode(_prompt(gen, q1)), gen.encode(_prompt(gen, q2))
    n = next(i for i, (x, y) in enumerate(zip(full1, full2)) if x != y)  # the shared document prefix
    fresh1 = gen.generate(full1, 24, stop=("\n",)).text
    fresh2 = gen.generate(full2, 24, stop=("\n",)).text
    plan = gen.plain_plan(len(full1) + 64)
    state = gen.prefill_prefix(full1[:n], plan)
    assert gen.generate(full1[n:], 24, prefix=state, stop=("\n",), rope=plan).text == fresh1
    assert gen.generate(full2[n:], 24, prefix=state, stop=("\n",)).text == fresh2
    # Another prompt takes the context: the prefix is copied out, then restored for the next question.
    other = gen.prefill_prefix(gen.encode("An unrelated prefix about the weather. " * 20), plan)
    assert state.cache.data is not None
    out = gen.generate(full1[n:], 24, prefix=state, stop=("\n",))
    assert out.text == fresh1 and out.cached_tokens == n and out.prompt_tokens == len(full1)
    # Saved to disk and loaded by the same model: the same answer; anything else is not loaded.
    path = tmp_path / "p.bin"
    gen.save_prefix(state, path)
    loaded = gen.load_prefix(path, full1[:n], plan)
    assert loaded is not None and loaded.meta["loaded_from"] == str(path)
    del state, other
    assert gen.generate(full2[n:], 24, prefix=loaded, stop=("\n",)).text == fresh2
    assert gen.load_prefix(path, full1[:n - 1], plan) is None  # another prefix length
    assert gen.load_prefix(path, full1[:n], plan_for("yarn", gen.rope_model(), 3 * gen.trained_window)) is None
    header = PrefixHeader.model_validate_json(path.read_bytes().split(b"\n", 1)[0])
    path.write_bytes(header.model_copy(update={"model": "llama.cpp:other"}).model_dump_json().encode() + b"\n"
                     + path.read_bytes().split(b"\n", 1)[1])
    assert gen.load_prefix(path, full1[:n], plan) is None
    path.write_bytes(b"not a prefix file")
    assert gen.load_prefix(path, full1[:n], plan) is None


def test_score_is_a_log_probability_and_leaves_the_answer_unchanged(gen):
    p = _prompt(gen, "How long is the probation period?")
    plain = gen.generate(p, 16, stop=("\n",))
    scored = gen.generate(p, 16, stop=("\n",), score="I don't know.")
    assert scored.text == plain.text
    assert scored.score_logprob is not None and scored.score_logprob < 0 and math.isfinite(scored.score_logprob)
    first = gen.encode(plain.text)[:3]
    likely = gen.generate(p, 16, stop=("\n",), score=gen.decode(first))
    assert likely.score_logprob > scored.score_logprob  # the model's own answer is likelier than a refusal


def test_past_the_window_every_rope_method_maps_to_llama_cpp_settings(gen):
    import llama_cpp as lc

    seq = 3 * gen.trained_window
    settings = {m: gen._rope_settings(plan_for(m, gen.rope_model(), seq)) for m in ("yarn", "linear", "ntk", "dynamic")}
    assert settings["yarn"] == (lc.LLAMA_ROPE_SCALING_TYPE_YARN, 0.0, pytest.approx(1 / 3), gen.trained_window)
    assert settings["linear"][0] == lc.LLAMA_ROPE_SCALING_TYPE_LINEAR and settings["linear"][2] == pytest.approx(1 / 3)
    assert settings["ntk"][1] > gen.rope_model().rope_theta and settings["ntk"][2] == 1.0
    within = gen._rope_settings(plan_for("yarn", gen.rope_model(), 100))
    assert within == (lc.LLAMA_ROPE_SCALING_TYPE_NONE, 0.0, 0.0, 0)


def test_a_stretched_request_runs_past_the_trained_window():
    # A 512-token "trained window" so the test stays small; the plan stretches 4x with YaRN.
    g = LlamaCppGenerator("llama.cpp:smollm2", "smollm2", GeneratorConfig(model="llama.cpp:smollm2", threads=2,
                                                                          trained_window=512))
    ids = g.encode(DOC * 12)[:1500]
    plan = plan_for("yarn", g.rope_model(), len(ids) + 32)
    assert plan.factor > 1
    out = g.generate(ids, 8, rope=plan)
    assert out.prompt_tokens == len(ids) and out.rope == plan
    with pytest.raises(ConfigError, match="do not fit"):
        g.generate(ids, 8)  # the plain plan cannot hold 1 500 tokens in a 512-token window


def test_a_prefix_past_the_window_fits_a_plan_that_reserves_less_than_512_tokens():
    """Regression: long-context past the window sizes its plan for prefix + question + answer (~350 tokens of room);
    prefill_prefix asked for prefix + 512 and every question failed with "do not fit" (found on 41 k tokens)."""
    g = LlamaCppGenerator("llama.cpp:smollm2", "smollm2", GeneratorConfig(model="llama.cpp:smollm2", threads=2,
                                                                          trained_window=512))
    prefix = g.encode(DOC * 12)[:1200]
    question = g.encode(" Question: How long is the probation period?")
    plan = plan_for("yarn", g.rope_model(), len(prefix) + 256 + 8)  # room for the question and 8 new tokens
    assert plan.factor > 1
    state = g.prefill_prefix(prefix, plan)
    out = g.generate(question, 8, prefix=state)
    assert out.prompt_tokens == len(prefix) + len(question) and out.rope == plan


def test_llama_cpp_refuses_a_gpu_device_and_a_file_that_is_not_gguf(tmp_path):
    with pytest.raises(ConfigError, match="runs on the CPU"):
        LlamaCppGenerator("llama.cpp:smollm2", "smollm2", GeneratorConfig(device="cuda"))
    with pytest.raises(ModelLoadError, match="No GGUF file at"):
        LlamaCppGenerator("llama.cpp:missing.gguf", str(tmp_path / "missing.gguf"), GeneratorConfig())
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"GGUF but not really")
    with pytest.raises(ModelLoadError, match="llama.cpp could not load"):
        LlamaCppGenerator(f"llama.cpp:{bad}", str(bad), GeneratorConfig())


def test_a_sliding_window_gguf_is_sent_to_the_transformers_backend_in_one_line():
    from docqa.errors import ModelLoadError
    from docqa.generators.llamacpp_gguf import gguf_facts

    meta = {"general.architecture": "gemma3", "gemma3.attention.sliding_window": "512"}
    with pytest.raises(ModelLoadError, match=r"--model transformers:/m/gemma\.gguf.*--model openai:NAME") as e:
        gguf_facts(meta, "llama.cpp:/m/gemma.gguf")
    assert "\n" not in str(e.value)


def test_an_answer_streams_token_by_token_and_ends_as_returned(gen):
    p = _prompt(gen, "What is the nightly hotel cap?")
    plain = gen.generate(p, 32, stop=("\n",))
    texts: list[str] = []
    out = gen.generate(p, 32, stop=("\n",), on_text=texts.append)
    assert out.text == plain.text and out.completion_tokens == plain.completion_tokens  # streaming changes nothing
    assert len(texts) > 1 and texts[-1] == out.text
    assert all(b.startswith(a) and len(b) > len(a) for a, b in zip(texts, texts[1:]))
