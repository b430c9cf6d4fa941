"""The transformers generator: per-request rope agrees between prefill and decoding, and prefix reuse is exact."""

import json

import pytest

torch = pytest.importorskip("torch")

from docqa.generators import GeneratorConfig, TransformersGenerator  # noqa: E402
from docqa.rope import plan_for  # noqa: E402
from tests import tiny_llama  # noqa: E402

WINDOW = 64


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    folder = tiny_llama.build(tmp_path_factory.mktemp("tiny"), window=WINDOW)
    return TransformersGenerator("tiny", str(folder), GeneratorConfig(model=str(folder), prefill_chunk=48,
                                                                       device=tiny_llama.DEVICE,
                                                                       dtype=tiny_llama.DTYPE))


def _ids(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, 240, (n,), generator=g).tolist()


def _full_logits(gen, ids):
    with torch.inference_mode():
        return gen.model(input_ids=torch.tensor([ids], device=gen.device)).logits[0]


def _stepwise_logits(gen, ids):
    from transformers import DynamicCache

    cache = DynamicCache(config=gen.model.config)
    rows = []
    with torch.inference_mode():
        for i in ids:
            out = gen.model(input_ids=torch.tensor([[i]], device=gen.device), use_cache=True, **{gen._cache_kw: cache})
            rows.append(out.logits[0, -1])
    return torch.stack(rows)


@pytest.mark.parametrize("method", ["dynamic", "yarn", "ntk", "linear"])
def test_decoding_with_cache_equals_one_full_pass_past_the_window(gen, method):
    ids = _ids(3 * WINDOW)
    plan = plan_for(method, gen.rope_model(), len(ids))
    assert plan.factor == 3.0  # scaling is active
    gen._apply_rope(plan)
    diff = (_full_logits(gen, ids) - _stepwise_logits(gen, ids)).abs().max().item()
    assert diff <= 1e-4


def test_transformers_native_dynamic_rope_disagrees_with_itself(tmp_path):
    """Why docqa fixes one base per request (transformers issue #25104): with rope_type 'dynamic', the base used for
    cached keys depends on how the sequence was fed, so token-by-token decoding and a full pass differ."""
    from transformers import AutoModelForCausalLM

    folder = tiny_llama.build(tmp_path / "tiny-dyn", window=WINDOW)
    def fresh():
        model = AutoModelForCausalLM.from_pretrained(
            str(folder), rope_parameters={"rope_type": "dynamic", "factor": 1.0, "rope_theta": 10000.0})
        holder = type("Holder", (), {})()
        holder.model, holder._cache_kw, holder.device = model, gen_cache_kw(model), "cpu"
        return holder

    ids = _ids(3 * WINDOW)
    assert (_full_logits(fresh(), ids) - _stepwise_logits(fresh(), ids)).abs().max().item() > 1e-2


def gen_cache_kw(model):
    import inspect

    return "cache" if "cache" in inspect.signature(model.model.forward).parameters else "past_key_values"


def test_chunked_prefill_gives_the_same_next_token_logits(gen):
    from transformers import DynamicCache

    from docqa.kv_cache import new_cache

    ids = _ids(150, seed=3)
    plan = plan_for("yarn", gen.rope_model(), 200)
    gen._apply_rope(plan)
    with torch.inference_mode():
        chunked = gen._prefill(ids, DynamicCache(config=gen.model.config), None)
        in_place = gen._prefill(ids, new_cache(gen.model.config), None)
    assert (in_place - chunked).abs().max().item() <= 1e-5
    assert (chunked - _full_logits(gen, ids)[-1]).abs().max().item() <= 1e-4


def test_prefix_reuse_gives_identical_answers(gen):
    prefix, suffix = _ids(120, seed=1), _ids(10, seed=2)
    plan = plan_for("dynamic", gen.rope_model(), 200)
    direct = gen.generate(prefix + suffix, 12, rope=plan)
    state = gen.prefill_prefix(prefix, plan)
    first = gen.generate(suffix, 12, prefix=state)
    again = gen.generate(suffix, 12, prefix=state)  # the cache was cropped back to the prefix
    assert direct.text == first.text == again.text
    assert first.cached_tokens == 120 and first.prompt_tokens == 130
    assert state.cache.get_seq_length() == 120
    assert type(state.cache.layers[0]).__name__ == "InPlaceLayer"


