"""Image-restoration metrics: PSNR, SSIM and MAE on RGB images in [0, 1].

The GoPro convention: RGB, no border crop, no Y channel. Every metric clips ``y_pred`` to
[0, 1] first, because a restored image is saved or shown clipped and that is what is scored;
``y_true`` is trusted to be in range. Each metric returns one value per sample (``[batch]``).

Importing this module does not import TensorFlow or Keras: the spec validator and the report
use :data:`METRICS`, :data:`METRIC_GOALS`, :data:`VAL_METRICS` and :func:`metric_goal` without them.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from model.errors import ConfigError, DataError, suggest

__all__ = ["METRICS", "METRIC_GOALS", "METRIC_UNITS", "VAL_METRICS", "VAL_PREFIX", "evaluate", "mae", "metric_goal", "metric_unit", "psnr", "reference_metrics", "ssim"]


def _prepare(y_true: Any, y_pred: Any) -> tuple[Any, Any]:
    """float32 tensors, with the prediction clipped to the valid range [0, 1]."""
    import tensorflow as tf

    y_pred = tf.clip_by_value(tf.cast(y_pred, tf.float32), 0.0, 1.0)
    return tf.cast(y_true, tf.float32), y_pred


def psnr(y_true: Any, y_pred: Any) -> Any:
    """Peak signal-to-noise ratio in dB with data range 1, per sample; ``inf`` for identical images.

    Args:
        y_true: NHWC sharp images in [0, 1].
        y_pred: NHWC restored images (clipped to [0, 1] before scoring).
    """
    import tensorflow as tf

    y_true, y_pred = _prepare(y_true, y_pred)
    return tf.image.psnr(y_true, y_pred, max_val=1.0)


def ssim(y_true: Any, y_pred: Any) -> Any:
    """Structural similarity per sample (Wang et al. 2004), mean over channels and valid windows.

    Gaussian window 11x11, sigma 1.5, K1 0.01, K2 0.03, data range 1: ``tf.image.ssim`` with
    these settings matches ``skimage.metrics.structural_similarity(gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=-1)`` (tested).
    Images must be at least 11x11.
    """
    import tensorflow as tf

    y_true, y_pred = _prepare(y_true, y_pred)
    return tf.image.ssim(y_true, y_pred, max_val=1.0, filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03)


def mae(y_true: Any, y_pred: Any) -> Any:
    """Mean absolute error per sample over H, W and C."""
    import tensorflow as tf

    y_true, y_pred = _prepare(y_true, y_pred)
    return tf.reduce_mean(tf.abs(y_pred - y_true), axis=[1, 2, 3])


# The registry, in the order every table, ledger and report shows the metrics (PSNR first:
# the figure deblurring papers lead with). These two dicts are the one source of metric names.
METRICS: dict[str, Callable[[Any, Any], Any]] = {"psnr": psnr, "ssim": ssim, "mae": mae}

METRIC_GOALS: dict[str, str] = {"psnr": "maximize", "ssim": "maximize", "mae": "minimize"}

METRIC_UNITS: dict[str, str] = {"psnr": " dB", "ssim": "", "mae": ""}
"""What to write after a value (SSIM and MAE are fractions of one)."""

VAL_PREFIX = "val_"
VAL_METRICS: tuple[str, ...] = tuple(VAL_PREFIX + name for name in METRIC_GOALS)
"""The names trials log and ledgers store: ``("val_psnr", "val_ssim", "val_mae")``."""


def metric_unit(name: str) -> str:
    """What to write after a value of a metric named bare or as logged (``" dB"`` for PSNR)."""
    return METRIC_UNITS.get(name.removeprefix(VAL_PREFIX), "")


def metric_goal(name: str) -> str:
    """``"maximize"`` or ``"minimize"`` for a metric, named bare (``psnr``) or as logged (``val_psnr``).

    Raises:
        ConfigError: unknown metric (the message lists the valid names and suggests the closest).
    """
    bare = name.removeprefix(VAL_PREFIX) if isinstance(name, str) else name
    if isinstance(bare, str) and bare in METRIC_GOALS:
        return METRIC_GOALS[bare]
    valid = list(VAL_METRICS)
    raise ConfigError(
        f"unknown metric {name!r}{suggest(str(name).lower(), valid + list(METRIC_GOALS))}; "
        f"valid: {', '.join(valid)} (the 'val_' prefix is optional)"
    )


def evaluate(predict_fn: Callable[[Any], Any], pairs: Sequence[tuple[Any, Any]]) -> dict[str, float]:
    """Mean PSNR, SSIM and MAE of ``predict_fn`` over (blur, sharp) pairs, one image at a time.

    Args:
        predict_fn: maps a (1, H, W, 3) float32 array to the restored (1, H, W, 3) array.
        pairs: (blur, sharp) HxWx3 float32 arrays in [0, 1]; sizes may differ between pairs.

    Returns:
        ``{"psnr": ..., "ssim": ..., "mae": ...}`` as Python floats, averaged over the pairs
        (PSNR is averaged in dB, per image, as deblurring papers report it).

    Raises:
        DataError: ``pairs`` is empty.
    """
    import numpy as np

    if not pairs:
        raise DataError("cannot evaluate on an empty set of (blur, sharp) image pairs")
    totals = dict.fromkeys(METRIC_GOALS, 0.0)
    for blur, sharp in pairs:
        restored = np.asarray(predict_fn(np.asarray(blur, dtype=np.float32)[None]), dtype=np.float32)
        sharp_batch = np.asarray(sharp, dtype=np.float32)[None]
        if restored.shape != sharp_batch.shape:
            raise ValueError(f"predict_fn returned shape {restored.shape}, expected {sharp_batch.shape}")
        for name in totals:
            totals[name] += float(METRICS[name](sharp_batch, restored)[0])
    return {name: total / len(pairs) for name, total in totals.items()}


def reference_metrics(sharp: Any, pred: Any) -> dict[str, float]:
    """PSNR, SSIM and MAE of one HxWx3 pair with NumPy and scikit-image: no TensorFlow.

    The same definitions as :data:`METRICS` (prediction clipped to [0, 1], Gaussian 11x11
    SSIM with sigma 1.5), for scores the report computes itself, such as the blurred input's.
    """
    import numpy as np
    from skimage.metrics import structural_similarity

    y = np.asarray(sharp, dtype=np.float64)
    x = np.clip(np.asarray(pred, dtype=np.float64), 0.0, 1.0)
    mse = float(np.mean((y - x) ** 2))
    return {
        "psnr": math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse),
        "ssim": float(structural_similarity(y, x, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                            data_range=1.0, channel_axis=-1)),
        "mae": float(np.mean(np.abs(y - x))),
    }
