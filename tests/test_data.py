"""DBlur-layout loading, image decoding, error messages, and the tf.data pipeline."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import model.images as images
from model.data import DatasetRef, Split, eval_arrays, list_pairs, load_split, train_pipeline
from model.errors import ConfigError, DataError
from model.images import read_image
from model.synth import synthesize
from tests.conftest import one_line_error

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> DatasetRef:
    out = tmp_path_factory.mktemp("data")
    synthesize(out, "tiny", n_train=4, n_test=2, size=32, seed=0, kernel_size=7)
    return DatasetRef(out, "tiny")


@pytest.fixture
def copy(synthetic: DatasetRef, tmp_path: Path) -> DatasetRef:
    """A private, writable copy of the synthetic dataset to break in one test."""
    shutil.copytree(synthetic.root, tmp_path / "ds")
    return DatasetRef(tmp_path, "ds")


def _save(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def _png_claiming_size(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims a huge size (checked before any pixel is decoded)."""
    _save(path, np.zeros((1, 1, 3), np.uint8))
    raw = bytearray(path.read_bytes())
    raw[16:24] = struct.pack(">II", width, height)
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))
    path.write_bytes(bytes(raw))
    return path


# --- layout ---------------------------------------------------------------------------


def test_import_is_light() -> None:
    code = "import model.data, model.synth, sys; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_pairs_listed_sorted_and_matched(copy: DatasetRef) -> None:
    (copy.root / "train" / "blur" / ".DS_Store").write_text("x")
    (copy.root / "train" / "sharp" / "README.txt").write_text("x")
    pairs = list_pairs(copy, "train")
    assert [b.name for b, _ in pairs] == ["0000.png", "0001.png", "0002.png", "0003.png"]
    for b, s in pairs:
        assert b.name == s.name and b.parent.name == "blur" and s.parent.name == "sharp"


def test_dataset_ref_validation(tmp_path: Path) -> None:
    assert DatasetRef(str(tmp_path), "x").root == tmp_path / "x"
    for bad in ["", "a/b", "..", 3]:
        with pytest.raises(ConfigError, match="name"):
            DatasetRef(tmp_path, bad)  # type: ignore[arg-type]


def test_bad_split_name(synthetic: DatasetRef) -> None:
    with pytest.raises(ConfigError, match="did you mean 'train'"):
        list_pairs(synthetic, "trian")


def test_missing_root(tmp_path: Path) -> None:
    ref = DatasetRef(tmp_path, "nope")
    assert str(ref.root) in one_line_error(DataError, list_pairs, ref, "train")


def test_missing_split(copy: DatasetRef) -> None:
    shutil.rmtree(copy.root / "test")
    assert str(copy.root / "test") in one_line_error(DataError, list_pairs, copy, "test")


def test_missing_sharp_folder(copy: DatasetRef) -> None:
    shutil.rmtree(copy.root / "train" / "sharp")
    assert str(copy.root / "train" / "sharp") in one_line_error(DataError, list_pairs, copy, "train")


def test_empty_split(copy: DatasetRef) -> None:
    for sub in ("blur", "sharp"):
        shutil.rmtree(copy.root / "test" / sub)
        (copy.root / "test" / sub).mkdir()
    assert str(copy.root / "test") in one_line_error(DataError, list_pairs, copy, "test")


@pytest.mark.parametrize(("kept", "lost", "file", "complaint"), [
    ("blur", "sharp", "0002.png", "no sharp partner"),
    ("sharp", "blur", "0001.png", "no blurred partner"),
])
def test_an_unpaired_image_is_named(copy: DatasetRef, kept: str, lost: str, file: str, complaint: str) -> None:
    (copy.root / "train" / lost / file).unlink()
    message = one_line_error(DataError, list_pairs, copy, "train")
    assert str(copy.root / "train" / kept / file) in message and complaint in message


# --- decoding -------------------------------------------------------------------------


def test_greyscale_to_rgb(tmp_path: Path) -> None:
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    out = read_image(_save(tmp_path / "g.png", grey, "L"))
    assert out.shape == (3, 4, 3) and out.dtype == np.float32
    for c in range(3):
        np.testing.assert_allclose(out[..., c], grey / 255, atol=1e-7)