def test_prefix_round_trips_through_safetensors(gen, tmp_path):
    prefix, suffix = _ids(100, seed=4), _ids(8, seed=5)
    plan = plan_for("yarn", gen.rope_model(), 160)
    state = gen.prefill_prefix(prefix, plan)
    path = tmp_path / "p" / "x.safetensors"
    gen.save_prefix(state, path)
    loaded = gen.load_prefix(path, prefix, plan)
    assert loaded is not None
    assert gen.generate(suffix, 10, prefix=loaded).text == gen.generate(suffix, 10, prefix=state).text
    assert gen.load_prefix(path, prefix[:-1], plan) is None  # a different prefix length is not reused


def test_generation_stops_at_eos_or_budget(gen):
    out = gen.generate(_ids(20), 5)
    assert out.finish_reason in ("eos", "length") and out.completion_tokens <= 5
    assert out.prefill_s > 0 and out.ttft_s >= out.prefill_s


def test_in_place_cache_grows_crops_and_matches_transformers_cache(gen):
    from transformers import DynamicCache

    from docqa.kv_cache import new_cache

    ids = _ids(90, seed=7)
    plan = plan_for("ntk", gen.rope_model(), 100)
    gen._apply_rope(plan)
    ours, theirs = new_cache(gen.model.config, expected=8, reserve=0), DynamicCache(config=gen.model.config)
    with torch.inference_mode():
        for start in range(0, 90, 13):  # many small writes force several regrowths
            chunk = torch.tensor([ids[start:start + 13]], device=gen.device)
            a = gen.model(input_ids=chunk, use_cache=True, **{gen._cache_kw: ours})
            b = gen.model(input_ids=chunk, use_cache=True, **{gen._cache_kw: theirs})
            assert (a.logits - b.logits).abs().max().item() <= 1e-5
    assert ours.get_seq_length() == 90
    ours.crop(-40)
    assert ours.get_seq_length() == 50 and ours.layers[0].keys.shape[-2] == 50


def test_tail_logprobs_equal_a_full_pass(gen):
    ids = _ids(140, seed=9)
    plan = plan_for("yarn", gen.rope_model(), 140)
    gen._apply_rope(plan)
    with torch.inference_mode():
        full = torch.log_softmax(_full_logits(gen, ids), -1)
    expected = full[:-1].gather(1, torch.tensor(ids[1:], device=gen.device)[:, None])[:, 0][-50:]
    got = gen.tail_logprobs(ids, plan, 50)
    assert got.shape == (50,) and (got - expected).abs().max().item() <= 1e-4


def test_grouped_attention_matches_sdpa(tmp_path):
    """docqa's few-query CPU attention gives the logits transformers' SDPA gives, with and without a cache."""
    from transformers import AutoModelForCausalLM, DynamicCache

    from docqa.attention import register

    folder = tiny_llama.build(tmp_path / "tiny-attn", window=WINDOW)
    ref = AutoModelForCausalLM.from_pretrained(str(folder), attn_implementation="sdpa")
    ours = AutoModelForCausalLM.from_pretrained(str(folder))
    ours.set_attn_implementation(register())
    ids = torch.tensor([_ids(100, seed=11)])
    with torch.inference_mode():
        c_ref, c_ours = DynamicCache(config=ref.config), DynamicCache(config=ours.config)
        for s, e in [(0, 70), (70, 75), (75, 76), (76, 100)]:  # a long chunk, a short suffix, one step, another
            a = ref(input_ids=ids[:, s:e], use_cache=True, **{gen_cache_kw(ref): c_ref}).logits
            b = ours(input_ids=ids[:, s:e], use_cache=True, **{gen_cache_kw(ours): c_ours}).logits
            assert (a - b).abs().max().item() <= 1e-4
        assert (ref(input_ids=ids[:, :20]).logits - ours(input_ids=ids[:, :20]).logits).abs().max().item() <= 1e-4


