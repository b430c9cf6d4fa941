"""A llama.cpp model's long prompts prefilled by transformers in bf16 and decoded by llama.cpp from the handed-over
cache (docqa/generators/prefill_assist.py, llamacpp_state.py), on the embedded SmolLM2 (llama architecture, so the
key layout's interleaving is exercised): the state format round-trips byte for byte, answers match llama.cpp's own
prefill, a cache that disagrees is never used, and the choice is made as documented."""

from __future__ import annotations

import dataclasses
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from docqa.errors import ConfigError, ModelLoadError
from docqa.generators import GeneratorConfig, llamacpp_context, prefill_assist, with_model_defaults
from docqa.generators.llamacpp import LlamaCppGenerator
from docqa.generators.llamacpp_state import build_state, layout_of, parse_state

DOC = ("The probation period for new employees is 90 days. Employees may work remotely up to three days a week. "
       "The nightly hotel cap is 220 US dollars in most cities. Expense reports are due within 30 days. ") * 14


@pytest.fixture(scope="module", autouse=True)
def rates_file(tmp_path_factory):
    """Measured prefill rates go to a file of this module's, not the machine's cache."""
    path = tmp_path_factory.mktemp("rates") / "prefill_rates.json"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(prefill_assist, "_rates_path", lambda: path)
        yield path


def _gen(prefill: str) -> LlamaCppGenerator:
    return LlamaCppGenerator("llama.cpp:smollm2", "smollm2", GeneratorConfig(model="llama.cpp:smollm2", threads=2,
                                                                            prefill=prefill, no_repeat_ngram=0))


@pytest.fixture(scope="module")
def own() -> LlamaCppGenerator:
    return _gen("llama.cpp")


@pytest.fixture(scope="module")
def handed() -> LlamaCppGenerator:
    return _gen("transformers")


def _ids(gen, question: str) -> list[int]:
    ids = gen.encode(gen.chat("Answer from the document in a few words.", f"Document:\n{DOC}\n\nQuestion: {question}"))
    assert len(ids) >= prefill_assist.MIN_TOKENS
    return ids


@pytest.fixture(scope="module")
def state_blobs(own) -> dict[bool, bytes]:
    """llama.cpp's own sequence state after 40 tokens, with V transposed (flash attention off) and not (on)."""
    out = {}
    ids = _ids(own, "x")[:40]
    for flash in (False, True):
        old = llamacpp_context.FLASH_ATTN
        llamacpp_context.FLASH_ATTN = flash
        try:
            own._kv.create(((0, 0.0, 0.0, 0), llamacpp_context.MIN_CTX))
            own._kv.eval(ids)
            out[flash] = own._kv.state()
        finally:
            llamacpp_context.FLASH_ATTN = old
            own._kv.create(((0, 0.0, 0.0, 0), llamacpp_context.MIN_CTX))
    return out


def test_llama_cpp_states_round_trip_byte_for_byte_in_both_v_layouts(state_blobs):
    for flash, blob in state_blobs.items():
        state = parse_state(blob)
        assert state.layout.v_trans is (not flash)
        assert state.layout.layers == 30 and state.layout.k_dim == 3 * 64  # SmolLM2: 30 layers, 3 KV heads of 64
        assert list(state.positions) == list(range(40))
        assert layout_of(blob) == state.layout
        assert bytes(build_state(state.layout, state.keys, state.values)) == blob


