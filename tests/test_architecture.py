"""The network matches the write-up's table and survives a save/load round trip."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from benchmarks.common import values_and_gradients  # noqa: E402
from model.architecture import LAYER_PARAMETERS, PARAMETER_COUNT, ResidualBlock, build_model  # noqa: E402


@pytest.fixture(scope="module")
def net() -> "keras.Model":
    return build_model()


def test_total_parameters_match_the_writeup(net: "keras.Model") -> None:
    assert net.count_params() == PARAMETER_COUNT == 972_739


@pytest.mark.parametrize("name,count", sorted(LAYER_PARAMETERS.items()))
def test_layer_parameters_match_the_writeup_table(net: "keras.Model", name: str, count: int) -> None:
    layer = net.get_layer(name)
    assert layer.count_params() == count
    expected_type = {"residual_block": "ResidualBlock", "residual_block_1": "ResidualBlock"}.get(name)
    if expected_type:
        assert type(layer).__name__ == expected_type


def test_building_twice_keeps_the_published_names() -> None:
    build_model()
    again = build_model()
    assert {layer.name for layer in again.layers} >= set(LAYER_PARAMETERS)


@pytest.mark.parametrize("shape", [(1, 16, 16, 3), (2, 24, 40, 3), (1, 64, 32, 3)])
def test_any_size_divisible_by_four_keeps_its_shape(net: "keras.Model", shape: tuple[int, ...]) -> None:
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    assert net(x).shape == shape


def test_fixed_input_not_divisible_by_four_is_refused() -> None:
    with pytest.raises(ValueError, match="height 30 is not divisible by 4"):
        build_model((30, 32, 3))


def test_save_and_load_give_identical_outputs(net: "keras.Model", tmp_path) -> None:
    x = np.random.default_rng(1).random((2, 32, 32, 3), dtype=np.float32)
    path = tmp_path / "m.keras"
    net.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    assert isinstance(loaded.get_layer("residual_block"), ResidualBlock)
    np.testing.assert_array_equal(np.asarray(net(x)), np.asarray(loaded(x)))


def test_residual_block_config_round_trip() -> None:
    block = ResidualBlock(32, name="rb")
    clone = ResidualBlock.from_config(block.get_config())
    assert clone.filters == 32 and clone.name == "rb"


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_keeps_the_table_and_a_float32_output(precision: str) -> None:
    mixed = build_model(precision=precision)
    assert mixed.count_params() == PARAMETER_COUNT
    assert {name: mixed.get_layer(name).count_params() for name in LAYER_PARAMETERS} == LAYER_PARAMETERS
    compute = mixed.get_layer("conv2d_2").compute_dtype
    assert compute == precision.removeprefix("mixed_")  # the body computes in the low precision
    assert mixed.get_layer("conv2d_9").compute_dtype == "float32"  # the output layer does not
    x = np.random.default_rng(2).random((1, 16, 16, 3), dtype=np.float32)
    assert keras.backend.standardize_dtype(mixed(x).dtype) == "float32"
    assert keras.config.dtype_policy().name == "float32"  # the global policy is left as it was


# --- 16-bit convolutions on a CPU without native 16-bit arithmetic ---------------------------

_AVX2 = frozenset({"avx", "avx2", "fma"})  # an AVX2-only EPYC's 16-bit-relevant flags: none native


def _conv_layer(kind: str, dtype: Any, native: bool, bias: bool = True) -> "keras.layers.Layer":
    """One of the network's convolution classes (stock Keras' when ``native``), built on 32 channels."""
    import model.architecture as arch

    cls = {"conv": (arch._Conv2D, keras.layers.Conv2D),
           "transpose": (arch._Conv2DTranspose, keras.layers.Conv2DTranspose)}[kind][native]
    layer = cls(16, 3, strides=2 if kind == "transpose" else 1, padding="same", use_bias=bias, dtype=dtype, name=kind)
    layer.build((None, 8, 8, 32))
    rng = np.random.default_rng(3)
    layer.set_weights([(rng.standard_normal(w.shape) * 0.1).astype(np.float32) for w in layer.get_weights()])
    return layer


def _values_and_gradients(layer: "keras.layers.Layer", x: Any, upstream: Any) -> list[np.ndarray]:
    """:func:`benchmarks.common.values_and_gradients` as numpy arrays."""
    return [np.asarray(v) for v in values_and_gradients(layer, x, upstream)]


@pytest.mark.parametrize("kind", ["conv", "transpose"])
@pytest.mark.parametrize("dtype,flag", [("bfloat16", "avx512_bf16"), ("float16", "avx512_fp16")])
def test_16_bit_convolutions_round_once_where_the_cpu_emulates_16_bit(kind: str, dtype: str, flag: str,
                                                                     monkeypatch) -> None:
    """Native 16-bit hardware sums 16-bit products in float32 and rounds once; the network's
    convolutions do the same on a CPU without it: the convolution and both gradients equal the
    exact result (float64, on the same 16-bit values) rounded once to 16 bits, but where the
    float32 sum falls on the other side of a rounding boundary (then one 16-bit step off); the
    bias is then added in 16 bits, as Keras adds it. (TensorFlow's own bf16 kernels on an
    AVX2-only CPU: 5-16% of the gradients equal, 1-3% off on average.)"""
    import tensorflow as tf

    import model.runtime

    monkeypatch.setattr(model.runtime, "_cpu_flags", lambda: _AVX2)
    assert model.runtime.accumulates_in_float32(dtype)
    assert not model.runtime.accumulates_in_float32(dtype, {flag})
    assert not model.runtime.accumulates_in_float32("float32")
    rng = np.random.default_rng(4)
    x = tf.cast(rng.standard_normal((2, 8, 8, 32)), dtype)
    layer = _conv_layer(kind, f"mixed_{dtype}", native=False)
    upstream = tf.cast(rng.standard_normal(layer.compute_output_shape((2, 8, 8, 32))), dtype)
    y, dx, dk = _values_and_gradients(layer, x, upstream)
    kernel, bias = (tf.cast(w, dtype) for w in layer.get_weights())
    exact = _conv_layer(kind, "float64", native=True, bias=False)  # Keras' own, on the 16-bit kernel
    exact.set_weights([np.asarray(tf.cast(kernel, tf.float64))])
    ey, edx, edk = _values_and_gradients(exact, tf.cast(x, tf.float64), upstream)
    rounded = (tf.cast(ey, dtype) + bias, tf.cast(edx, dtype), tf.cast(edk, dtype))
    once = [np.asarray(tf.cast(v, tf.float64)) for v in rounded]
    step = {"bfloat16": 2.0**-7, "float16": 2.0**-10}[dtype]  # the 16-bit spacing, relative
    for name, got, want in zip(("output", "input gradient", "kernel gradient"), (y, dx, dk), once):
        got = got.astype(np.float64)
        agree = float(np.mean(got == want))
        assert agree > 0.995, f"{name}: {agree:.4f} of the values equal the once-rounded exact result"
        # One step, plus float32's own error where terms of size ~max cancel to a tiny sum.
        off = np.abs(got - want) - step * np.abs(want) - 2.0**-16 * np.max(np.abs(want))
        assert np.all(off <= 0), f"{name}: a value is off by more than one 16-bit step"


@pytest.mark.parametrize("kind", ["conv", "transpose"])
def test_a_cpu_with_native_bf16_runs_tensorflows_own_kernels(kind: str, monkeypatch) -> None:
    """Where the CPU has native bf16 nothing is rerouted: the network's layers compute exactly
    what Keras' own do (same values and gradients, bit for bit)."""
    import tensorflow as tf

    import model.runtime

    monkeypatch.setattr(model.runtime, "_cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    rng = np.random.default_rng(5)
    x = tf.cast(rng.standard_normal((2, 8, 8, 32)), "bfloat16")
    ours, stock = (_conv_layer(kind, "mixed_bfloat16", native=n) for n in (False, True))
    upstream = tf.cast(rng.standard_normal(ours.compute_output_shape((2, 8, 8, 32))), "bfloat16")
    for got, want in zip(_values_and_gradients(ours, x, upstream), _values_and_gradients(stock, x, upstream)):
        np.testing.assert_array_equal(got, want)
