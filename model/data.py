"""DBlur-layout dataset loader and the ``tf.data`` training pipeline.

A dataset lives at ``<dir>/<name>/{train,test}/{blur,sharp}/<same file names>``, the
layout of the curated collection of deblurring datasets. Pairs match by file name.
Every problem a user can cause (missing folder, unpaired or unreadable image, size
mismatch) raises a one-line :class:`~model.errors.DataError` naming the path.

TensorFlow is imported inside :func:`train_pipeline` only, so listing and reading
images (and ``sweeper data``/``report``) stay light.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from model.errors import ConfigError, DataError, suggest

if TYPE_CHECKING:  # pragma: no cover - typing only
    import tensorflow as tf

__all__ = [
    "EVAL_MAX_SIZE",
    "DatasetRef",
    "Split",
    "IMAGE_SUFFIXES",
    "MAX_PIXELS",
    "SPLITS",
    "image_files",
    "list_pairs",
    "read_image",
    "load_split",
    "train_pipeline",
    "eval_arrays",
]

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
"""Suffixes read as images (compared lower-cased); other files are ignored."""

MAX_PIXELS: int = 40_000_000
# Largest side of the centre crops a trial is scored on (training and the report's baseline).
EVAL_MAX_SIZE: int = 256
"""Largest image (width x height) :func:`read_image` accepts; read at call time."""

SPLITS: tuple[str, ...] = ("train", "test")

_LAYOUT = "<dir>/<name>/{train,test}/{blur,sharp}/<same file names>"
_SUFFIX_LIST = ", ".join(IMAGE_SUFFIXES)


@dataclass(frozen=True)
class DatasetRef:
    """Where a dataset lives: ``dir / name`` holds the ``train`` and ``test`` splits.

    Attributes:
        dir: The folder holding datasets (the write-up's ``--dataset_dir``).
        name: The dataset's folder name inside ``dir`` (``--dataset_name``).
    """

    dir: Path
    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.dir, (str, os.PathLike)):
            raise ConfigError(f"DatasetRef dir={self.dir!r}: must be a folder path, e.g. dir='data'")
        # Frozen dataclass: normalise str -> Path through object.__setattr__.
        object.__setattr__(self, "dir", Path(self.dir))
        name = self.name
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"DatasetRef name={name!r}: must be a non-empty folder name, e.g. name='synthetic'")
        separators = {"/", "\\", os.sep} | ({os.altsep} if os.altsep else set())
        if any(sep in name for sep in separators) or name in (".", ".."):
            raise ConfigError(
                f"DatasetRef name={name!r}: must be a single folder name without path separators; "
                "put the parent folders in dir"
            )

    @property
    def root(self) -> Path:
        """The dataset folder, ``dir / name``."""
        return self.dir / self.name


@dataclass(frozen=True)
class Split:
    """One split, decoded: float32 HxWx3 arrays in [0, 1], ``blur[i]`` pairs with ``sharp[i]``.

    Attributes:
        names: File names, sorted; the same in ``blur/`` and ``sharp/``.
        blur: Blurred images.
        sharp: Sharp images, each the size of its blurred partner.
        blur_dir: The ``blur/`` folder the names live in (for error messages), if known.
    """

    names: tuple[str, ...]
    blur: tuple[np.ndarray, ...]
    sharp: tuple[np.ndarray, ...]
    blur_dir: Path | None = None

    def __post_init__(self) -> None:
        if not len(self.names) == len(self.blur) == len(self.sharp):
            raise ValueError(
                f"Split needs as many names as blur and sharp images, got "
                f"{len(self.names)}, {len(self.blur)}, {len(self.sharp)}"
            )

    def path(self, index: int) -> str:
        """The blurred image's path (or bare name) for messages."""
        name = self.names[index]
        return str(self.blur_dir / name) if self.blur_dir is not None else name


def _one_line(err: BaseException) -> str:
    """The first line of an exception's text, so messages stay one line."""
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _as_int(field: str, value: Any) -> int:
    """An integer argument, rejecting bools and floats (``24.0`` is a typo for a count)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{field}={value!r}: must be an integer")
    return int(value)


def image_files(folder: str | Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name.

    Hidden files (dotfiles, e.g. macOS ``._x.png``) and files whose suffix is not in
    :data:`IMAGE_SUFFIXES` are ignored.

    Raises:
        DataError: ``folder`` does not exist or is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "folder not found"
        raise DataError(f"{folder}: {what}")
    wanted = (p for p in folder.iterdir() if not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)
    return sorted((p for p in wanted if p.is_file()), key=lambda p: p.name)


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ConfigError(f"split={split!r}: must be 'train' or 'test'{suggest(str(split), SPLITS)}")
    return split


def list_pairs(ref: DatasetRef, split: str) -> list[tuple[Path, Path]]:
    """The (blurred, sharp) file pairs of one split, sorted by file name.

    Args:
        ref: The dataset.
        split: ``"train"`` or ``"test"``.

    Raises:
        ConfigError: ``split`` is not ``train``/``test``.
        DataError: Missing dataset, split or ``blur``/``sharp`` folder; no images;
            an image without its partner (the first one is named, with a count of the rest).
    """
    _check_split(split)
    root = ref.root
    if not root.is_dir():
        raise DataError(
            f"{root}: dataset folder not found; expected the layout {_LAYOUT}, "
            "or make one with `sweeper data synth`"
        )
    split_dir = root / split
    if not split_dir.is_dir():
        raise DataError(f"{split_dir}: split folder not found; expected {split}/blur and {split}/sharp in {root}")
    blur_dir, sharp_dir = split_dir / "blur", split_dir / "sharp"
    for sub in (blur_dir, sharp_dir):
        if not sub.is_dir():
            raise DataError(f"{sub}: folder not found; each split needs blur/ and sharp/ with the same file names")
    blurred = {p.name: p for p in image_files(blur_dir)}
    sharp = {p.name: p for p in image_files(sharp_dir)}
    if not blurred and not sharp:
        raise DataError(f"{split_dir}: no images in blur/ or sharp/ (looked for {_SUFFIX_LIST})")
    _check_partners(blurred, sharp, sharp_dir, "blurred", "sharp")
    _check_partners(sharp, blurred, blur_dir, "sharp", "blurred")
    return [(blurred[name], sharp[name]) for name in sorted(blurred)]


def _check_partners(
    have: dict[str, Path], other: dict[str, Path], other_dir: Path, kind: str, other_kind: str
) -> None:
    """Raise for the first file in ``have`` without a same-named file in ``other``."""
    missing = sorted(set(have) - set(other))
    if not missing:
        return
    first = have[missing[0]]
    stem_twins = [n for n in other if Path(n).stem == first.stem]
    hint = f" (found {stem_twins[0]}: partners need the same file name, suffix included)" if stem_twins else ""
    more = f"; {len(missing) - 1} more unpaired" if len(missing) > 1 else ""
    raise DataError(f"{first}: {kind} image has no {other_kind} partner {other_dir / first.name}{hint}{more}")


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as float32 HxWx3 RGB in [0, 1].

    Greyscale is replicated to RGB, 16-bit images are scaled by 65535, alpha is dropped
    (not composited) and palettes are expanded. EXIF orientation is deliberately not
    applied: blur and sharp must align pixel for pixel as stored.

    Raises:
        DataError: Missing, empty, truncated or corrupt file, not an image, or more
            than :data:`MAX_PIXELS` pixels.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        nbytes = path.stat().st_size
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or _one_line(err)})") from None
    if nbytes == 0:
        raise DataError(f"{path}: empty file (0 bytes), not an image")
    try:
        with warnings.catch_warnings():
            # Our own MAX_PIXELS guard (below PIL's bomb limit) gives the message; PIL's
            # warning is noise and PIL's hard error is translated in the except below.
            # Palette-with-transparency conversion warnings are noise too.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)
            with Image.open(path) as im:
                _check_pixels(path, im.size)
                # PIL opens lazily; load() decodes now, so a truncated file raises here
                # (ImageFile.LOAD_TRUNCATED_IMAGES is left at its default, False).
                im.load()
                return _to_rgb_float(im)
    except DataError:
        raise
    except Image.DecompressionBombError as err:
        found = re.search(r"\((\d+) pixels\)", str(err))
        pixels = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
        raise DataError(f"{path}: image has {pixels}, more than the limit of {MAX_PIXELS:,}; downscale it") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: not a readable image (not an image file, or an unsupported format)") from None
    except MemoryError:
        raise
    except Exception as err:  # noqa: BLE001 - corrupt data makes PIL plugins raise almost anything
        raise DataError(f"{path}: corrupt or truncated image ({_one_line(err)})") from None


def _check_pixels(path: Path, size: tuple[int, int]) -> None:
    width, height = size
    if width * height > MAX_PIXELS:
        raise DataError(
            f"{path}: image is {width}x{height} = {width * height:,} pixels, more than the limit of "
            f"{MAX_PIXELS:,} (model.data.MAX_PIXELS); downscale it"
        )


_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _to_rgb_float(im: Any) -> np.ndarray:
    """A loaded PIL image -> float32 HxWx3 in [0, 1]."""
    mode = im.mode
    if mode in _SIXTEEN_BIT or mode == "F":
        # 16-bit greyscale PNG/TIFF ("I;16*", or "I" on some readers); float TIFF assumed in [0, 1].
        scale = 1.0 if mode == "F" else 65535.0
        grey = np.clip(np.asarray(im, dtype=np.float64) / scale, 0.0, 1.0).astype(np.float32)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=-1))
    if mode in ("LA", "La", "1"):
        im = im.convert("L")  # LA -> L drops alpha; "1" -> L gives 0/255
    elif mode not in ("L", "RGB"):
        im = im.convert("RGB")  # RGBA/RGBX/P/PA/CMYK/YCbCr...; RGBA -> RGB drops alpha
    pixels = np.asarray(im, dtype=np.float32) / np.float32(255.0)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=-1)
    return np.ascontiguousarray(pixels)


def load_split(ref: DatasetRef, split: str) -> Split:
    """Read every pair of one split into memory.

    Raises:
        ConfigError: Bad ``split``.
        DataError: Anything :func:`list_pairs` or :func:`read_image` raises, or a pair
            whose blurred and sharp images differ in size.
    """
    pairs = list_pairs(ref, split)
    blurred: list[np.ndarray] = []
    sharp: list[np.ndarray] = []
    for blur_path, sharp_path in pairs:
        b, s = read_image(blur_path), read_image(sharp_path)
        if b.shape != s.shape:
            raise DataError(
                f"{blur_path}: size {b.shape[1]}x{b.shape[0]} differs from its sharp partner "
                f"{sharp_path} ({s.shape[1]}x{s.shape[0]})"
            )
        blurred.append(b)
        sharp.append(s)
    return Split(
        names=tuple(b.name for b, _ in pairs),
        blur=tuple(blurred),
        sharp=tuple(sharp),
        blur_dir=ref.root / split / "blur",
    )


def train_pipeline(split: Split, *, patch_size: int, batch_size: int, seed: int) -> "tf.data.Dataset":
    """An endless, deterministic stream of random training patches.

    Each element takes the next image of a per-epoch seeded permutation, crops the SAME
    random ``patch_size`` square from blur and sharp, and flips both left-right and
    up-down at random. All randomness is stateless, keyed by ``(seed, element index)``,
    so the stream depends on ``seed`` only (not on TensorFlow's global seed, nor on
    parallelism). The decoded images are held once in memory as one tensor (the cache);
    images may differ in size.

    Args:
        split: Decoded images (:func:`load_split`).
        patch_size: Side of each square patch; a multiple of 4 (the network halves twice).
        batch_size: Patches per batch; the last partial batch never happens (infinite).
        seed: The stream's seed.

    Returns:
        A ``tf.data.Dataset`` of ``(blur, sharp)`` float32 batches, shape
        ``(batch_size, patch_size, patch_size, 3)``.

    Raises:
        ConfigError: Bad ``patch_size``/``batch_size``/``seed``.
        DataError: An empty split, or an image smaller than the patch.
    """
    p = _as_int("patch_size", patch_size)
    if p < 4 or p % 4:
        fix = max(4, p - p % 4)
        raise ConfigError(
            f"patch_size={patch_size!r}: must be a positive multiple of 4 (the network halves it twice); "
            f"use e.g. patch_size={fix}"
        )
    b = _as_int("batch_size", batch_size)
    if b < 1:
        raise ConfigError(f"batch_size={batch_size!r}: must be >= 1, e.g. batch_size=8")
    s = _as_int("seed", seed)
    if not split.names:
        raise DataError(f"{split.blur_dir or 'split'}: no image pairs to train on")
    for i, image in enumerate(split.blur):
        h, w = image.shape[:2]
        if h < p or w < p:
            largest = min(h, w) - min(h, w) % 4
            raise DataError(
                f"{split.path(i)}: image is {w}x{h} pixels, smaller than the {p}x{p} patch; "
                f"use patch_size <= {largest} or larger images"
            )
    return _patch_stream(split, p, b, s)


def _patch_stream(split: Split, p: int, batch: int, seed: int) -> "tf.data.Dataset":
    import tensorflow as tf

    n = len(split.names)
    heights = np.array([im.shape[0] for im in split.blur], dtype=np.int64)
    widths = np.array([im.shape[1] for im in split.blur], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(heights * widths)[:-1]]).astype(np.int64)
    # Every pair as one (sum of H*W, 6) tensor of rows: blur RGB then sharp RGB per pixel,
    # so one crop cuts both alike. Different image sizes need no ragged types, and the
    # map below slices only the rows a patch needs instead of copying whole images.
    rows = tf.constant(
        np.concatenate([np.concatenate([bl, sh], axis=-1).reshape(-1, 6) for bl, sh in zip(split.blur, split.sharp)])
    )
    heights_t, widths_t, starts_t = tf.constant(heights), tf.constant(widths), tf.constant(starts)
    seed_t = tf.constant(seed, tf.int64)

    def element(i: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        epoch, position = i // n, i % n
        # A fresh seeded permutation of the images every epoch (shuffling without a buffer).
        index = tf.random.experimental.index_shuffle(position, seed=tf.stack([seed_t, epoch]), max_index=n - 1)
        h, w, start = heights_t[index], widths_t[index], starts_t[index]
        keys = tf.random.experimental.stateless_split(tf.stack([seed_t, i]), num=4)
        top = tf.random.stateless_uniform([], keys[0], minval=0, maxval=h - p + 1, dtype=tf.int64)
        left = tf.random.stateless_uniform([], keys[1], minval=0, maxval=w - p + 1, dtype=tf.int64)
        band = tf.reshape(rows[start + top * w : start + (top + p) * w], tf.stack([p, w, 6]))
        patch = tf.reshape(band[:, left : left + p, :], [p, p, 6])
        patch = tf.image.stateless_random_flip_left_right(patch, keys[2])
        patch = tf.image.stateless_random_flip_up_down(patch, keys[3])
        return patch[..., :3], patch[..., 3:]

    return (
        tf.data.Dataset.counter(dtype=tf.int64)
        .map(element, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(batch, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def eval_arrays(split: Split, *, multiple: int = 4, max_size: int | None = EVAL_MAX_SIZE) -> list[tuple[np.ndarray, np.ndarray]]:
    """Deterministic centre crops of each pair for evaluation.

    Each side is cut to the largest multiple of ``multiple`` that fits (and at most
    ``max_size``, rounded down to a multiple, when given), centred.

    Returns:
        ``(blur, sharp)`` float32 HxWx3 contiguous arrays; ``a[None]`` is the model's input.

    Raises:
        ConfigError: Bad ``multiple``/``max_size``.
        DataError: An image smaller than ``multiple``.
    """
    m = _as_int("multiple", multiple)
    if m < 1:
        raise ConfigError(f"multiple={multiple!r}: must be >= 1, e.g. multiple=4")
    cap = None
    if max_size is not None:
        cap = _as_int("max_size", max_size)
        if cap < m:
            raise ConfigError(f"max_size={max_size!r}: must be >= multiple ({m}) or None for full images")
        cap -= cap % m
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for i, (blurred, sharp) in enumerate(zip(split.blur, split.sharp)):
        h, w = blurred.shape[:2]
        ch, cw = h - h % m, w - w % m
        if cap is not None:
            ch, cw = min(ch, cap), min(cw, cap)
        if ch == 0 or cw == 0:
            raise DataError(f"{split.path(i)}: image is {w}x{h} pixels, smaller than {m}x{m}; it cannot be evaluated")
        top, left = (h - ch) // 2, (w - cw) // 2
        window = (slice(top, top + ch), slice(left, left + cw))
        out.append((np.ascontiguousarray(blurred[window]), np.ascontiguousarray(sharp[window])))
    return out
