"""DBlur-layout dataset loader and the ``tf.data`` training pipeline.

A dataset lives at ``<dir>/<name>/{train,test}/{blur,sharp}/<same file names>``, the
layout of the curated collection of deblurring datasets. Pairs match by file name.
Every problem a user can cause (missing folder, unpaired or unreadable image, size
mismatch) raises a one-line :class:`~model.errors.DataError` naming the path.

Reading one image is :mod:`model.images`. TensorFlow is imported inside
:func:`train_pipeline` only, so listing and reading images (and ``sweeper data``/``report``)
stay light.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from model.errors import ConfigError, DataError, suggest
from model.images import IMAGE_SUFFIXES, image_files, read_image
from model.params import int_arg, side_arg

if TYPE_CHECKING:  # pragma: no cover - typing only
    import tensorflow as tf

__all__ = [
    "EVAL_MAX_SIZE",
    "DatasetRef",
    "Split",
    "SPLITS",
    "list_pairs",
    "load_split",
    "train_pipeline",
    "eval_arrays",
]

# Largest side of the centre crops a trial is scored on (training and the report's baseline).
EVAL_MAX_SIZE: int = 256

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
    p = side_arg("patch_size", patch_size)
    b = int_arg("batch_size", batch_size)
    if b < 1:
        raise ConfigError(f"batch_size={batch_size!r}: must be >= 1, e.g. batch_size=8")
    s = int_arg("seed", seed)
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
    m = int_arg("multiple", multiple)
    if m < 1:
        raise ConfigError(f"multiple={multiple!r}: must be >= 1, e.g. multiple=4")
    cap = None
    if max_size is not None:
        cap = int_arg("max_size", max_size)
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
