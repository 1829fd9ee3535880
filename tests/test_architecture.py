"""The network matches the write-up's table and survives a save/load round trip."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

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
