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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, overload

import numpy as np

from model.errors import ConfigError, DataError, suggest
from model.images import IMAGE_SUFFIXES, image_files, read_image
from model.params import int_arg, side_arg

if TYPE_CHECKING:  # pragma: no cover - typing only
    import tensorflow as tf

__all__ = [
    "EVAL_MAX_SIZE",
    "DatasetRef",
    "EvalCrops",
    "Pairs",
    "Split",
    "check_pair_sizes",
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

    def __len__(self) -> int:
        return len(self.names)

    def path(self, index: int) -> str:
        """The blurred image's path (or bare name) for messages."""
        name = self.names[index]
        return str(self.blur_dir / name) if self.blur_dir is not None else name

    def size(self, index: int) -> tuple[int, int]:
        """``(height, width)`` of pair ``index``."""
        height, width = self.blur[index].shape[:2]
        return int(height), int(width)

    def window(self, index: int, top: int, left: int, height: int, width: int) -> np.ndarray:
        """A float32 ``(height, width, 6)`` window of pair ``index``: blur RGB, then sharp RGB."""
        rows, cols = slice(top, top + height), slice(left, left + width)
        return np.concatenate([self.blur[index][rows, cols], self.sharp[index][rows, cols]], axis=-1)


class Pairs(Protocol):
    """What training and evaluation read: a split held in memory (:class:`Split`) or in the
    on-disk cache (:class:`model.cache.CachedSplit`), one window at a time."""

    names: tuple[str, ...]

    def __len__(self) -> int: ...

    def path(self, index: int) -> str: ...

    def size(self, index: int) -> tuple[int, int]: ...

    def window(self, index: int, top: int, left: int, height: int, width: int) -> np.ndarray: ...


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


def check_pair_sizes(blur_path: Path, blur_hw: Sequence[int], sharp_path: Path, sharp_hw: Sequence[int]) -> None:
    """Raise a one-line DataError unless a blurred image and its sharp partner have one size.

    Args:
        blur_path, sharp_path: The two files (named in the message).
        blur_hw, sharp_hw: Their ``(height, width)``.
    """
    if tuple(blur_hw) != tuple(sharp_hw):
        raise DataError(
            f"{blur_path}: size {blur_hw[1]}x{blur_hw[0]} differs from its sharp partner "
            f"{sharp_path} ({sharp_hw[1]}x{sharp_hw[0]})"
        )


def load_split(ref: DatasetRef, split: str) -> Split:
    """Read every pair of one split into memory as float32 (small datasets and tests; trials
    read through :func:`model.cache.open_split`, which holds nothing in memory).

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
        check_pair_sizes(blur_path, b.shape[:2], sharp_path, s.shape[:2])
        blurred.append(b)
        sharp.append(s)
    return Split(
        names=tuple(b.name for b, _ in pairs),
        blur=tuple(blurred),
        sharp=tuple(sharp),
        blur_dir=ref.root / split / "blur",
    )


def train_pipeline(
    pairs: Pairs, *, patch_size: int, batch_size: int, seed: int, start: int = 0
) -> "tf.data.Dataset":
    """An endless, deterministic stream of random training patches.

    Each element takes the next image of a per-epoch seeded permutation, crops the SAME
    random ``patch_size`` square from blur and sharp, and flips both left-right and
    up-down at random. All randomness is stateless, keyed by ``(seed, element index)``,
    so the stream depends on ``seed`` only (not on TensorFlow's global seed, nor on
    parallelism, nor on whether the pairs are in memory or in the disk cache). Only the
    patch is read: images may differ in size and the split may exceed memory.

    Patches are read by ``tf.numpy_function``: iterate in a function (as ``model.fit`` does)
    or ``del`` the iterator before the interpreter exits, since a live one deadlocks its
    reader threads at shutdown.

    Args:
        pairs: The split (:func:`model.cache.open_split`, or :func:`load_split` in memory).
        patch_size: Side of each square patch; a multiple of 4 (the network halves twice).
        batch_size: Patches per batch; the last partial batch never happens (infinite).
        seed: The stream's seed.
        start: Index of the first patch: a run resumed after ``k`` epochs of ``s`` steps passes
            ``k * s * batch_size`` and gets exactly the patches the uninterrupted run would.

    Returns:
        A ``tf.data.Dataset`` of ``(blur, sharp)`` float32 batches, shape
        ``(batch_size, patch_size, patch_size, 3)``.

    Raises:
        ConfigError: Bad ``patch_size``/``batch_size``/``seed``.
        DataError: An empty split, or an image smaller than the patch.
    """
    p = side_arg("patch_size", patch_size)
    b = int_arg("batch_size", batch_size, 8, minimum=1)
    s = int_arg("seed", seed)
    first = int_arg("start", start, 0, minimum=0)
    if not len(pairs):
        raise DataError(f"{getattr(pairs, 'blur_dir', None) or 'split'}: no image pairs to train on")
    for i in range(len(pairs)):
        h, w = pairs.size(i)
        if h < p or w < p:
            largest = min(h, w) - min(h, w) % 4
            raise DataError(
                f"{pairs.path(i)}: image is {w}x{h} pixels, smaller than the {p}x{p} patch; "
                f"use patch_size <= {largest} or larger images"
            )
    return _patch_stream(pairs, p, b, s, first)


def _patch_stream(pairs: Pairs, p: int, batch: int, seed: int, start: int) -> "tf.data.Dataset":
    import tensorflow as tf

    n = len(pairs)
    sizes = np.array([pairs.size(i) for i in range(n)], dtype=np.int64).reshape(n, 2)
    heights_t, widths_t = tf.constant(sizes[:, 0]), tf.constant(sizes[:, 1])
    seed_t = tf.constant(seed, tf.int64)

    def read(index: np.ndarray, top: np.ndarray, left: np.ndarray) -> np.ndarray:
        return pairs.window(int(index), int(top), int(left), p, p)

    def element(i: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        epoch, position = i // n, i % n
        # A fresh seeded permutation of the images every epoch (shuffling without a buffer).
        index = tf.random.experimental.index_shuffle(position, seed=tf.stack([seed_t, epoch]), max_index=n - 1)
        h, w = heights_t[index], widths_t[index]
        keys = tf.random.experimental.stateless_split(tf.stack([seed_t, i]), num=4)
        top = tf.random.stateless_uniform([], keys[0], minval=0, maxval=h - p + 1, dtype=tf.int64)
        left = tf.random.stateless_uniform([], keys[1], minval=0, maxval=w - p + 1, dtype=tf.int64)
        # Blur and sharp come as one 6-channel window, so one crop and one flip cut both alike.
        # Reading it in NumPy (from memory, or a pread of the cache file) keeps the split out
        # of the graph: nothing the size of the dataset is ever a tensor.
        patch = tf.numpy_function(read, [index, top, left], tf.float32, stateful=False)
        patch = tf.ensure_shape(patch, [p, p, 6])
        patch = tf.image.stateless_random_flip_left_right(patch, keys[2])
        patch = tf.image.stateless_random_flip_up_down(patch, keys[3])
        return patch[..., :3], patch[..., 3:]

    return (
        tf.data.Dataset.counter(start=start, dtype=tf.int64)
        .map(element, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(batch, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )


class EvalCrops(Sequence[tuple[np.ndarray, np.ndarray]]):
    """Deterministic centre crops of a split's pairs, read when indexed (so a large test split
    is never held in memory): ``crops[i]`` is ``(blur, sharp)``, float32 HxWx3 contiguous."""

    def __init__(self, pairs: Pairs, windows: Sequence[tuple[int, int, int, int]]) -> None:
        self._pairs = pairs
        self._windows = tuple(windows)

    def __len__(self) -> int:
        return len(self._windows)

    @overload
    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]: ...

    @overload
    def __getitem__(self, index: slice) -> list[tuple[np.ndarray, np.ndarray]]: ...

    def __getitem__(self, index: int | slice) -> tuple[np.ndarray, np.ndarray] | list[tuple[np.ndarray, np.ndarray]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        i = range(len(self))[index]  # negative indices, and IndexError past the end
        window = self._pairs.window(i, *self._windows[i])
        return np.ascontiguousarray(window[..., :3]), np.ascontiguousarray(window[..., 3:])


def eval_arrays(pairs: Pairs, *, multiple: int = 4, max_size: int | None = EVAL_MAX_SIZE) -> EvalCrops:
    """Deterministic centre crops of each pair for evaluation.

    Each side is cut to the largest multiple of ``multiple`` that fits (and at most
    ``max_size``, rounded down to a multiple, when given), centred.

    Returns:
        The crops, read one at a time when indexed; ``crops[i][0][None]`` is the model's input.

    Raises:
        ConfigError: Bad ``multiple``/``max_size``.
        DataError: An image smaller than ``multiple``.
    """
    m = int_arg("multiple", multiple, 4, minimum=1)
    cap = None
    if max_size is not None:
        cap = int_arg("max_size", max_size)
        if cap < m:
            raise ConfigError(f"max_size={max_size!r}: must be >= multiple ({m}) or None for full images")
        cap -= cap % m
    windows: list[tuple[int, int, int, int]] = []
    for i in range(len(pairs)):
        h, w = pairs.size(i)
        ch, cw = h - h % m, w - w % m
        if cap is not None:
            ch, cw = min(ch, cap), min(cw, cap)
        if ch == 0 or cw == 0:
            raise DataError(f"{pairs.path(i)}: image is {w}x{h} pixels, smaller than {m}x{m}; it cannot be evaluated")
        windows.append(((h - ch) // 2, (w - cw) // 2, ch, cw))
    return EvalCrops(pairs, windows)