@pytest.mark.parametrize("spread", [1.0, 3.0])
def test_grouped_attention_in_bf16_is_as_close_to_fp32_as_sdpa(spread):
    """In bf16 the few-query path keeps its scores in fp32, as SDPA's kernels do: with peaked attention (large logits)
    bf16 scores were up to 4x further from the fp32 result than SDPA's (and 20 % apart from llama.cpp's cache on the
    1.5 B reader's first 48 tokens)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from docqa.attention import grouped_attention

    class Module:
        num_key_value_groups, is_causal, training = 6, True, False

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 12, 1, 128, generator=g) * spread, torch.randn(1, 2, 3000, 128, generator=g) * spread,
               torch.randn(1, 2, 3000, 128, generator=g))
    ref, _ = sdpa_attention_forward(Module(), q, k, v, None, scaling=128**-0.5, is_causal=False)

    def error(fn) -> float:
        out, _ = fn(Module(), *(t.to(torch.bfloat16) for t in (q, k, v)), None, scaling=128**-0.5, is_causal=False)
        return ((out.float() - ref).norm() / ref.norm()).item()

    assert error(grouped_attention) <= 1.5 * error(sdpa_attention_forward)


def test_a_damaged_saved_prefix_is_a_cache_miss_and_is_removed(gen, tmp_path):
    prefix = _ids(60, seed=6)
    plan = plan_for("none", gen.rope_model(), 100)
    path = tmp_path / "p" / "x.safetensors"
    gen.save_prefix(gen.prefill_prefix(prefix, plan), path)
    data = path.read_bytes()
    for damaged in (data[: len(data) // 2], b"\0" * len(data), data[:8] + b"{garbage" + data[16:]):
        path.write_bytes(damaged)
        assert gen.load_prefix(path, prefix, plan) is None
        assert not path.exists()


def test_chat_templates_without_a_system_role_or_without_a_template(tmp_path):
    from transformers import AutoTokenizer

    from docqa.generators.base import render_chat

    tok = AutoTokenizer.from_pretrained(str(tiny_llama.build(tmp_path / "t", window=WINDOW)))
    # Gemma-style: the template raises on a system message; the system text goes into the user turn instead.
    tok.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
        "{% endif %}<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|> {% endfor %}"
        "{% if add_generation_prompt %}<|im_start|> assistant {% endif %}")
    out = render_chat(tok, "w1 w2", "w3 w4")
    assert "w1 w2" in out and "w3 w4" in out and "system" not in out and out.rstrip().endswith("assistant")
    tok.chat_template = None  # a base model: a plain prompt
    assert render_chat(tok, "w1", "w2") == "w1\n\nw2\n\nAnswer:"


@pytest.mark.parametrize("kind, needle", [
    ("unknown", "rope_type 'warp'.*does not know.*--model openai:NAME"),
    ("chunked", "chunked_attention layers.*--model openai:NAME"),
    ("disagree", "layer types \\(full_attention, sliding_attention\\) and its rope blocks \\(full_attention\\) "
                 "disagree.*Fix config.json"),
    ("too-wide", "sliding window \\(262,144 tokens\\) is larger than its window.*Fix config.json"),
    ("no-size", "sliding-window layers but no sliding_window size"),
])
def test_layouts_docqa_cannot_run_are_refused_from_the_config_before_any_weight_loads(tmp_path, kind, needle):
    """Only config.json is written: had docqa tried to load weights, the error would be a missing-weights one."""
    from transformers import LlamaConfig

    from docqa.errors import ModelLoadError

    folder = tmp_path / kind
    small = dict(vocab_size=100, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 max_position_embeddings=131072)
    LlamaConfig(**small).save_pretrained(str(folder))
    raw = json.loads((folder / "config.json").read_text())
    hybrid = ["sliding_attention", "full_attention"]
    if kind == "unknown":
        raw["rope_parameters"] = {"rope_type": "warp", "rope_theta": 1e4}
    elif kind == "chunked":  # Llama 4's chunked attention
        raw["layer_types"] = ["chunked_attention", "full_attention"]
    elif kind == "disagree":  # one rope block for a model with two layer types
        raw.update(layer_types=hybrid, sliding_window=512,
                   rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 1e6}})
    elif kind == "too-wide":
        raw.update(layer_types=hybrid, sliding_window=262144)
    elif kind == "no-size":
        raw.update(layer_types=hybrid, sliding_window=None)
    (folder / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ModelLoadError, match=needle) as e:
        TransformersGenerator("x", str(folder), GeneratorConfig(model=str(folder)))
    assert "131,072" in str(e.value) and "\n" not in str(e.value)


def test_out_of_memory_is_one_docqa_error_naming_the_kv_size(gen, monkeypatch):
    from docqa.errors import OutOfMemory

    def boom(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(gen, "_prefill", boom)
    with pytest.raises(OutOfMemory, match=r"KV cache alone needs .* GiB \(.* bytes a token.*--max-context") as e:
        gen.generate(_ids(20), 4)
    cfg = gen.model.config
    assert e.value.bytes_per_token == cfg.num_hidden_layers * 2 * cfg.num_key_value_heads * 16 * 4
    monkeypatch.undo()
    assert gen.generate(_ids(20), 2).completion_tokens <= 2  # the generator still works afterwards


@pytest.mark.parametrize("device, needle", [
    ("tpu", "Unknown device 'tpu'"), ("cuda:x", None), ("cuda:7", None), ("cuda", None),
])
def test_devices_are_checked_before_loading(device, needle):
    from docqa.errors import ConfigError
    from docqa.generators.hf import resolve_device

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; the refusals below are for one without")
    with pytest.raises(ConfigError, match=needle or "no CUDA GPU here.*--device cpu"):
        resolve_device(device)
    assert resolve_device(None) == ("cpu", "cpu") and resolve_device("auto") == ("cpu", "cpu")


@pytest.mark.parametrize("attn, needle", [("flash_attention_2", "needs a CUDA GPU"), ("magic", "Unknown attention")])
def test_attention_choices_are_checked(attn, needle):
    from docqa.errors import ConfigError
    from docqa.generators.hf import resolve_attn

    with pytest.raises(ConfigError, match=needle):
        resolve_attn(attn, "cpu")
    assert resolve_attn("eager", "cpu") == "eager" and resolve_attn(None, "cpu") is None


def test_eager_attention_gives_the_same_answers(tmp_path):
    folder = tiny_llama.build(tmp_path / "tiny-eager", window=WINDOW)
    cfg = dict(model=str(folder), device="cpu", dtype="float32")
    sdpa = TransformersGenerator("t", str(folder), GeneratorConfig(**cfg))
    eager = TransformersGenerator("t", str(folder), GeneratorConfig(**cfg, attn="eager"))
    assert eager.model.config._attn_implementation == "eager"
    ids = _ids(40, seed=5)
    assert eager.generate(ids, 8).text == sdpa.generate(ids, 8).text


def test_a_model_in_memory_without_a_tokenizer_takes_token_ids(gen):
    from docqa.errors import ConfigError

    wrapped = TransformersGenerator.from_model(gen.model, None)
    ids = _ids(30, seed=6)
    out = wrapped.generate(ids, 6)
    assert gen.decode([int(t) for t in out.text.split()]) == gen.generate(ids, 6).text
    with pytest.raises(ConfigError, match="no tokenizer: pass token ids"):
        wrapped.generate("w1 w2", 2)


def test_the_gpu_benchmark_runs_with_only_torch_and_transformers(tmp_path):
    """benchmarks/gpu.py must run on the GPU machine, which has no faiss, llama-index, pydantic nor openai."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    absent = ('faiss', 'llama_index', 'sentence_transformers', 'pydantic', 'openai')
    script = ("import sys, runpy\n"
              "class Block:\n"
              "    def find_spec(self, name, path=None, target=None):\n"
              f"        if name.split('.')[0] in {absent!r}:\n"
              "            raise ImportError('blocked ' + name)\n"
              "sys.meta_path.insert(0, Block())\n"
              f"sys.argv = ['gpu.py', '--smoke', '--skip-hf', '--decode-tokens', '4', '--batch', '2', '--out', "
              f"{str(tmp_path / 'gpu.json')!r}]\n"
              f"runpy.run_path({str(root / 'benchmarks' / 'gpu.py')!r}, run_name='__main__')\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads((tmp_path / "gpu.json").read_text())
    assert got["prefill"] and {r["who"] for r in got["decode"]} >= {"docqa eager+sdpa", "docqa graph+grouped"}
    assert not [r for r in got["prefill"] + got["decode"] if "error" in r]


@pytest.mark.parametrize("out, n, want", [
    ([], 3, []), ([5], 3, []), ([1, 2, 1], 3, []), ([1, 2, 3, 1, 2], 3, [3]), ([7, 7, 7], 2, [7]),
    ([1, 2, 1, 2, 1], 2, [2]), ([1, 2, 3], 0, []), ([4, 5, 4], 1, [4, 5]),
])
def test_banned_next_forbids_completing_a_repeated_ngram(out, n, want):
    from docqa.generators.base import banned_next

    assert banned_next(out, n) == want


@pytest.mark.parametrize("model, want", [
    ("qwen2.5-coder-1.5b", 0), ("llama.cpp:qwen2.5-coder-1.5b", 0), ("transformers:qwen2.5-coder-1.5b", 0),
    ("smollm2", 4), ("qwen2.5-coder-0.5b", 4), ("/some/own/model.gguf", 4), ("all-minilm-l6-v2", 4),
])
def test_the_no_repeat_ban_is_the_models_own_unless_set(model, want):
    from docqa.errors import ConfigError
    from docqa.generators import with_model_defaults
    from docqa.generators.base import DEFAULT_NO_REPEAT_NGRAM, banned_next

    assert with_model_defaults(GeneratorConfig(model=model)).no_repeat_ngram == want
    assert with_model_defaults(GeneratorConfig(model=model, no_repeat_ngram=3)).no_repeat_ngram == 3
    assert GeneratorConfig().no_repeat_ngram is None  # left to the model unless the user sets it
    with pytest.raises(ConfigError, match="--no-repeat-ngram"):
        with_model_defaults(GeneratorConfig(model=model, no_repeat_ngram=-1))
    assert banned_next([1, 2, 3, 1, 2, 3, 1, 2], None) == banned_next([1, 2, 3, 1, 2, 3, 1, 2],
                                                                       DEFAULT_NO_REPEAT_NGRAM) == [3]


@pytest.mark.parametrize("n", [2, 3])
def test_greedy_answers_never_repeat_an_ngram(tmp_path, n):
    folder = tiny_llama.build(tmp_path / f"tiny-nr{n}", window=WINDOW)
    free = TransformersGenerator("t", str(folder), GeneratorConfig(model=str(folder), device="cpu",
                                                                   no_repeat_ngram=0))
    ctl = TransformersGenerator("t", str(folder), GeneratorConfig(model=str(folder), device="cpu",
                                                                  no_repeat_ngram=n))
    repeated = 0
    for seed in range(6):
        ids = _ids(20, seed=seed)
        a = ctl.encode(ctl.generate(ids, 40).text)
        grams = [tuple(a[i:i + n]) for i in range(len(a) - n + 1)]
        assert len(grams) == len(set(grams))
        b = free.encode(free.generate(ids, 40).text)
        repeated += len(b) - n + 1 - len({tuple(b[i:i + n]) for i in range(len(b) - n + 1)})
    assert repeated > 0  # the random model does loop without the control: the test can fail


def test_the_score_of_a_continuation_is_its_log_probability_and_leaves_the_answer_unchanged(gen):
    ids = _ids(30, seed=8)
    text = "w5 w6 w7"
    out = gen.generate(ids, 6, score=text)
    cont = gen.encode(text)
    with torch.inference_mode():
        logits = gen.model(input_ids=torch.tensor([ids + cont], device=gen.device)).logits[0].float()
    lp = torch.log_softmax(logits[len(ids) - 1:-1], -1).gather(1, torch.tensor(cont, device=gen.device)[:, None])
    lp = lp.sum().item()
    assert out.score_logprob == pytest.approx(lp, abs=1e-3)
    assert out.text == gen.generate(ids, 6).text  # scoring does not disturb the cache the answer is decoded from
    batch = gen.generate_batch([ids, _ids(20, seed=9)], 6, score=text)
    assert batch[0].score_logprob == pytest.approx(lp, abs=1e-3) and batch[0].text == out.text


def test_a_bf16_prefill_takes_its_logits_from_the_fp32_head(tmp_path, monkeypatch):
    # bf16 prefill (where the CPU probe says bf16 matmuls win) must not decide the first answer token by bf16
    # rounding: logits of ~15 come in steps of 1/16 there, so near-ties (a choice letter, a refusal's probability)
    # went to whichever token the rounding favoured. The head runs in fp32 on the bf16 body's last hidden state.
    from docqa.generators.hf import PREFILL_MIN_TOKENS
    from docqa.kv_cache import new_cache

    monkeypatch.delenv("DOCQA_NO_CPU_PROBE", raising=False)
    monkeypatch.setattr("docqa.generators.dtypes.cpu_probe", lambda refresh=False: {"bf16_speedup": 5.0})
    folder = tiny_llama.build(tmp_path, window=WINDOW)
    g = TransformersGenerator("tiny", str(folder), GeneratorConfig(model=str(folder), device="cpu"))
    assert g.dtypes.split and g._prefill_model is not g.model  # bf16 prefill, fp32 decoding
    ids = _ids(PREFILL_MIN_TOKENS + 8)
    with torch.inference_mode():
        g._apply_rope(g.plain_plan(len(ids) + 4))
        logits = g._prefill(ids, new_cache(g.model.config, expected=len(ids), dtype=g.model.dtype), None)
        body = g._prefill_model.base_model(input_ids=torch.tensor([ids])).last_hidden_state[0, -1]
    assert logits.dtype == torch.float32
    assert not torch.equal(logits, logits.bfloat16().float())  # not bf16 values
    torch.testing.assert_close(logits, g.model.lm_head(body.float()), rtol=0, atol=1e-5)
    assert g.model.lm_head.weight.dtype == torch.float32  # the fp32 model's own head, shared, unchanged
    # The copy is built weight by weight (no fp32 deepcopy first: 14.8 GB peak for the 1.5 B reader, now 10.9):
    # every weight is the fp32 one rounded to bf16, in its own storage; the fp32 model is untouched.
    low, high = dict(g._prefill_model.named_parameters()), dict(g.model.named_parameters())
    body = {k: v for k, v in low.items() if not k.startswith("lm_head")}
    assert body and set(body) <= set(high)
    for k, w in body.items():
        assert w.dtype == torch.bfloat16 and high[k].dtype == torch.float32
        assert torch.equal(w, high[k].detach().to(torch.bfloat16)) and w.data_ptr() != high[k].data_ptr()


def test_prefill_steps_per_device(gen, monkeypatch):
    """One pass where the activations fit (a quarter of the RAM available on CPU, half the GPU's free memory), else as
    many tokens as fit, never fewer than 2048; eager attention stays chunked (measured: see memory.prefill_step)."""
    from docqa.generators import memory

    cfg = gen.model.config
    assert gen.prefill_step(100_000) == 48  # the fixture's own setting wins
    monkeypatch.setattr(gen.config, "prefill_chunk", None)
    size = torch.empty(0, dtype=gen.dtypes.prefill).element_size()  # activations in the prefill dtype
    per_token = (3 * cfg.intermediate_size + 8 * cfg.hidden_size) * size
    monkeypatch.setattr(gen, "device", "cpu")
    monkeypatch.setattr(memory, "available_memory", lambda: 4 * per_token * 40_000)
    assert gen.prefill_step(30_000) == 30_000  # fits: one pass
    assert gen.prefill_step(80_000) == 40_000  # a quarter of the available memory's worth
    monkeypatch.setattr(memory, "available_memory", lambda: 0)
    assert gen.prefill_step(80_000) == memory.CPU_PREFILL_CHUNK  # never below 2048
    monkeypatch.setattr(gen, "device", "cuda:0")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2 * per_token * 50_000, 0))
    assert gen.prefill_step(30_000) == 30_000
    assert gen.prefill_step(80_000) == 50_000  # half the free memory's worth
    monkeypatch.setattr(cfg, "_attn_implementation", "eager")
    assert gen.prefill_step(30_000) == memory.CPU_PREFILL_CHUNK


