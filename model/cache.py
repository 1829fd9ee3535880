"""The dataset cache: each split decoded once per node into one file, read a window at a time.

A GoPro-size split (2,103 pairs of 1280x720) is 46 GB as float32; every trial holding it
in memory cannot work. Instead the first trial on a node decodes the split into
``<dataset>/.sweeper-cache/<split>-<fingerprint>/pixels.bin``: every pair's pixels as rows
of six channels (blur RGB, sharp RGB), uint8 for 8-bit images (float32 only when some image
is 16-bit or float). Trials read each patch with one ``pread`` of the rows it spans, so the
images live once in the kernel's page cache, shared by every trial on the node, and a
trial's own memory does not grow with the dataset.

The fingerprint hashes every file's name, size and modification time: editing, adding or
removing an image builds a fresh cache (and removes the stale one). Builds take a file lock,
so trials starting together build once. A dataset folder that cannot be written (a read-only
Kaggle input, say) caches under ``$SWEEPER_CACHE_DIR`` if set, else the user's cache folder
(``$XDG_CACHE_HOME`` or ``~/.cache``)/sweeper/datasets; ``SWEEPER_CACHE_DIR`` also moves
every cache (to a fast local disk, say).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from model.data import DatasetRef, check_pair_sizes, list_pairs
from model.errors import DataError
from model.images import as_float, image_header, read_pixels

__all__ = ["CACHE_DIRNAME", "CachedSplit", "open_split"]

CACHE_DIRNAME = ".sweeper-cache"
"""The cache's folder inside a dataset (hidden, so listings of images skip it)."""

_log = logging.getLogger(__name__)

_FORMAT = 1  # bump when the file layout changes: old caches then fail the fingerprint
_INDEX, _PIXELS = "index.json", "pixels.bin"
_SPARE_BYTES = 256 * 2**20  # left free on the disk after a build


class CachedSplit:
    """One split in the cache: sizes in memory, pixels on disk, read by window.

    Implements :class:`model.data.Pairs`, like the in-memory :class:`model.data.Split`, and
    gives the same float32 values bit for bit.

    Attributes:
        names: File names, sorted, as in :func:`model.data.list_pairs`.
        file: The pixels file.
        blur_dir: The split's ``blur/`` folder (for messages).
    """

    def __init__(self, folder: Path, blur_dir: Path) -> None:
        index = json.loads((folder / _INDEX).read_text())
        self.names: tuple[str, ...] = tuple(index["names"])
        self.file = folder / _PIXELS
        self.blur_dir = blur_dir
        self._dtype = np.dtype(index["dtype"])
        self._heights = np.asarray(index["heights"], dtype=np.int64)
        self._widths = np.asarray(index["widths"], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(self._heights * self._widths)[:-1]]).astype(np.int64)
        # Opened now, so a rebuild that removes this (stale) cache cannot pull it away mid-trial.
        self._fd, self._pid = os.open(self.file, os.O_RDONLY), os.getpid()

    def __len__(self) -> int:
        return len(self.names)

    def __del__(self) -> None:
        if getattr(self, "_pid", None) == os.getpid():
            os.close(self._fd)

    def path(self, index: int) -> str:
        """The blurred image's path, for messages."""
        return str(self.blur_dir / self.names[index])

    def size(self, index: int) -> tuple[int, int]:
        """``(height, width)`` of pair ``index``."""
        return int(self._heights[index]), int(self._widths[index])

    def window(self, index: int, top: int, left: int, height: int, width: int) -> np.ndarray:
        """A float32 ``(height, width, 6)`` window of pair ``index``: blur RGB, then sharp RGB.

        One ``pread`` of the ``height`` full rows it spans; safe from many threads at once.

        Raises:
            DataError: The cache file is shorter than its index says (damaged).
        """
        full = int(self._widths[index])
        pixel = 6 * self._dtype.itemsize
        offset = (int(self._starts[index]) + top * full) * pixel
        want = height * full * pixel
        data = os.pread(self._descriptor(), want, offset)
        if len(data) != want:
            raise DataError(
                f"{self.file}: dataset cache is damaged (read {len(data)} of {want} bytes at {offset}); "
                f"delete {self.file.parent} and run again to rebuild it"
            )
        rows = np.frombuffer(data, dtype=self._dtype).reshape(height, full, 6)
        return as_float(rows[:, left : left + width])

    def _descriptor(self) -> int:
        # One descriptor per process (pread keeps no shared offset, so threads may share it);
        # a forked child opens its own.
        if self._pid != os.getpid():
            self._fd, self._pid = os.open(self.file, os.O_RDONLY), os.getpid()
        return self._fd


def open_split(ref: DatasetRef, split: str, *, workers: int | None = None) -> CachedSplit:
    """The split through the node's cache, built first if it is missing or stale.

    Args:
        ref: The dataset.
        split: ``"train"`` or ``"test"``.
        workers: Threads decoding images while building (default: up to 4, one per CPU).

    Raises:
        ConfigError: Bad ``split``.
        DataError: Anything :func:`model.data.list_pairs` or reading an image raises, a pair
            of two sizes, or a cache that cannot be written (the folder and the cause named).
    """
    pairs = list_pairs(ref, split)
    fingerprint = _fingerprint(split, pairs)
    base = _cache_base(ref)
    folder = base / f"{split}-{fingerprint}"
    blur_dir = ref.root / split / "blur"
    if not _complete(folder):
        with _locked(base / f"{split}.lock"):
            if not _complete(folder):  # another process may have built it meanwhile
                if folder.exists():
                    _log.warning("%s: dataset cache is damaged (wrong size); building it again", folder)
                    shutil.rmtree(folder)
                _build(folder, pairs, workers)
                _remove_stale(base, split, keep=folder)
    return CachedSplit(folder, blur_dir)