def test_sixteen_bit_scaled(tmp_path: Path) -> None:
    deep = (np.arange(12).reshape(3, 4) * 5957).astype(np.uint16)
    path = _save(tmp_path / "d.png", deep)
    assert Image.open(path).mode.startswith("I")
    out = read_image(path)
    assert out.shape == (3, 4, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[..., 1], deep / 65535, atol=1e-6)
    assert out.max() <= 1.0


def test_rgba_alpha_dropped(tmp_path: Path) -> None:
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., 0], rgba[..., 2], rgba[..., 3] = 200, 50, 7
    out = read_image(_save(tmp_path / "a.png", rgba, "RGBA"))
    assert out.shape == (2, 3, 3)
    np.testing.assert_allclose(out[0, 0], [200 / 255, 0, 50 / 255], atol=1e-7)


def test_palette_image(tmp_path: Path) -> None:
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 1] = 255
    path = tmp_path / "p.png"
    Image.fromarray(rgb).convert("P").save(path)
    np.testing.assert_allclose(read_image(path)[0, 0], [0, 1, 0])


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    assert str(path) in one_line_error(DataError, read_image, path)


def test_truncated_png(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    path = _save(tmp_path / "cut.png", noise)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    assert str(path) in one_line_error(DataError, read_image, path)


def test_text_with_png_suffix(tmp_path: Path) -> None:
    path = tmp_path / "fake.png"
    path.write_text("not an image\n")
    message = one_line_error(DataError, read_image, path)
    assert str(path) in message and "not a readable image" in message


def test_too_many_pixels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _save(tmp_path / "big.png", np.zeros((20, 30, 3), np.uint8))
    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    message = one_line_error(DataError, read_image, path)
    assert str(path) in message and "30x20" in message and "100" in message


def test_decompression_bomb_header(tmp_path: Path) -> None:
    # Far beyond PIL's own bomb limit: its error is turned into ours, no pixel decoded.
    path = _png_claiming_size(tmp_path / "bomb.png", 20_000, 10_000)
    message = one_line_error(DataError, read_image, path)
    assert str(path) in message and "limit" in message


def test_corrupt_image_in_split_named(copy: DatasetRef) -> None:
    bad = copy.root / "test" / "sharp" / "0001.png"
    bad.write_bytes(b"")
    assert str(bad) in one_line_error(DataError, load_split, copy, "test")


def test_size_mismatch(copy: DatasetRef) -> None:
    _save(copy.root / "test" / "blur" / "0001.png", np.zeros((36, 32, 3), np.uint8))
    message = one_line_error(DataError, load_split, copy, "test")
    assert str(copy.root / "test" / "blur" / "0001.png") in message
    assert str(copy.root / "test" / "sharp" / "0001.png") in message


def test_load_split(synthetic: DatasetRef) -> None:
    split = load_split(synthetic, "train")
    assert split.names == ("0000.png", "0001.png", "0002.png", "0003.png")
    for b, s in zip(split.blur, split.sharp):
        assert b.shape == s.shape == (32, 32, 3) and b.dtype == s.dtype == np.float32
        assert 0 <= b.min() and b.max() <= 1


# --- pipeline -------------------------------------------------------------------------


def _first(split: Split, seed: int, batches: int = 2, **kwargs: int) -> list[tuple[np.ndarray, np.ndarray]]:
    options = {"patch_size": 16, "batch_size": 3, **kwargs}
    stream = iter(train_pipeline(split, seed=seed, **options))
    return [tuple(t.numpy() for t in next(stream)) for _ in range(batches)]  # type: ignore[misc]


def test_pipeline_shapes_and_range(synthetic: DatasetRef) -> None:
    (b, s), _ = _first(load_split(synthetic, "train"), seed=0)
    assert b.shape == s.shape == (3, 16, 16, 3) and b.dtype == s.dtype == np.float32
    assert 0 <= b.min() and b.max() <= 1 and 0 <= s.min() and s.max() <= 1


def test_pipeline_deterministic_per_seed(synthetic: DatasetRef) -> None:
    split = load_split(synthetic, "train")
    a, again, other = _first(split, seed=4), _first(split, seed=4), _first(split, seed=5)
    for (ab, as_), (gb, gs) in zip(a, again):
        np.testing.assert_array_equal(ab, gb)
        np.testing.assert_array_equal(as_, gs)
    assert not np.array_equal(a[0][0], other[0][0])


def test_a_stream_started_mid_way_is_the_same_stream_from_there(synthetic: DatasetRef) -> None:
    """What a resumed run relies on: start=k gives exactly the patches from the k-th on, across
    an epoch boundary of the split (4 pairs) and a batch boundary."""
    split = load_split(synthetic, "train")
    whole = _first(split, seed=2, batches=6, batch_size=1)
    later = _first(split, seed=2, batches=3, batch_size=1, start=3)
    for (wb, ws), (lb, ls) in zip(whole[3:], later):
        np.testing.assert_array_equal(wb, lb)
        np.testing.assert_array_equal(ws, ls)
    with pytest.raises(ConfigError, match="start=-1: must be >= 0"):
        train_pipeline(split, patch_size=16, batch_size=1, seed=0, start=-1)


def _mixed_split() -> Split:
    """Images of different sizes with unique pixel values, blur identical to sharp."""
    rng = np.random.default_rng(0)
    shapes = [(20, 24), (16, 40), (33, 17)]
    images = tuple(rng.permutation(h * w * 3).reshape(h, w, 3).astype(np.float32) / (h * w * 3) for h, w in shapes)
    return Split(names=("a.png", "b.png", "c.png"), blur=images, sharp=images, blur_dir=Path("/d/train/blur"))


def _source_of(patch: np.ndarray, images: tuple[np.ndarray, ...]) -> int:
    """Which image a patch (possibly flipped) was cut from, checking it is an exact window."""
    p = patch.shape[0]
    for index, image in enumerate(images):
        for flipped in (patch, patch[::-1], patch[:, ::-1], patch[::-1, ::-1]):
            hits = np.argwhere(image[..., 0] == flipped[0, 0, 0])
            for top, left in hits:
                if np.array_equal(image[top : top + p, left : left + p], flipped):
                    return index
    raise AssertionError("patch is not a window of any image")


def test_pipeline_crops_aligned_across_sizes_and_epochs() -> None:
    split = _mixed_split()
    batches = _first(split, seed=1, batches=3, patch_size=8, batch_size=3)
    # Blur == sharp, so the same crop and flips must give equal batches.
    for b, s in batches:
        np.testing.assert_array_equal(b, s)
    # Every epoch (3 elements here) visits each image exactly once, in a shuffled order.
    sources = [_source_of(patch, split.blur) for b, _ in batches for patch in b]
    for epoch in range(3):
        assert sorted(sources[3 * epoch : 3 * epoch + 3]) == [0, 1, 2]


def test_patch_larger_than_image() -> None:
    message = one_line_error(DataError, train_pipeline, _mixed_split(), patch_size=20, batch_size=1, seed=0)
    assert "/d/train/blur/b.png" in message and "40x16" in message and "20x20" in message


@pytest.mark.parametrize(("field", "value"), [("patch_size", 18), ("patch_size", 0), ("batch_size", 0)])
def test_pipeline_bad_sizes(field: str, value: int) -> None:
    options = {"patch_size": 8, "batch_size": 2, "seed": 0, field: value}
    with pytest.raises(ConfigError, match=f"{field}={value}"):
        train_pipeline(_mixed_split(), **options)


def test_eval_arrays_centre_crops() -> None:
    split = _mixed_split()
    crops = eval_arrays(split)
    assert [b.shape for b, _ in crops] == [(20, 24, 3), (16, 40, 3), (32, 16, 3)]
    for b, s in crops:
        assert b.shape[0] % 4 == 0 and b.shape[1] % 4 == 0 and b.flags.c_contiguous
        np.testing.assert_array_equal(b, s)
    np.testing.assert_array_equal(crops[2][0], split.blur[2][0:32, 0:16])
    capped = eval_arrays(split, max_size=18)
    assert [b.shape[:2] for b, _ in capped] == [(16, 16), (16, 16), (16, 16)]
    np.testing.assert_array_equal(capped[1][0], split.blur[1][:, 12:28])
    assert eval_arrays(split, max_size=None)[0][0].shape == (20, 24, 3)
