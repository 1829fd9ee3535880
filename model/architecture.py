"""The write-up's U-Net / ResNet hybrid deblurring network (972,739 parameters).

Layer names and parameter counts match the write-up's table exactly; names are given
explicitly rather than left to Keras' per-session counters, so a model built after
another one (as in a sweep worker) still has the published names.
"""

from __future__ import annotations

from typing import Any, Callable

import keras
from keras import layers

from model.runtime import accumulates_in_float32

__all__ = ["build_model", "ResidualBlock", "PARAMETER_COUNT", "LAYER_PARAMETERS"]

PARAMETER_COUNT = 972_739

# The write-up's table: layer name -> parameter count.
LAYER_PARAMETERS: dict[str, int] = {
    "conv2d": 448,
    "conv2d_1": 11_008,
    "max_pooling2d": 0,
    "conv2d_2": 92_288,
    "max_pooling2d_1": 0,
    "residual_block": 333_184,
    "residual_block_1": 312_704,
    "conv2d_transpose": 147_584,
    "conv2d_transpose_1": 73_792,
    "conv2d_9": 1_731,
}


def _in_float32(op: Callable[[Any, Any], Any], inputs: Any, kernel: Any) -> Any:
    """``op(inputs, kernel)``; computed in float32 on their (exact) 16-bit values and rounded back
    once where :func:`model.runtime.accumulates_in_float32` says so: native 16-bit arithmetic."""
    dtype = keras.backend.standardize_dtype(inputs.dtype)
    if not accumulates_in_float32(dtype):
        return op(inputs, kernel)
    return keras.ops.cast(op(keras.ops.cast(inputs, "float32"), keras.ops.cast(kernel, "float32")), dtype)


@keras.saving.register_keras_serializable(package="sweeper", name="Conv2D")
class _Conv2D(layers.Conv2D):
    """``keras.layers.Conv2D``, its 16-bit convolutions accumulated in float32 on a CPU that
    emulates 16-bit floats (:func:`_in_float32`)."""

    def convolution_op(self, inputs: Any, kernel: Any) -> Any:
        return _in_float32(super().convolution_op, inputs, kernel)


@keras.saving.register_keras_serializable(package="sweeper", name="Conv2DTranspose")
class _Conv2DTranspose(layers.Conv2DTranspose):
    """``keras.layers.Conv2DTranspose``, its 16-bit convolutions accumulated in float32 on a CPU
    that emulates 16-bit floats (:func:`_in_float32`)."""

    def call(self, inputs: Any) -> Any:
        # Keras' own call, with the transposed convolution through _in_float32 (Keras offers
        # no convolution_op hook here, unlike Conv2D).
        outputs = _in_float32(self._transposed, inputs, self.kernel)
        if self.use_bias:
            last = self.data_format == "channels_last"
            shape = (1,) * (self.rank + 1) + (self.filters,) if last else (1, self.filters) + (1,) * self.rank
            outputs = keras.ops.add(outputs, keras.ops.reshape(self.bias, shape))
        return outputs if self.activation is None else self.activation(outputs)

    def _transposed(self, inputs: Any, kernel: Any) -> Any:
        return keras.ops.conv_transpose(inputs, kernel, strides=list(self.strides), padding=self.padding,
                                        output_padding=self.output_padding, dilation_rate=self.dilation_rate,
                                        data_format=self.data_format)


@keras.saving.register_keras_serializable(package="sweeper")
class ResidualBlock(layers.Layer):
    """conv3x3+BN, ReLU, conv3x3+BN, plus a 1x1 convolution shortcut, then ReLU.

    The shortcut is always a 1x1 convolution (even when channels already match): that is
    what the write-up's parameter counts imply (333,184 and 312,704).

    Args:
        filters: Output channels of every convolution in the block.
    """

    def __init__(self, filters: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.conv_a = _Conv2D(self.filters, 3, padding="same", name="conv_a")
        self.bn_a = layers.BatchNormalization(name="bn_a")
        self.conv_b = _Conv2D(self.filters, 3, padding="same", name="conv_b")
        self.bn_b = layers.BatchNormalization(name="bn_b")
        self.shortcut = _Conv2D(self.filters, 1, padding="same", name="shortcut")

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        # Build sub-layers eagerly so a saved .keras file finds every weight on load.
        inner = (*input_shape[:-1], self.filters)
        self.conv_a.build(input_shape)
        self.bn_a.build(inner)
        self.conv_b.build(inner)
        self.bn_b.build(inner)
        self.shortcut.build(input_shape)
        super().build(input_shape)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        x = keras.ops.relu(self.bn_a(self.conv_a(inputs), training=training))
        x = self.bn_b(self.conv_b(x), training=training)
        return keras.ops.relu(x + self.shortcut(inputs))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (*input_shape[:-1], self.filters)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "filters": self.filters}


def build_model(input_shape: tuple[int | None, int | None, int] = (None, None, 3), precision: str = "float32",
                ) -> keras.Model:
    """Build the deblurring network.

    Args:
        input_shape: (height, width, channels); height and width may be ``None`` and must
            otherwise be divisible by 4 (two 2x poolings, two 2x transposed convolutions).

        precision: A Keras dtype policy (see :data:`model.params.PRECISIONS`; not ``auto``,
            which :func:`model.runtime.resolve_precision` turns into one). Under a mixed
            one the last convolution and the global residual still compute in float32, so the
            output, the loss and the metrics are float32, and the input is added at full
            precision.

    Returns:
        An uncompiled functional ``keras.Model`` named ``deblur`` whose output is the input
        plus a learned residual.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        return _build(input_shape)
    finally:
        keras.config.set_dtype_policy(previous)


def _build(input_shape: tuple[int | None, int | None, int]) -> keras.Model:
    h, w = input_shape[0], input_shape[1]
    for side, size in (("height", h), ("width", w)):
        if size is not None and size % 4:
            raise ValueError(f"input {side} {size} is not divisible by 4; crop or pad the image to a multiple of 4")
    inputs = keras.Input(shape=input_shape, name="blurred")
    x0 = _Conv2D(16, 3, padding="same", activation="relu", name="conv2d")(inputs)
    x1 = _Conv2D(64, 3, padding="same", activation="relu", name="conv2d_1")(
        layers.Concatenate(name="concatenate")([inputs, x0])
    )
    p1 = layers.MaxPooling2D(name="max_pooling2d")(layers.Concatenate(name="concatenate_1")([x0, x1]))
    x2 = _Conv2D(128, 3, padding="same", activation="relu", name="conv2d_2")(p1)
    # Half-resolution copy of the first features, re-injected at the bottleneck (U-Net skip).
    p0 = layers.MaxPooling2D(name="max_pooling2d_2")(x0)
    p2 = layers.MaxPooling2D(name="max_pooling2d_1")(layers.Concatenate(name="concatenate_2")([x2, p0]))
    r = ResidualBlock(128, name="residual_block")(p2)
    r = ResidualBlock(128, name="residual_block_1")(r)
    u = _Conv2DTranspose(128, 3, strides=2, padding="same", activation="relu", name="conv2d_transpose")(r)
    u = _Conv2DTranspose(64, 3, strides=2, padding="same", activation="relu", name="conv2d_transpose_1")(u)
    residual = _Conv2D(3, 3, padding="same", name="conv2d_9", dtype="float32")(u)
    outputs = layers.Add(name="global_residual", dtype="float32")([inputs, residual])
    return keras.Model(inputs, outputs, name="deblur")
