"""Loss registry and the ``mae+0.1*sobel`` weighted-sum grammar.

:data:`LOSSES` maps a name to a factory ``(**options) -> loss_fn``; every ``loss_fn(y_true,
y_pred)`` takes NHWC float images in [0, 1] and returns one loss per sample (shape
``[batch]``), the Keras-loss convention, so Keras does the batch reduction.

Importing this module does not import TensorFlow or Keras: the spec validator and the report
use :data:`LOSSES` and :func:`parse_loss` without them. Factories import TF lazily.

Choices worth knowing:

* ``fourier`` uses the orthonormal 2-D FFT (divided by ``sqrt(H*W)``). MIMO-UNet uses the
  unnormalised FFT, whose coefficients grow with ``sqrt(H*W)``; that would make the loss depend
  on the patch size and outweigh ``mae`` about 64-fold at 64x64. With the orthonormal
  FFT (Parseval) its size is that of a pixel-space error, independent of the image size.
* ``sobel`` is the mean absolute difference over both edge maps (x and y) and all channels.
* ``perceptual`` is the mean *squared* difference of VGG16 ``block3_conv3`` features
  (Johnson et al. 2016 use squared error for the feature-reconstruction loss).
"""

from __future__ import annotations

import inspect
import math
import os
import re
import socket
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from model.errors import ConfigError, suggest

__all__ = ["LOSSES", "LossFn", "get_loss", "parse_loss"]

LossFn = Callable[[Any, Any], Any]
"""``(y_true, y_pred) -> per-sample loss tensor [batch]``."""

VGG_WEIGHTS_ENV = "SWEEPER_VGG_WEIGHTS"
VGG_WEIGHTS_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
_VGG_LAYER = "block3_conv3"
# Socket timeout (seconds, per blocking operation, not for the whole file) while Keras fetches
# the ImageNet weights: urllib has none by default, so a network that drops packets would hang
# a trial forever. A slow but progressing download is not cut off.
_DOWNLOAD_TIMEOUT_S = 30.0


# --------------------------------------------------------------------------------------------
# Loss functions (TensorFlow imported lazily)


def _tf() -> Any:
    import tensorflow as tf

    return tf


def _per_sample_mean(x: Any) -> Any:
    """Mean over every axis but the batch axis: the one reduction every loss here ends with."""
    tf = _tf()
    return tf.reduce_mean(x, axis=tf.range(1, tf.rank(x)))


def _pair(y_true: Any, y_pred: Any) -> tuple[Any, Any]:
    """Both images as float32 tensors (Keras may hand over y_true in another dtype)."""
    tf = _tf()
    y_pred = tf.convert_to_tensor(y_pred)
    if not y_pred.dtype.is_floating:
        y_pred = tf.cast(y_pred, tf.float32)
    return tf.cast(y_true, y_pred.dtype), y_pred


def _mae_fn(y_true: Any, y_pred: Any) -> Any:
    y_true, y_pred = _pair(y_true, y_pred)
    return _per_sample_mean(_tf().abs(y_pred - y_true))


def _mse_fn(y_true: Any, y_pred: Any) -> Any:
    y_true, y_pred = _pair(y_true, y_pred)
    return _per_sample_mean(_tf().square(y_pred - y_true))


def _huber_fn(y_true: Any, y_pred: Any, delta: float = 1.0) -> Any:
    # Keras' Huber: 0.5*e^2 where |e| <= delta, else delta*(|e| - 0.5*delta).
    tf = _tf()
    y_true, y_pred = _pair(y_true, y_pred)
    err = tf.abs(y_pred - y_true)
    quadratic = tf.minimum(err, delta)
    return _per_sample_mean(0.5 * tf.square(quadratic) + delta * (err - quadratic))


