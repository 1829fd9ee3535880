"""Tests for model.metrics: PSNR/SSIM cross-checked against scikit-image, clipping, goals, evaluate."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio

from model.errors import ConfigError, DataError
from model.metrics import METRIC_GOALS, METRICS, evaluate, mae, metric_goal, psnr, reference_metrics, ssim
from tests.conftest import one_line_error


def _pairs() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Named (sharp, pred) HxWx3 float32 pairs: natural crops, blurred, noisy, random."""
    from skimage import data, filters

    rng = np.random.default_rng(7)
    astro = data.astronaut()[120:168, 160:224].astype(np.float32) / 255.0  # 48x64, non-square
    coffee = data.coffee()[100:140, 200:240].astype(np.float32) / 255.0
    random = rng.random((33, 29, 3), dtype=np.float32)  # odd sizes
    blur = filters.gaussian(astro, sigma=2.0, channel_axis=-1).astype(np.float32)
    noisy = np.clip(coffee + rng.normal(0, 0.08, coffee.shape), 0, 1).astype(np.float32)
    return {
        "astronaut_blurred": (astro, blur),
        "coffee_noisy": (coffee, noisy),
        "random_scaled": (random, (0.6 * random + 0.2).astype(np.float32)),
        "random_vs_random": (random, rng.random(random.shape, dtype=np.float32)),
    }


PAIRS = _pairs()


@pytest.mark.parametrize("case", list(PAIRS))
def test_psnr_and_ssim_match_skimage(case: str) -> None:
    sharp, pred = PAIRS[case]
    got_psnr = float(psnr(sharp[None], pred[None])[0])
    got_ssim = float(ssim(sharp[None], pred[None])[0])
    got_mae = float(mae(sharp[None], pred[None])[0])
    ref = reference_metrics(sharp, pred)  # NumPy + scikit-image, what the report uses
    assert got_psnr == pytest.approx(peak_signal_noise_ratio(sharp, np.clip(pred, 0, 1), data_range=1), abs=0.01)
    assert got_psnr == pytest.approx(ref["psnr"], abs=0.01)
    assert got_ssim == pytest.approx(ref["ssim"], abs=0.002)
    assert got_mae == pytest.approx(ref["mae"], abs=1e-5)


def test_batch_gives_one_value_per_sample() -> None:
    sharp, pred = PAIRS["astronaut_blurred"]
    batch_true = np.stack([sharp, sharp, pred])
    batch_pred = np.stack([pred, sharp, sharp])
    for name, fn in METRICS.items():
        values = fn(batch_true, batch_pred).numpy()
        assert values.shape == (3,), name
        single = float(fn(sharp[None], pred[None])[0])
        assert values[0] == pytest.approx(single, rel=1e-5), name


def test_identical_images() -> None:
    sharp, _ = PAIRS["coffee_noisy"]
    x = sharp[None]
    assert float(ssim(x, x)[0]) == pytest.approx(1.0, abs=1e-6)
    assert float(mae(x, x)[0]) == 0.0
    assert math.isinf(float(psnr(x, x)[0]))


def test_predictions_are_clipped_before_scoring() -> None:
    sharp, pred = PAIRS["astronaut_blurred"]
    wild = (pred * 1.6 - 0.3)[None]  # well outside [0, 1] on both sides
    clipped = np.clip(wild, 0.0, 1.0)
    for name, fn in METRICS.items():
        assert float(fn(sharp[None], wild)[0]) == pytest.approx(float(fn(sharp[None], clipped)[0]), abs=1e-6), name
    # A saturated target: the out-of-range prediction clips to it exactly.
    binary = (PAIRS["random_scaled"][0] > 0.5).astype(np.float32)[None]
    overshoot = 3.0 * binary - 1.0  # -1 where 0, 2 where 1
    assert float(mae(binary, overshoot)[0]) == 0.0
    assert float(ssim(binary, overshoot)[0]) == pytest.approx(1.0, abs=1e-6)


def test_registry_and_goals() -> None:
    assert list(METRICS) == ["psnr", "ssim", "mae"]  # the order tables show them in
    assert METRIC_GOALS == {"psnr": "maximize", "ssim": "maximize", "mae": "minimize"}


@pytest.mark.parametrize(
    ("name", "goal"),
    [("psnr", "maximize"), ("val_psnr", "maximize"), ("ssim", "maximize"), ("val_ssim", "maximize"),
     ("mae", "minimize"), ("val_mae", "minimize")],
)
def test_metric_goal_good(name: str, goal: str) -> None:
    assert metric_goal(name) == goal


@pytest.mark.parametrize(
    ("name", "hint"),
    [("val_psnrr", " (did you mean 'val_psnr'?)"), ("ssmi", " (did you mean 'ssim'?)"), ("accuracy", ""),
     ("PSNR", " (did you mean 'psnr'?)")],
)
def test_metric_goal_bad(name: str, hint: str) -> None:
    message = one_line_error(ConfigError, metric_goal, name)
    assert message == f"unknown metric {name!r}{hint}; valid: val_psnr, val_ssim, val_mae (the 'val_' prefix is optional)"


def test_evaluate_identity_predict_fn() -> None:
    pairs = [(pred, sharp) for sharp, pred in (PAIRS["astronaut_blurred"], PAIRS["random_scaled"])]
    calls: list[tuple[int, ...]] = []

    def identity(x: np.ndarray) -> np.ndarray:
        calls.append(x.shape)
        return x

    scores = evaluate(identity, pairs)
    assert list(scores) == ["psnr", "ssim", "mae"]
    assert all(type(value) is float for value in scores.values())
    assert calls == [(1, 48, 64, 3), (1, 33, 29, 3)]
    assert scores["psnr"] == pytest.approx(
        np.mean([peak_signal_noise_ratio(sharp, blur, data_range=1) for blur, sharp in pairs]), abs=0.01
    )
    assert scores["ssim"] == pytest.approx(np.mean([reference_metrics(sharp, blur)["ssim"] for blur, sharp in pairs]), abs=0.002)
    assert scores["mae"] == pytest.approx(np.mean([np.abs(blur - sharp).mean() for blur, sharp in pairs]), abs=1e-6)
    assert evaluate(identity, pairs) == scores  # deterministic


def test_evaluate_perfect_restoration_and_errors() -> None:
    sharp, blur = PAIRS["coffee_noisy"]
    perfect = evaluate(lambda x: sharp[None], [(blur, sharp)])
    assert perfect["mae"] == 0.0 and perfect["ssim"] == pytest.approx(1.0, abs=1e-6) and math.isinf(perfect["psnr"])
    with pytest.raises(DataError, match="empty"):
        evaluate(lambda x: x, [])
    with pytest.raises(ValueError, match="shape"):
        evaluate(lambda x: x[:, :-4], [(blur, sharp)])

