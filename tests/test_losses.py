"""Tests for model.losses: every registered loss, the weighted-sum grammar, VGG weight handling."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.errors import ConfigError
from model.losses import LOSSES, get_loss, parse_loss
from tests.conftest import one_line_error

REPO = Path(__file__).resolve().parents[1]
VGG_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"


@pytest.fixture(scope="module")
def images() -> tuple[np.ndarray, np.ndarray]:
    """Two 32x32 natural crops (sharp) and a shifted, darkened, noisy version of them (pred)."""
    from skimage import data

    astro = data.astronaut().astype(np.float32) / 255.0
    sharp = np.stack([astro[100:132, 180:212], astro[300:332, 250:282]])
    noise = np.random.default_rng(0).normal(0.0, 0.05, sharp.shape).astype(np.float32)
    pred = np.clip(0.8 * np.roll(sharp, 1, axis=2) + noise, 0.0, 1.0).astype(np.float32)
    return sharp, pred


@pytest.fixture(scope="module")
def perceptual() -> Callable[[Any, Any], Any]:
    """The perceptual loss on a randomly initialised VGG16, built once for the module."""
    return LOSSES["perceptual"](vgg_weights=None)


@pytest.fixture(scope="module")
def build(perceptual: Callable[[Any, Any], Any]) -> Callable[[str], Callable[[Any, Any], Any]]:
    def make(name: str) -> Callable[[Any, Any], Any]:
        return perceptual if name == "perceptual" else LOSSES[name]()

    return make


def test_registry_names_sorted() -> None:
    assert list(LOSSES) == ["fourier", "huber", "mae", "mse", "perceptual", "sobel"]


@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_zero_positive_shape_and_gradient(name: str, build: Any, images: Any) -> None:
    import tensorflow as tf

    sharp, pred = images
    fn = build(name)
    same = fn(sharp, sharp).numpy()
    assert same.shape == (2,)
    np.testing.assert_allclose(same, 0.0, atol=1e-6)

    y_pred = tf.Variable(pred)
    with tf.GradientTape() as tape:
        value = fn(tf.constant(sharp), y_pred)
        total = tf.reduce_sum(value)
    assert value.shape == (2,)
    assert np.all(value.numpy() > 0)
    grad = tape.gradient(total, y_pred)
    assert grad is not None
    assert np.all(np.isfinite(grad.numpy()))
    assert np.any(grad.numpy() != 0)


def test_mae_mse_against_numpy(images: Any) -> None:
    sharp, pred = images
    diff = pred.astype(np.float64) - sharp
    np.testing.assert_allclose(LOSSES["mae"]()(sharp, pred).numpy(), np.abs(diff).mean(axis=(1, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(LOSSES["mse"]()(sharp, pred).numpy(), (diff**2).mean(axis=(1, 2, 3)), rtol=1e-5)


def test_huber_matches_keras(images: Any) -> None:
    import keras

    sharp, pred = images
    pred = 3.0 * pred - 1.0  # errors on both sides of delta=1 exercise both branches
    reference = keras.losses.Huber(delta=1.0, reduction=None)(sharp, pred).numpy().mean(axis=(1, 2))
    np.testing.assert_allclose(LOSSES["huber"]()(sharp, pred).numpy(), reference, rtol=1e-5)


def test_sobel_against_scipy(images: Any) -> None:
    from scipy import ndimage

    sharp, pred = images
    gx = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])

    def edges(batch: np.ndarray) -> np.ndarray:
        # scipy's "mirror" is TF's REFLECT (edge pixel not repeated); correlate, not convolve.
        return np.stack(
            [
                ndimage.correlate(batch[n, :, :, c].astype(np.float64), k, mode="mirror")
                for n in range(batch.shape[0])
                for c in range(batch.shape[3])
                for k in (gx, gx.T)
            ]
        ).reshape(batch.shape[0], -1)

    expected = np.abs(edges(pred) - edges(sharp)).mean(axis=1)
    np.testing.assert_allclose(LOSSES["sobel"]()(sharp, pred).numpy(), expected, rtol=1e-5)


def test_fourier_against_numpy(images: Any) -> None:
    sharp, pred = images
    sharp, pred = sharp[:, :8, :12], pred[:, :8, :12]  # non-square catches an H/W mix-up
    diff = np.fft.fft2(pred.astype(np.float64), axes=(1, 2), norm="ortho") - np.fft.fft2(
        sharp.astype(np.float64), axes=(1, 2), norm="ortho"
    )
    expected = (np.abs(diff.real) + np.abs(diff.imag)).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(LOSSES["fourier"]()(sharp, pred).numpy(), expected, rtol=1e-4)


def test_weighted_sum_equals_sum_of_parts(images: Any) -> None:
    sharp, pred = images
    combined = get_loss("mae + 0.1*sobel + 0.05 * fourier")
    assert combined.__name__ == "mae+0.1*sobel+0.05*fourier"
    parts = {name: LOSSES[name]()(sharp, pred).numpy() for name in ("mae", "sobel", "fourier")}
    expected = parts["mae"] + 0.1 * parts["sobel"] + 0.05 * parts["fourier"]
    value = combined(sharp, pred).numpy()
    assert value.shape == (2,)
    np.testing.assert_allclose(value, expected, rtol=1e-5)


def test_weighted_sum_with_perceptual_part(images: Any, perceptual: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import model.losses as losses

    # Reuse the module's VGG so the perceptual part is the same function in both computations.
    monkeypatch.setitem(losses.LOSSES, "perceptual", lambda vgg_weights="auto": perceptual)
    sharp, pred = images
    expected = 0.5 * LOSSES["mse"]()(sharp, pred).numpy() + 3.0 * perceptual(sharp, pred).numpy()
    np.testing.assert_allclose(get_loss("0.5*mse+3*perceptual")(sharp, pred).numpy(), expected, rtol=1e-5)


def test_single_term_is_the_loss_itself() -> None:
    assert get_loss("mae") is LOSSES["mae"]()
    assert get_loss(" sobel ").__name__ == "sobel"
    assert get_loss("0.5*mae").__name__ == "0.5*mae"


@pytest.mark.parametrize(
    ("expr", "terms"),
    [
        ("mae", ((1.0, "mae"),)),
        ("mae+0.1*sobel+0.05*fourier", ((1.0, "mae"), (0.1, "sobel"), (0.05, "fourier"))),
        ("  2 * mse\t+ 1e-2*huber ", ((2.0, "mse"), (0.01, "huber"))),
        ("1.*perceptual+.5*mae", ((1.0, "perceptual"), (0.5, "mae"))),
        ("3E+1*fourier", ((30.0, "fourier"),)),
    ],
)
def test_parse_loss_good(expr: str, terms: tuple[tuple[float, str], ...]) -> None:
    assert parse_loss(expr) == terms


@pytest.mark.parametrize(
    ("expr", "needle"),
    [
        ("", "empty loss expression"),
        ("  \n ", "empty loss expression"),
        ("sobl", "unknown loss 'sobl'"),
        ("mae+0.1*fourrier", "unknown loss 'fourrier'"),
        ("mae+", "expected a loss name, got end of expression"),
        ("0.1*", "expected a loss name, got end of expression"),
        ("mae*0.1", "expected a number before '*' at column 4"),
        ("0.1sobel", "expected '*' after weight 0.1"),
        ("mae sobel", "got 'sobel' at column 5"),
        ("mae-0.1*sobel", "unexpected character '-' at column 4"),
        ("mae+-0.1*sobel", "weight -0.1 at column 5 must be a positive finite number"),
        ("0*mae", "weight 0 at column 1 must be a positive"),
        ("1e999*mae", "weight 1e999 at column 1 must be a positive finite"),
        ("nan*mae", "expected a number before '*'"),
        ("mae+0.5*mae", "'mae' appears more than once"),
        ("__import__('os')", "unexpected character '(' at column 11"),
        ("mae;rm", "unexpected character ';' at column 4"),
        ("+mae", "expected a loss name, got '+' at column 1"),
        (None, "loss must be a name or an expression"),
    ],
)
def test_parse_loss_bad(expr: Any, needle: str) -> None:
    assert needle in one_line_error(ConfigError, parse_loss, expr)


@pytest.mark.parametrize(("typo", "meant"), [("sobl", "sobel"), ("MAE", "mae"), ("perceptal", "perceptual")])
def test_unknown_loss_suggests_closest_and_lists_valid(typo: str, meant: str) -> None:
    with pytest.raises(ConfigError, match=rf"did you mean '{meant}'\?\); valid: fourier, huber, mae, mse, perceptual, sobel"):
        parse_loss(f"0.5*{typo}")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40) | st.text(alphabet="maesobl0123456789.e-+* \t()_", max_size=30))
def test_parse_loss_total_on_arbitrary_text(expr: str) -> None:
    try:
        terms = parse_loss(expr)
    except ConfigError as err:
        assert "\n" not in str(err)
    else:
        assert terms and all(name in LOSSES and weight > 0 for weight, name in terms)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sampled_from(sorted(LOSSES)), min_size=1, max_size=6, unique=True),
    st.data(),
)
def test_parse_loss_round_trip(names: list[str], data: st.DataObject) -> None:
    weights = [data.draw(st.floats(min_value=1e-6, max_value=1e6, allow_nan=False)) for _ in names]
    expr = " + ".join(f"{weight!r}*{name}" for weight, name in zip(weights, names))
    assert parse_loss(expr) == tuple(zip(weights, names))


def test_perceptual_missing_path_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / VGG_FILE
    with pytest.raises(ConfigError, match="not found") as caught:
        get_loss("mae+0.1*perceptual", vgg_weights=str(missing))
    assert str(missing) in str(caught.value)


def test_perceptual_missing_env_path_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "from-env.h5"
    monkeypatch.setenv("SWEEPER_VGG_WEIGHTS", str(missing))
    with pytest.raises(ConfigError, match="SWEEPER_VGG_WEIGHTS") as caught:
        get_loss("perceptual")
    assert str(missing) in str(caught.value)


def test_perceptual_loads_weights_file_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, images: Any) -> None:
    """A weights file in Keras' legacy .h5 layout (the one Keras downloads) is loaded from the env var."""
    import h5py
    import keras
    from keras.applications import vgg16
    from keras.src.legacy.saving import legacy_h5_format

    vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    path = tmp_path / VGG_FILE
    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, vgg)
    monkeypatch.setenv("SWEEPER_VGG_WEIGHTS", str(path))

    sharp, pred = images
    features = keras.Model(vgg.input, vgg.get_layer("block3_conv3").output)
    ft, fp = (features(vgg16.preprocess_input(x * 255.0)).numpy() for x in (sharp, pred))
    expected = ((fp - ft) ** 2).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(get_loss("perceptual")(sharp, pred).numpy(), expected, rtol=1e-4)