def _sobel_edges(images: Any) -> Any:
    """Per-channel Sobel x and y responses, NHWC -> [N, H, W, 2*C], reflect-padded by 1."""
    tf = _tf()
    gx = tf.constant([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=images.dtype)
    kernel = tf.stack([gx, tf.transpose(gx)], axis=-1)  # [3, 3, 2]: x then y
    channels = int(images.shape[-1])
    kernel = tf.tile(kernel[:, :, None, :], [1, 1, channels, 1])  # [3, 3, C, 2]
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")
    return tf.nn.depthwise_conv2d(padded, kernel, strides=[1, 1, 1, 1], padding="VALID")


def _sobel_fn(y_true: Any, y_pred: Any) -> Any:
    y_true, y_pred = _pair(y_true, y_pred)
    return _per_sample_mean(_tf().abs(_sobel_edges(y_pred) - _sobel_edges(y_true)))


def _fft2(images: Any) -> Any:
    """Orthonormal 2-D FFT over H and W of NHWC images, returned as [N, C, H, W] complex64."""
    tf = _tf()
    # fft2d transforms the last two axes, so move channels out of the way first.
    nchw = tf.cast(tf.transpose(images, [0, 3, 1, 2]), tf.float32)
    # tf.complex rather than tf.cast: the gradient of a real->complex cast warns on every step.
    nchw = tf.complex(nchw, tf.zeros_like(nchw))
    pixels = tf.cast(tf.shape(images)[1] * tf.shape(images)[2], tf.float32)
    return tf.signal.fft2d(nchw) / tf.cast(tf.sqrt(pixels), tf.complex64)


def _fourier_fn(y_true: Any, y_pred: Any) -> Any:
    tf = _tf()
    y_true, y_pred = _pair(y_true, y_pred)
    diff = _fft2(y_pred) - _fft2(y_true)
    per_sample = _per_sample_mean(tf.abs(tf.math.real(diff)) + tf.abs(tf.math.imag(diff)))
    return tf.cast(per_sample, y_pred.dtype)


def _simple(fn: LossFn, name: str) -> Callable[[], LossFn]:
    """A no-option factory returning ``fn`` under the registry name (Keras logs ``__name__``)."""
    fn.__name__ = fn.__qualname__ = name

    def factory() -> LossFn:
        return fn

    factory.__name__ = f"{name}_factory"
    factory.__doc__ = f"Build the {name!r} loss (takes no options)."
    return factory


# --------------------------------------------------------------------------------------------
# Perceptual loss: VGG16 features


@contextmanager
def _download_timeout(seconds: float) -> Iterator[None]:
    """Bound each blocking socket call made while this is active (only if none is set)."""
    previous = socket.getdefaulttimeout()
    if previous is None:
        socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        if previous is None:
            socket.setdefaulttimeout(None)


def _short(err: BaseException) -> str:
    """An exception's reason on one line, short enough for a one-line error message."""
    reason = " ".join(str(err).split()) or type(err).__name__
    return reason if len(reason) <= 200 else reason[:197] + "..."


def _resolve_vgg_weights(vgg_weights: str | None) -> str | None:
    """Explicit argument, else ``$SWEEPER_VGG_WEIGHTS``, else ``"imagenet"``; paths must exist."""
    if vgg_weights == "auto":
        vgg_weights = os.environ.get(VGG_WEIGHTS_ENV, "").strip() or "imagenet"
    if vgg_weights is None or vgg_weights == "imagenet":
        return vgg_weights
    if not isinstance(vgg_weights, (str, os.PathLike)):
        raise ConfigError(f"vgg_weights must be a file path, 'imagenet' or None, got {vgg_weights!r}")
    path = os.path.expanduser(os.fspath(vgg_weights))
    if not os.path.isfile(path):
        raise ConfigError(
            f"VGG16 weights file not found: {path!r} (from --vgg-weights or {VGG_WEIGHTS_ENV}); "
            f"it should be {VGG_WEIGHTS_FILE}"
        )
    return path


def _vgg_features(vgg_weights: str | None) -> Any:
    """A frozen VGG16 truncated at ``block3_conv3``; raises ConfigError when weights are missing."""
    import keras

    weights = _resolve_vgg_weights(vgg_weights)
    try:
        with _download_timeout(_DOWNLOAD_TIMEOUT_S):
            vgg = keras.applications.VGG16(include_top=False, weights=weights, input_shape=(None, None, 3))
    except Exception as err:  # Keras raises a bare Exception for a failed fetch
        if weights == "imagenet":
            raise ConfigError(
                f"perceptual loss needs VGG16 ImageNet weights and they could not be downloaded "
                f"({_short(err)}); supply the file {VGG_WEIGHTS_FILE} with --vgg-weights PATH "
                f"or {VGG_WEIGHTS_ENV}=PATH"
            ) from err
        raise ConfigError(f"could not load VGG16 weights from {weights!r}: {_short(err)}") from err
    features = keras.Model(vgg.input, vgg.get_layer(_VGG_LAYER).output, name=f"vgg16_{_VGG_LAYER}")
    features.trainable = False
    return features


def _perceptual(vgg_weights: str | None = "auto") -> LossFn:
    """Build the perceptual loss: MSE between VGG16 ``block3_conv3`` features.

    Args:
        vgg_weights: ``"auto"`` (``$SWEEPER_VGG_WEIGHTS`` if set, else ``"imagenet"``), a path to
            ``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5``, ``"imagenet"`` (Keras
            download) or ``None`` (random weights; for tests).

    Raises:
        ConfigError: the weights file does not exist or cannot be loaded, or the ImageNet
            download failed (the message says how to supply the file).
    """
    from keras.applications import vgg16

    tf = _tf()
    # Built here, eagerly and once, never inside the traced loss function.
    features = _vgg_features(vgg_weights)

    def perceptual(y_true: Any, y_pred: Any) -> Any:
        y_true, y_pred = _pair(y_true, y_pred)
        batch = tf.shape(y_pred)[0]
        # One VGG pass over both batches; inputs in [0, 1] -> VGG's 0..255 BGR mean-centred range.
        both = vgg16.preprocess_input(tf.concat([y_true, y_pred], axis=0) * 255.0)
        feats = features(both, training=False)
        return _per_sample_mean(tf.square(feats[batch:] - feats[:batch]))

    return perceptual


LOSSES: dict[str, Callable[..., LossFn]] = {
    "fourier": _simple(_fourier_fn, "fourier"),
    "huber": _simple(_huber_fn, "huber"),
    "mae": _simple(_mae_fn, "mae"),
    "mse": _simple(_mse_fn, "mse"),
    "perceptual": _perceptual,
    "sobel": _simple(_sobel_fn, "sobel"),
}


# --------------------------------------------------------------------------------------------
# The grammar: expr := term ('+' term)* ; term := [number '*'] name. Never eval.

_TOKEN = re.compile(
    r"(?P<space>\s+)"
    # A leading '-' is lexed only so that a negative weight gets its own clear message.
    r"|(?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>[*+])",
    re.ASCII,
)
_OP = re.compile(r"(?P<op>[*+])")


def _show(expr: str) -> str:
    """``expr`` quoted for a one-line message, cut if very long."""
    text = repr(expr)
    return text if len(text) <= 80 else text[:76] + "...'"


def _tokens(expr: str) -> list[tuple[str, str, int]]:
    """Split into (kind, text, column) tokens; column is 1-based. Raises ConfigError."""
    out: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(expr):
        # A '-' belongs to a number only where a term starts (``mae+-1*sobel``).
        at_term_start = not out or out[-1][1] == "+"
        match = _TOKEN.match(expr, pos)
        if match and match.lastgroup == "number" and expr[pos] == "-" and not at_term_start:
            match = _OP.match(expr, pos)
        if match is None:
            raise ConfigError(
                f"bad loss expression {_show(expr)}: unexpected character {expr[pos]!r} at column {pos + 1}"
                + ("; only '+' sums are supported, weights must be positive" if expr[pos] == "-" else "")
            )
        if match.lastgroup != "space":
            out.append((match.lastgroup or "", match.group(), pos + 1))
        pos = match.end()
    return out


def parse_loss(expr: str) -> tuple[tuple[float, str], ...]:
    """Parse a loss expression such as ``mae+0.1*sobel+0.05*fourier`` into (weight, name) terms.

    Pure Python: safe for the spec validator. Whitespace between tokens is ignored; a term
    without a weight has weight 1.0.

    Raises:
        ConfigError: one line naming the problem: empty expression, bad syntax (with the column),
            unknown loss name (with the valid names and a did-you-mean), a weight that is not a
            positive finite number, or a loss named twice.
    """
    if not isinstance(expr, str):
        raise ConfigError(f"loss must be a name or an expression like 'mae+0.1*sobel', got {expr!r}")
    tokens = _tokens(expr)
    if not tokens:
        raise ConfigError("empty loss expression; expected a name like 'mae' or 'mae+0.1*sobel'")

    def fail(problem: str) -> ConfigError:
        return ConfigError(f"bad loss expression {_show(expr)}: {problem}")

    def describe(i: int) -> str:
        return f"{tokens[i][1]!r} at column {tokens[i][2]}" if i < len(tokens) else "end of expression"

    terms: list[tuple[float, str]] = []
    i = 0
    while True:
        weight = 1.0
        if i < len(tokens) and tokens[i][0] == "number":
            weight = float(tokens[i][1])
            if not math.isfinite(weight) or weight <= 0:
                raise fail(f"weight {tokens[i][1]} at column {tokens[i][2]} must be a positive finite number")
            if i + 1 >= len(tokens) or tokens[i + 1][1] != "*":
                raise fail(f"expected '*' after weight {tokens[i][1]}, got {describe(i + 1)}")
            i += 2
        if i >= len(tokens) or tokens[i][0] != "name":
            raise fail(f"expected a loss name, got {describe(i)}")
        name = tokens[i][1]
        if i + 1 < len(tokens) and tokens[i + 1][1] == "*":
            raise fail(
                f"expected a number before '*' at column {tokens[i + 1][2]}, got {_show(name)}; "
                "write the weight first, e.g. 0.1*sobel"
            )
        if name not in LOSSES:
            raise ConfigError(
                f"unknown loss {_show(name)} in {_show(expr)}{suggest(name.lower(), list(LOSSES))}; "
                f"valid: {', '.join(LOSSES)}"
            )
        if any(name == seen for _, seen in terms):
            raise fail(f"loss {name!r} appears more than once; combine its weights into one term")
        terms.append((weight, name))
        i += 1
        if i >= len(tokens):
            return tuple(terms)
        if tokens[i][1] != "+":
            raise fail(f"expected '+' or end of expression after {name!r}, got {describe(i)}")
        i += 1


def _format(terms: tuple[tuple[float, str], ...]) -> str:
    """Canonical text of parsed terms, e.g. ``mae+0.1*sobel`` (used as the loss's ``__name__``)."""
    return "+".join(name if weight == 1.0 else f"{weight:g}*{name}" for weight, name in terms)


def _build(name: str, options: dict[str, Any]) -> LossFn:
    """Call ``LOSSES[name]`` with only the options its factory accepts."""
    factory = LOSSES[name]
    accepted = inspect.signature(factory).parameters
    return factory(**{key: value for key, value in options.items() if key in accepted})


def get_loss(expr: str, *, vgg_weights: str | None = "auto") -> LossFn:
    """Build the loss function for ``expr`` (a name or a weighted sum, see :func:`parse_loss`).

    Args:
        expr: e.g. ``"mae"`` or ``"mae+0.1*sobel+0.05*fourier"``.
        vgg_weights: passed to the perceptual loss: ``"auto"``, a path, ``"imagenet"`` or None.

    Returns:
        ``loss_fn(y_true, y_pred) -> [batch]``; a single term of weight 1 is that loss itself.
        ``__name__`` is the canonical expression, which Keras shows in logs.

    Raises:
        ConfigError: bad expression, or the perceptual loss's VGG16 weights are unavailable.
    """
    terms = parse_loss(expr)
    options = {"vgg_weights": vgg_weights}
    if len(terms) == 1 and terms[0][0] == 1.0:
        return _build(terms[0][1], options)
    parts = [(weight, _build(name, options)) for weight, name in terms]

    def weighted_sum(y_true: Any, y_pred: Any) -> Any:
        total = None
        for weight, fn in parts:
            value = weight * fn(y_true, y_pred)
            total = value if total is None else total + value
        return total

    weighted_sum.__name__ = weighted_sum.__qualname__ = _format(terms)
    return weighted_sum
