"""KV caches kept between questions are budgeted in bytes from the model (layers × 2 × KV heads × head dim × dtype)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

import docqa
from docqa.errors import ConfigError
from docqa.kv_budget import KVPool, parse_bytes
from tests.conftest import FAKE_EMBEDDER, FAKE_MODEL


@pytest.mark.parametrize("text, n", [("4GiB", 4 * 2**30), ("512MB", 512 * 10**6), ("1.5g", 1_500_000_000),
                                     ("0", 0), ("2048", 2048), (" 3 kib ", 3072), (123, 123)])
def test_sizes_parse(text, n):
    assert parse_bytes(text) == n


@pytest.mark.parametrize("bad", ["", "GiB", "4 parsecs", "-1", "1e9", "4GiB of ram"])
def test_bad_sizes_name_the_value_and_the_form(bad):
    with pytest.raises(ConfigError, match="not a size.*4GiB"):
        parse_bytes(bad)


@given(st.text(max_size=12))
def test_any_text_parses_or_is_one_config_error(text):
    try:
        assert parse_bytes(text) >= 0
    except ConfigError:
        pass


def test_pool_evicts_least_recently_used_first_and_accounts_bytes():
    pool = KVPool(100)
    assert pool.put("a", 1, 40) and pool.put("b", 2, 40)
    assert pool.get("a") == 1  # a is now the most recent
    assert pool.put("c", 3, 40)  # b leaves
    assert pool.keys() == ["a", "c"] and pool.used == 80
    assert not pool.put("huge", 4, 101) and pool.get("huge") is None and pool.used == 80
    assert not pool.put("d", 5, 30, evict=False) and pool.keys() == ["a", "c"]  # no room without evicting
    pool.discard(lambda k: k == "a")
    assert pool.keys() == ["c"] and pool.used == 40


@pytest.fixture
def idx(small_docs):
    docqa.ingest(small_docs, "t", embedder=FAKE_EMBEDDER, model=FAKE_MODEL)
    return docqa.open_index("t", model=FAKE_MODEL)


def test_long_context_keeps_prefixes_within_the_byte_budget(idx):
    gen = idx.corpus.generator()
    first = idx.ask("What is the hotel cap?", "lc")
    prefix_bytes = (first.tokens["prompt"] - first.details.get("question_tokens", 0)) * gen.kv_bytes_per_token()
    assert prefix_bytes > 0
    # Room for one prefix: a second plan evicts the first, so asking the first again prefills again.
    budget = int(1.5 * (first.tokens["cached"] or first.tokens["prompt"]) * gen.kv_bytes_per_token())
    idx.corpus.caches.clear()
    before = gen.prefills
    idx.ask("What is the hotel cap?", "lc", kv_budget=budget)
    idx.ask("What is the hotel cap?", "lc", kv_budget=budget, rope_factor=2.0)
    again = idx.ask("What is the hotel cap?", "lc", kv_budget=budget)
    assert gen.prefills - before == 3 and again.details["prefix"] == "prefilled"
    # With no budget nothing is kept; with plenty both stay.
    idx.corpus.caches.clear()
    idx.ask("What is the hotel cap?", "lc", kv_budget=0)
    assert idx.ask("What is the hotel cap?", "lc", kv_budget=0).details["prefix"] == "prefilled"
    idx.corpus.caches.clear()
    idx.ask("What is the hotel cap?", "lc", kv_budget="1GiB")
    idx.ask("What is the hotel cap?", "lc", kv_budget="1GiB", rope_factor=2.0)
    assert idx.ask("What is the hotel cap?", "lc", kv_budget="1GiB").details["prefix"] == "memory"


def test_a_bad_budget_is_refused_before_any_work(idx):
    with pytest.raises(ConfigError, match="--kv-budget 'lots'"):
        idx.ask("What is the hotel cap?", "lc", kv_budget="lots")


def test_kv_bytes_per_token_of_a_real_model(tmp_path):
    torch = pytest.importorskip("torch")
    from docqa.generators import GeneratorConfig, TransformersGenerator
    from tests import tiny_llama

    folder = tiny_llama.build(tmp_path / "tiny")
    gen = TransformersGenerator("tiny", str(folder), GeneratorConfig(model=str(folder), device="cpu",
                                                                       dtype="float32"))
    # 2 layers × (keys + values) × 2 KV heads × head dim 16 × 4 bytes
    assert gen.kv_bytes_per_token() == 2 * 2 * 2 * 16 * 4
    state = gen.prefill_prefix(list(range(3, 40)), gen.plain_plan(64))
    stored = sum(layer.keys.numel() * layer.keys.element_size() * 2 for layer in state.cache.layers)
    assert stored == 37 * gen.kv_bytes_per_token() and state.cache.layers[0].keys.dtype == torch.float32