def test_perceptual_corrupt_weights_file(tmp_path: Path) -> None:
    bad = tmp_path / VGG_FILE
    bad.write_bytes(b"not an hdf5 file")
    with pytest.raises(ConfigError, match="could not load VGG16 weights from") as caught:
        get_loss("perceptual", vgg_weights=str(bad))
    assert str(bad) in str(caught.value)


def test_perceptual_imagenet_unavailable_fails_fast_with_instructions(tmp_path: Path) -> None:
    """No cached weights and no reachable server: one-line ConfigError, never a hang.

    Runs in a subprocess because Keras reads KERAS_HOME once at import. HTTPS goes through a
    local "proxy" that accepts connections and never answers, so the test behaves the same on a
    machine with internet. Without the sweeper's socket timeout (lowered to 1 s here) the fetch
    would wait forever and the subprocess timeout would fail the test; "timed out" in the message
    shows it was that timeout, not something else, that ended the wait. No wall-clock bound
    beyond that: a loaded CI machine once took 37 s, most of it importing TensorFlow.
    """
    script = textwrap.dedent(
        """
        import os, socket, sys
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        proxy = "http://127.0.0.1:%d" % silent.getsockname()[1]
        os.environ["https_proxy"] = os.environ["HTTPS_PROXY"] = proxy
        import model.losses as losses
        from model.errors import ConfigError
        losses._DOWNLOAD_TIMEOUT_S = 1.0
        try:
            losses.get_loss("mae+0.1*perceptual")
        except ConfigError as err:
            print("MESSAGE", err)
            sys.exit(0)
        sys.exit("no ConfigError raised")
        """
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if key.lower() not in {"sweeper_vgg_weights", "no_proxy", "http_proxy", "https_proxy", "all_proxy"}
    }
    env.update(KERAS_HOME=str(tmp_path / "keras-home"), PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (message,) = [line.split(" ", 1)[1] for line in proc.stdout.splitlines() if line.startswith("MESSAGE ")]
    assert "perceptual loss needs VGG16 ImageNet weights" in message
    assert "--vgg-weights PATH" in message and "SWEEPER_VGG_WEIGHTS=PATH" in message
    assert VGG_FILE in message
    assert "timed out" in message  # the original error's reason is kept
    assert not list((tmp_path / "keras-home" / "models").glob("*.h5"))  # no partial file left


def test_import_does_not_load_tensorflow() -> None:
    script = (
        "import sys, model.losses, model.metrics\n"
        "model.losses.parse_loss('mae+0.1*sobel'); model.metrics.metric_goal('val_psnr')\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