def test_a_one_pass_prefill_reports_progress_layer_by_layer(gen, monkeypatch):
    monkeypatch.setattr(gen.config, "prefill_chunk", 4096)  # one forward for the whole prompt
    seen = []
    n = 1500
    gen.prefill_prefix(_ids(n), plan_for("yarn", gen.rope_model(), n + 100), progress=lambda d, t: seen.append((d, t)))
    layers = len(gen._runner(n)[1].layers)
    assert layers >= 2 and seen == [(n * (i + 1) // layers, n) for i in range(layers)] + [(n, n)]
    seen.clear()
    gen.prefill_prefix(_ids(n), plan_for("yarn", gen.rope_model(), n + 100))  # no callback: no hooks left behind
    assert not seen and all(not layer._forward_hooks for layer in gen._runner(n)[1].layers)


def test_an_answer_streams_token_by_token_and_ends_as_returned(gen):
    prefix, suffix = _ids(60, seed=7), _ids(8, seed=8)
    state = gen.prefill_prefix(prefix, plan_for("none", gen.rope_model(), 100))
    for kw in ({"prompt": prefix + suffix}, {"prompt": suffix, "prefix": state}):
        plain = gen.generate(max_new_tokens=12, **kw)
        texts: list[str] = []
        out = gen.generate(max_new_tokens=12, on_text=texts.append, **kw)
        assert out.text == plain.text and out.completion_tokens == plain.completion_tokens  # streaming changes nothing
        assert texts and texts[-1] == out.text
        assert all(b.startswith(a) and len(b) > len(a) for a, b in zip(texts, texts[1:]))