def _complete(folder: Path) -> bool:
    """The cache was fully built and its pixels file still has the size its index says."""
    try:
        index = json.loads((folder / _INDEX).read_text())
        pixels = sum(h * w for h, w in zip(index["heights"], index["widths"], strict=True))
        return (folder / _PIXELS).stat().st_size == pixels * 6 * np.dtype(index["dtype"]).itemsize
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _fingerprint(split: str, pairs: list[tuple[Path, Path]]) -> str:
    digest = hashlib.sha256(f"{_FORMAT}:{split}".encode())
    for blur, sharp in pairs:
        for path in (blur, sharp):
            try:
                stat = path.stat()
            except OSError as err:
                raise DataError(f"{path}: cannot read ({err.strerror})") from None
            digest.update(f"{path.parent.name}/{path.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()[:16]


def _cache_base(ref: DatasetRef) -> Path:
    """Where this dataset's caches live: the env override, the dataset, or the user's cache."""
    override = os.environ.get("SWEEPER_CACHE_DIR")
    user = Path(override) if override else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sweeper"
    elsewhere = user / "datasets" / f"{ref.name}-{hashlib.sha256(str(ref.root.resolve()).encode()).hexdigest()[:12]}"
    candidates = [elsewhere] if override else [ref.root / CACHE_DIRNAME, elsewhere]
    reasons = []
    for base in candidates:
        try:
            base.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=base):  # a unique probe: trials and threads try at once
                return base
        except OSError as err:
            reasons.append(f"{base} ({err.strerror or err})")
            _log.debug("dataset cache not at %s: %s", base, err)
    raise DataError(f"{ref.root}: no writable folder for the dataset cache: {'; '.join(reasons)}; "
                    "set SWEEPER_CACHE_DIR to a writable folder")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # waits while another trial builds
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(folder: Path, pairs: list[tuple[Path, Path]], workers: int | None) -> None:
    """Decode every pair into ``folder`` (written beside it, then renamed into place)."""
    heights, widths, wide = [], [], False
    for blur, sharp in pairs:
        bw, bh, b8 = image_header(blur)
        sw, sh, s8 = image_header(sharp)
        check_pair_sizes(blur, (bh, bw), sharp, (sh, sw))
        heights.append(bh)
        widths.append(bw)
        wide = wide or not (b8 and s8)
    dtype = np.dtype(np.float32 if wide else np.uint8)
    pixels = np.asarray(heights, dtype=np.int64) * np.asarray(widths, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(pixels)[:-1]]) * 6 * dtype.itemsize
    total = int(pixels.sum()) * 6 * dtype.itemsize
    free = shutil.disk_usage(folder.parent).free
    if free < total + _SPARE_BYTES:
        raise DataError(f"{folder.parent}: the dataset cache needs {_amount(total)} and the disk has "
                        f"{_amount(free)} free; free space or set SWEEPER_CACHE_DIR to a larger disk")
    staging = folder.with_name(f".{folder.name}.building")
    shutil.rmtree(staging, ignore_errors=True)  # left by a build that was killed
    _log.info("caching %d image pairs (%s, %s) in %s", len(pairs), _amount(total), dtype.name, folder)
    try:
        staging.mkdir()
        fd = os.open(staging / _PIXELS, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.ftruncate(fd, total)

            def write(i: int) -> None:
                blur, sharp = (read_pixels(path) for path in pairs[i])
                for path, image in zip(pairs[i], (blur, sharp)):
                    if image.shape[:2] != (heights[i], widths[i]) or image.dtype.itemsize > dtype.itemsize:
                        raise DataError(f"{path}: decoded image differs from its header "
                                        f"({image.shape[1]}x{image.shape[0]} {image.dtype})")
                rows = np.concatenate([_as(blur, dtype), _as(sharp, dtype)], axis=-1)
                os.pwrite(fd, rows.tobytes(), int(starts[i]))

            threads = workers or max(1, min(4, os.cpu_count() or 1))
            with ThreadPoolExecutor(threads) as pool:
                # list() re-raises the first error; threads keep at most `threads` pairs in memory.
                list(pool.map(write, range(len(pairs))))
            os.fsync(fd)
        finally:
            os.close(fd)
        index = {"format": _FORMAT, "dtype": dtype.name, "names": [b.name for b, _ in pairs],
                 "heights": heights, "widths": widths}
        (staging / _INDEX).write_text(json.dumps(index) + "\n")
        os.replace(staging, folder)
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        full = " (disk full)" if err.errno == errno.ENOSPC else ""
        raise DataError(f"{staging}: cannot write the dataset cache{full} ({err.strerror or err}); "
                        "set SWEEPER_CACHE_DIR to a writable folder with space") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _amount(nbytes: int) -> str:
    return f"{nbytes / 2**30:.2f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


def _as(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return image if image.dtype == dtype else as_float(image)


def _remove_stale(base: Path, split: str, *, keep: Path) -> None:
    """Drop this split's caches of earlier versions of the dataset (they only take disk)."""
    for old in base.glob(f"{split}-*"):
        if old != keep and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
            _log.info("removed the stale dataset cache %s", old)