def test_a_state_cut_short_or_grown_is_refused_in_one_error(state_blobs):
    blob = state_blobs[False]
    for bad in (blob[:-1], blob[: len(blob) // 2], blob[:10], blob + b"\0"):
        with pytest.raises(ModelLoadError):
            parse_state(bad)
    other_type = bytearray(blob)
    first_k_type = 16 + 40 * 12 + 8
    other_type[first_k_type:first_k_type + 4] = struct.pack("<i", 8)  # q8_0 keys: not what docqa writes
    with pytest.raises(ModelLoadError):
        parse_state(bytes(other_type))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_parse_or_fail_as_model_load_errors(data):
    try:
        parse_state(data)
    except ModelLoadError:
        pass


def test_handed_over_prefill_answers_as_llama_cpp_does(own, handed):
    for question in ("How long is the probation period?", "What is the nightly hotel cap?"):
        ids = _ids(own, question)
        mine = own.generate(ids, 16, stop=("\n",))
        theirs = handed.generate(ids, 16, stop=("\n",))
        assert theirs.text == mine.text and theirs.prompt_tokens == mine.prompt_tokens == len(ids)
    assert handed._handover.assist._gen is not None  # transformers really did prefill
    assert handed._handover.checked and "transformers in bf16" in handed.dtypes_reason
    # A document prefix handed over serves a question llama.cpp appends, as llama.cpp's own prefix does.
    ids = _ids(own, "How long is the probation period?")
    n = len(ids) - 12
    plan = own.plain_plan(len(ids) + 32)
    a = own.generate(ids[n:], 16, prefix=own.prefill_prefix(ids[:n], plan), stop=("\n",))
    b = handed.generate(ids[n:], 16, prefix=handed.prefill_prefix(ids[:n], plan), stop=("\n",))
    assert a.text == b.text and b.cached_tokens == n


def test_short_prompts_stay_on_llama_cpp(handed, monkeypatch):
    calls = []
    real = handed._handover.assist.prefilled
    monkeypatch.setattr(handed._handover.assist, "prefilled", lambda *a, **k: calls.append(len(a[0])) or real(*a, **k))
    handed.generate(handed.encode(handed.chat("S", "Say hi.")), 4)
    assert calls == []
    ids = _ids(handed, "How long is the probation period?")
    handed.generate(ids, 4)
    assert calls[-1] == len(ids) - 1  # a long prompt does go through it (llama.cpp evaluates its last token)


def test_the_cache_is_handed_over_layer_by_layer_each_released_once_converted(handed, state_blobs):
    """The state is built from transformers' cache one layer at a time, and each layer's tensors leave the cache
    before the next is converted (the keys and values are held about once, not three times); the bytes are those of
    the all-at-once conversion."""
    ids = _ids(handed, "What is the nightly hotel cap?")
    layout = parse_state(state_blobs[False]).layout
    cache = handed._handover.assist.prefilled(ids)
    whole = build_state(layout, *cache.head(cache.n))

    def watched(arrays, names):
        for i, a in enumerate(arrays):
            assert all(getattr(cache._layers[i], name, None) is None for name in names), i
            if i + 1 < len(cache._layers):
                assert getattr(cache._layers[i + 1], names[0]) is not None  # the next one not yet
            yield a

    streamed = build_state(layout, watched(cache.keys(), ("keys", "_k")), watched(cache.values(), ("values", "_v")),
                           n=cache.n)
    assert bytes(streamed) == bytes(whole)
    state = parse_state(bytes(whole))
    with pytest.raises(ModelLoadError, match="layers of keys"):
        build_state(layout, iter(state.keys[:-1]), iter(state.values), n=len(ids))
    with pytest.raises(ModelLoadError, match="shape"):
        build_state(layout, iter([k[:-1] for k in state.keys]), iter(state.values), n=len(ids))


def test_a_plan_past_the_window_is_handed_over_under_the_same_rope(own, handed):
    ids = _ids(own, "How long is the probation period?")
    stretched = dataclasses.replace(own.plain_plan(2 * len(ids)), method="linear", factor=2.0)
    rope = own._rope_settings(stretched)
    mine = own.generate(ids, 16, rope=stretched, stop=("\n",))
    theirs = handed.generate(ids, 16, rope=stretched, stop=("\n",))
    assert rope in handed._handover.checked  # compared under this rope, and handed over
    assert theirs.text == mine.text and theirs.rope == stretched


def test_a_cache_that_disagrees_with_llama_cpp_is_never_used(own, monkeypatch):
    # Without the interleaving, SmolLM2's keys come out in transformers' rotate-half order: the check must see it.
    monkeypatch.setattr(prefill_assist, "INTERLEAVED_ROPE", frozenset())
    gen = _gen("transformers")
    ids = _ids(gen, "How long is the probation period?")
    out = gen.generate(ids, 16, stop=("\n",))
    assert gen._handover.assist is None and "differs from llama.cpp's" in gen.dtypes_reason
    assert out.text == own.generate(ids, 16, stop=("\n",)).text


def test_no_room_for_the_bf16_weights_means_llama_cpp_prefills(monkeypatch):
    gen = _gen("transformers")
    monkeypatch.setattr("docqa.generators.memory.available_memory", lambda unknown=0: 1 << 20)
    gen.generate(_ids(gen, "How long is the probation period?"), 2)
    assert gen._handover.assist is not None and gen._handover.assist._gen is None  # never loaded


def test_the_choice_follows_the_option_the_environment_and_the_measured_probe(monkeypatch):
    monkeypatch.delenv("DOCQA_PREFILL", raising=False)
    monkeypatch.delenv("DOCQA_NO_CPU_PROBE", raising=False)
    assert not prefill_assist.choose(GeneratorConfig(prefill="llama.cpp")).assist
    assert prefill_assist.choose(GeneratorConfig(prefill="transformers")).assist
    monkeypatch.setattr("docqa.generators.dtypes.cpu_probe", lambda: {"bf16_speedup": 1.1})
    slow = prefill_assist.choose(GeneratorConfig())
    assert not slow.assist and "1.1x" in slow.reason
    monkeypatch.setattr("docqa.generators.dtypes.cpu_probe", lambda: {"bf16_speedup": 4.6})
    assert prefill_assist.choose(GeneratorConfig()).assist
    monkeypatch.setenv("DOCQA_PREFILL", "llama.cpp")
    assert not prefill_assist.choose(GeneratorConfig()).assist
    for bad in ("bf16", ""):
        with pytest.raises(ConfigError, match="--prefill"):
            with_model_defaults(GeneratorConfig(prefill=bad or " "))
    monkeypatch.setenv("DOCQA_PREFILL", "bf16")
    with pytest.raises(ConfigError, match="DOCQA_PREFILL=bf16"):
        prefill_assist.choose(GeneratorConfig())


def test_the_disagreement_measure():
    a = [np.ones((4, 8), dtype=np.float16)]
    assert prefill_assist.disagreement(a, a) == 0.0
    assert prefill_assist.disagreement([2 * a[0]], a) == pytest.approx(1.0)


def test_the_first_handover_measures_both_backends_and_the_rates_decide_auto(rates_file, monkeypatch):
    import json

    monkeypatch.delenv("DOCQA_NO_CPU_PROBE", raising=False)  # it would turn the timing off
    gen = _gen("transformers")
    gen.generate(_ids(gen, "How long is the probation period?"), 2)
    key = gen._handover.rates_key
    rates = json.loads(rates_file.read_text())[key]
    assert rates["llama.cpp"] > 0 and rates["transformers"] > 0 and rates["tokens"] == prefill_assist.RATE_TOKENS
    # auto follows the measured rates: slower transformers means no handover, nothing converted or loaded.
    monkeypatch.delenv("DOCQA_PREFILL", raising=False)
    monkeypatch.setattr("docqa.generators.dtypes.cpu_probe", lambda: {"bf16_speedup": 4.0})
    prefill_assist.write_rates(key, {"llama.cpp": 100.0, "transformers": 110.0})
    slow = _gen("auto")
    assert slow._handover.assist is None and "measured here: transformers prefills 110" in slow.dtypes_reason
    prefill_assist.write_rates(key, {"llama.cpp": 100.0, "transformers": 500.0})
    assert _gen("auto")._handover.assist is not None
    # Forced, it hands over whatever the rates say.
    prefill_assist.write_rates(key, {"llama.cpp": 100.0, "transformers": 10.0})
    assert _gen("transformers")._handover.assist is not None
    assert prefill_assist.read_rates("another machine") is None


def test_a_one_question_process_hands_over_only_a_prompt_that_earns_back_the_load(monkeypatch):
    """one_shot: the transformers side loads for a prompt only where the prefill seconds it saves at the measured
    rates exceed its measured load (setup_s); a process of many questions loads it once for all of them."""
    from docqa.generators.llamacpp_gguf import gguf_path

    monkeypatch.delenv("DOCQA_NO_CPU_PROBE", raising=False)
    monkeypatch.delenv("DOCQA_PREFILL", raising=False)
    monkeypatch.setattr("docqa.generators.dtypes.cpu_probe", lambda: {"bf16_speedup": 4.0})
    key = prefill_assist.rates_key(gguf_path("smollm2"), 2)
    probe = _gen("llama.cpp")
    ids = _ids(probe, "How long is the probation period?")
    want = probe.generate(ids, 8, stop=("\n",)).text
    saved = (len(ids) - 1) * (1 / 100 - 1 / 500)  # llama.cpp evaluates the last token itself
    for setup_s, one_shot, handed in ((2 * saved, True, False), (saved / 2, True, True), (2 * saved, False, True)):
        prefill_assist.write_rates(key, {"llama.cpp": 100.0, "transformers": 500.0, "tokens": 512,
                                         "setup_s": setup_s})
        gen = LlamaCppGenerator("llama.cpp:smollm2", "smollm2", GeneratorConfig(
            model="llama.cpp:smollm2", threads=2, no_repeat_ngram=0, one_shot=one_shot))
        assert gen._handover.assist is not None and not gen._handover.assist.loaded
        assert gen.generate(ids, 8, stop=("\n",)).text == want
        assert gen._handover.assist.loaded is handed, (setup_s, one_shot)
    forced = _gen("transformers")  # asked for, it hands over whatever it costs
    forced = LlamaCppGenerator("llama.cpp:smollm2", "smollm2", dataclasses.replace(forced.config, one_shot=True))
    forced.generate(ids, 2)
    assert forced._handover.assist.loaded


def test_the_first_load_in_a_process_without_torch_is_measured_for_one_question_processes(tmp_path):
    """setup_s is what loading the transformers side costs a process that had no torch yet: recorded at such a load,
    beside the rates, once. A fresh process, since this one has torch already; and the generator's load itself
    imports no torch where the probe and the rates are known."""
    import json
    import os
    import subprocess
    import sys

    from docqa.generators.gguf import materialize_gguf
    from docqa.generators.llamacpp_gguf import gguf_path

    materialize_gguf(gguf_path("smollm2"), "bfloat16")  # converted here: the child's load finds it, imports nothing
    rates = tmp_path / "prefill_rates.json"
    code = f"""
import json, sys
from pathlib import Path
from docqa.generators import GeneratorConfig, prefill_assist, dtypes
from docqa.generators.llamacpp import LlamaCppGenerator
from docqa.generators.llamacpp_gguf import gguf_path
prefill_assist._rates_path = lambda: Path({str(rates)!r})
dtypes.cpu_probe = lambda refresh=False: {{"bf16_speedup": 4.0}}
key = prefill_assist.rates_key(gguf_path("smollm2"), 2)
prefill_assist.write_rates(key, {{"llama.cpp": 100.0, "transformers": 500.0, "tokens": 512}})
gen = LlamaCppGenerator("llama.cpp:smollm2", "smollm2", GeneratorConfig(model="llama.cpp:smollm2", threads=2,
                        no_repeat_ngram=0, one_shot=True))
loaded_torch = "torch" in sys.modules
doc = {DOC!r}
gen.generate(gen.encode(gen.chat("Answer in a few words.", "Document:\\n" + doc + "\\n\\nQuestion: Hotel cap?")), 2)
print(json.dumps({{"torch_at_load": loaded_torch, "handed": gen._handover.assist.loaded,
                  "rates": prefill_assist.read_rates(key)}}))
"""
    env = {k: v for k, v in os.environ.items() if k not in ("DOCQA_NO_CPU_PROBE", "DOCQA_PREFILL")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["torch_at_load"] is False and got["handed"] is True  # no setup_s yet: it hands over, and measures
    assert got["rates"]["setup_s"] > 0 and got["rates"]["transformers"] == 500.0
    assert json.loads(rates.read_text())  # written where the rates live
