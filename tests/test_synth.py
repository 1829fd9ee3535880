"""Synthetic data: shake kernels, blur, and the generated dataset (no TensorFlow)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model.errors import ConfigError, DataError
from model.kernels import blur, random_kernel, trajectory
from model.synth import TEST_SOURCES, TRAIN_SOURCES, ensure_synthetic, synthesize
from tests.conftest import one_line_error

TINY = dict(n_train=3, n_test=2, size=32, kernel_size=7)


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _support(kernel: np.ndarray) -> int:
    return int((kernel > 1e-3 * kernel.max()).sum())


@pytest.mark.parametrize("size", [3, 7, 17, 31])
def test_kernel_sums_to_one_nonnegative_and_sized(size: int) -> None:
    for seed in range(5):
        k = random_kernel(np.random.default_rng(seed), kernel_size=size)
        assert k.shape == (size, size) and k.dtype == np.float64
        assert k.min() >= 0
        assert k.sum() == pytest.approx(1.0, abs=1e-6)


def test_kernel_centre_of_mass_is_the_centre_pixel() -> None:
    # A centred kernel blurs without shifting the image away from its sharp partner.
    k = random_kernel(np.random.default_rng(3), kernel_size=17)
    ys, xs = np.mgrid[:17, :17]
    assert (k * ys).sum() == pytest.approx(8, abs=1e-6)
    assert (k * xs).sum() == pytest.approx(8, abs=1e-6)


def test_kernel_deterministic_per_seed_and_different_across_seeds() -> None:
    a = random_kernel(np.random.default_rng(1))
    b = random_kernel(np.random.default_rng(1))
    c = random_kernel(np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_short_exposure_has_smaller_support() -> None:
    shorter = [
        _support(random_kernel(np.random.default_rng(s), exposure=0.3))
        < _support(random_kernel(np.random.default_rng(s), exposure=1.0))
        for s in range(10)
    ]
    assert sum(shorter) >= 8


def test_trajectory_speed_and_start() -> None:
    path = trajectory(np.random.default_rng(0), length=20.0, num_t=500)
    assert path.dtype == np.complex128 and path.shape == (500,)
    assert path[0] == 0
    # Constant speed: the path length is exactly `length`.
    assert np.abs(np.diff(path)).sum() == pytest.approx(20.0)


def test_blur_keeps_shape_and_brightness() -> None:
    rng = np.random.default_rng(0)
    image = rng.uniform(size=(20, 24, 3))
    out = blur(image, random_kernel(rng, kernel_size=7))
    assert out.shape == image.shape
    assert out.mean() == pytest.approx(image.mean(), abs=0.02)
    delta = np.zeros((3, 3))
    delta[1, 1] = 1
    np.testing.assert_allclose(blur(image, delta), image)


def test_sources_disjoint_and_bundled() -> None:
    assert not set(TRAIN_SOURCES) & set(TEST_SOURCES)
    assert TEST_SOURCES and TRAIN_SOURCES


def test_synthesize_layout_and_pairs(tmp_path: Path) -> None:
    root = synthesize(tmp_path, "tiny", seed=0, **TINY)
    assert root == tmp_path / "tiny"
    for split, n in (("train", 3), ("test", 2)):
        blurred = sorted(p.name for p in (root / split / "blur").iterdir())
        sharp = sorted(p.name for p in (root / split / "sharp").iterdir())
        assert blurred == sharp == [f"{i:04d}.png" for i in range(n)]
        for name in blurred:
            b = Image.open(root / split / "blur" / name)
            s = Image.open(root / split / "sharp" / name)
            assert b.mode == s.mode == "RGB" and b.size == s.size == (32, 32)
            bb = np.asarray(b, dtype=np.float64) / 255
            ss = np.asarray(s, dtype=np.float64) / 255
            assert np.abs(bb - ss).mean() > 0.001  # actually blurred
            assert bb.mean() == pytest.approx(ss.mean(), abs=0.02)  # sum-1 kernel keeps brightness


def test_synthesize_is_byte_deterministic(tmp_path: Path) -> None:
    a = _digests(synthesize(tmp_path / "a", "d", seed=5, **TINY))
    b = _digests(synthesize(tmp_path / "b", "d", seed=5, **TINY))
    c = _digests(synthesize(tmp_path / "c", "d", seed=6, **TINY))
    assert a == b
    assert a.keys() == c.keys() and a != c


def test_synthesize_overwrites_existing(tmp_path: Path) -> None:
    first = _digests(synthesize(tmp_path, "d", seed=1, **TINY))
    extra = tmp_path / "d" / "train" / "blur" / "9999.png"
    extra.write_bytes(b"stale")
    again = _digests(synthesize(tmp_path, "d", seed=1, **TINY))
    assert again == first and not extra.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # staging cleaned up


def test_test_set_independent_of_train_count(tmp_path: Path) -> None:
    a = synthesize(tmp_path / "a", "d", seed=2, n_train=1, n_test=2, size=32, kernel_size=7)
    b = synthesize(tmp_path / "b", "d", seed=2, n_train=4, n_test=2, size=32, kernel_size=7)
    assert _digests(a / "test") == _digests(b / "test")


def test_user_sources_split_disjointly(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    # Constant-colour images (one grey level each): a crop identifies its source file.
    levels = [20, 60, 100, 140, 180]
    for i, level in enumerate(levels):
        Image.fromarray(np.full((10, 12), level, np.uint8), "L").save(src / f"img{i}.png")
    (src / "notes.txt").write_text("ignored")
    root = synthesize(tmp_path, "mine", sources=src, n_train=6, n_test=2, size=16, kernel_size=3, noise_sigma=0)

    def used(split: str) -> set[int]:
        return {int(np.asarray(Image.open(p))[0, 0, 0]) for p in (root / split / "sharp").iterdir()}

    assert used("test") == {180}  # last fifth of the sorted names (small images upscaled)
    assert used("train") <= set(levels[:4])


def test_ensure_synthetic_makes_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import model.synth as synth

    calls = []
    real = synth._build

    def counted_build(ref, options, *, replace):  # noqa: ANN001
        calls.append(ref)
        return real(ref, options, replace=replace)

    monkeypatch.setitem(synth.BUILT_IN, "synthetic", TINY)  # the defaults take ~1 s; keep the test quick
    monkeypatch.setattr(synth, "_build", counted_build)
    root = ensure_synthetic(tmp_path, "synthetic")
    assert (root / "train" / "blur" / "0000.png").is_file()
    before = _digests(root)
    assert ensure_synthetic(tmp_path, "synthetic") == root
    assert len(calls) == 1 and _digests(root) == before


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("n_train", 0),
        ("n_test", -1),
        ("n_train", 2.5),
        ("size", 8),
        ("size", 30),
        ("kernel_size", 4),
        ("kernel_size", 1),
        ("exposure", 0.0),
        ("exposure", 1.5),
        ("noise_sigma", -0.1),
        ("seed", -3),
    ],
)
def test_bad_arguments_name_themselves(tmp_path: Path, argument: str, value: object) -> None:
    message = one_line_error(ConfigError, synthesize, tmp_path, "bad", **{**TINY, argument: value})
    assert f"{argument}={value!r}" in message
    assert not (tmp_path / "bad").exists()


def test_bad_name_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="name"):
        synthesize(tmp_path, "a/b", **TINY)


def test_the_built_in_large_dataset_is_made_on_first_use_under_its_name(tmp_path: Path) -> None:
    from model.synth import BUILT_IN, ensure_dataset

    root = ensure_dataset(tmp_path, "synthetic_large")
    options = BUILT_IN["synthetic_large"]
    assert len(list((root / "train" / "blur").iterdir())) == options["n_train"] == 192
    assert len(list((root / "test" / "sharp").iterdir())) == options["n_test"] == 12
    stamp = (root / "train" / "blur" / "0000.png").stat().st_mtime_ns
    assert ensure_dataset(tmp_path, "synthetic_large") == root
    assert (root / "train" / "blur" / "0000.png").stat().st_mtime_ns == stamp  # made once
    with pytest.raises(DataError, match="synthetic_larger: dataset not found"):
        ensure_dataset(tmp_path, "synthetic_larger")
