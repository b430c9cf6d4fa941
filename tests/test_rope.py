"""RoPE methods: formulas, identity within the window, and the per-request plan."""

import math

import numpy as np
import pytest

from docqa.rope import ROPE_METHODS, RopeModel, inv_freq_for, plan_for

SMOL = RopeModel(head_dim=64, rope_theta=100000.0, trained_window=8192)


def test_defaults_these_tests_rely_on():
    assert SMOL.head_dim == 64 and SMOL.rope_theta == 1e5 and SMOL.trained_window == 8192
    assert set(ROPE_METHODS.names()) == {"none", "linear", "ntk", "dynamic", "yarn"}


def _plain(base, d=64):
    return 1.0 / base ** (np.arange(0, d, 2) / d)


@pytest.mark.parametrize("method", ROPE_METHODS.names())
@pytest.mark.parametrize("length", [1, 2048, 8192])
def test_every_method_is_plain_rope_within_the_window(method, length):
    plan = plan_for(method, SMOL, length)
    assert plan.factor == 1.0 and plan.attention_factor == 1.0 and plan.base == SMOL.rope_theta
    inv, att = inv_freq_for(plan, SMOL)
    np.testing.assert_allclose(inv.numpy(), _plain(1e5), rtol=1e-6)
    assert att == 1.0


@pytest.mark.parametrize("method", ROPE_METHODS.names())
def test_every_method_has_the_shared_signature(method):
    inv, att = ROPE_METHODS.get(method)(SMOL, 2.0, 16384)
    assert tuple(inv.shape) == (32,) and isinstance(att, float) and att >= 1.0
    assert np.all(np.diff(inv.numpy()) < 0)  # frequencies decrease with dimension


def test_linear_divides_every_frequency_by_s():
    inv, _ = ROPE_METHODS.get("linear")(SMOL, 4.0, 32768)
    np.testing.assert_allclose(inv.numpy(), _plain(1e5) / 4.0, rtol=1e-6)


def test_ntk_raises_the_base_by_s_to_d_over_d_minus_2():
    inv, _ = ROPE_METHODS.get("ntk")(SMOL, 4.0, 32768)
    base = 1e5 * 4.0 ** (64 / 62)
    np.testing.assert_allclose(inv.numpy(), _plain(base), rtol=1e-5)
    assert inv[0] == pytest.approx(1.0)  # the highest frequency is untouched


@pytest.mark.parametrize("alpha, length", [(1.0, 16384), (1.0, 32768), (2.0, 16384)])
def test_dynamic_follows_emozilla(alpha, length):
    inv, _ = ROPE_METHODS.get("dynamic")(SMOL, alpha, length)
    scale = alpha * length / 8192 - (alpha - 1)
    np.testing.assert_allclose(inv.numpy(), _plain(1e5 * scale ** (64 / 62)), rtol=1e-5)


def test_yarn_keeps_high_frequencies_interpolates_low_and_scales_attention():
    s = 4.0
    inv, att = ROPE_METHODS.get("yarn")(SMOL, s, 32768)
    plain = _plain(1e5)
    # Independent reimplementation of YaRN's NTK-by-parts (Peng et al. 2023, eq. 17-19), β_fast=32, β_slow=1.
    d, b, L0 = 64, 1e5, 8192

    def dim_for(rotations):
        return d * math.log(L0 / (rotations * 2 * math.pi)) / (2 * math.log(b))

    low, high = max(math.floor(dim_for(32)), 0), min(math.ceil(dim_for(1)), d - 1)
    ramp = np.clip((np.arange(d // 2) - low) / (high - low), 0, 1)
    expected = plain / s * ramp + plain * (1 - ramp)
    np.testing.assert_allclose(inv.numpy(), expected, rtol=1e-5)
    assert inv[0] == pytest.approx(plain[0]) and inv[-1] == pytest.approx(plain[-1] / s)
    assert att == pytest.approx(0.1 * math.log(s) + 1.0)


def test_plan_sizes_the_factor_from_the_request_length():
    plan = plan_for("yarn", SMOL, 16384)
    assert plan.factor == 2.0 and plan.attention_factor == pytest.approx(0.1 * math.log(2) + 1)
    plan = plan_for("dynamic", SMOL, 24576)
    assert plan.factor == 3.0 and plan.base == pytest.approx(1e5 * 3 ** (64 / 62))
    assert plan_for("none", SMOL, 32768).factor == 1.0
    assert plan_for("linear", SMOL, 4096, factor=2.0).factor == 2.0  # an explicit factor applies as given


def test_dynamic_plan_round_trips_through_the_function():
    plan = plan_for("dynamic", SMOL, 20000)
    inv, _ = inv_freq_for(plan, SMOL)
    np.testing.assert_allclose(inv.numpy(), _plain(plan.base), rtol=1e-5)


def test_bad_factor_and_unknown_method():
    from docqa.errors import ConfigError, UnknownComponent

    with pytest.raises(ConfigError, match="must be ≥ 1.0"):
        plan_for("yarn", SMOL, 100, factor=0.5)
    with pytest.raises(UnknownComponent, match="Did you mean 'yarn'"):
        plan_for("yarm", SMOL, 100)


@pytest.mark.parametrize("spec, want", [("yarn", ("yarn", False)), ("YaRN@ALL", ("yarn", True)),
                                        ("pi@all", ("linear", True))])
def test_a_method_may_ask_to_stretch_every_layer_type(spec, want):
    from docqa.rope import parse_method

    assert parse_method(spec) == want


@pytest.mark.parametrize("spec", ["yarn@some", "warp@all", "@all"])
def test_a_bad_method_or_scope_is_one_config_error(spec):
    from docqa.errors import ConfigError
    from docqa.rope import parse_method

    with pytest.raises(ConfigError, match="rope"):
        parse_method(spec)


def test_a_request_past_what_an_explicit_factor_reaches_is_refused_in_one_line():
    from docqa.errors import ConfigError

    assert plan_for("yarn", SMOL, 2 * SMOL.trained_window, factor=2.0).factor == 2.0  # exactly its reach
    with pytest.raises(ConfigError, match=r"--rope-factor 2 stretches the 8,192-token window to 16,384 tokens; this "
                                          r"request needs 20,000\. Pass --rope-factor 2\.45 or more") as e:
        plan_for("linear", SMOL, 20_000, factor=2.0)
    assert "\n" not in str(e.value)
