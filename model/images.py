"""Image files: which files are images, reading one as float RGB, and writing 8-bit.

Every problem with a file (missing, empty, truncated, corrupt, too large) raises a one-line
:class:`~model.errors.DataError` naming it. NumPy and PIL only.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np

from model.errors import DataError

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_PIXELS",
    "as_float",
    "image_files",
    "image_header",
    "read_image",
    "read_pixels",
    "side_by_side",
    "to_uint8",
]

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
"""Suffixes read as images (compared lower-cased); other files are ignored."""

MAX_PIXELS: int = 40_000_000
"""Largest image (width x height) :func:`read_image` accepts; read at call time."""

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")

_T = TypeVar("_T")


def _one_line(err: BaseException) -> str:
    """The first line of an exception's text, so messages stay one line."""
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


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


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as float32 HxWx3 RGB in [0, 1].

    Greyscale is replicated to RGB, 16-bit images are scaled by 65535, alpha is dropped
    (not composited) and palettes are expanded. EXIF orientation is deliberately not
    applied: blur and sharp must align pixel for pixel as stored.

    Raises:
        DataError: Missing, empty, truncated or corrupt file, not an image, or more
            than :data:`MAX_PIXELS` pixels.
    """
    return as_float(read_pixels(path))


def read_pixels(path: str | Path) -> np.ndarray:
    """Read an image as stored: uint8 HxWx3 RGB for 8-bit images, float32 in [0, 1] otherwise.

    The compact form a dataset cache keeps; :func:`as_float` turns it into exactly what
    :func:`read_image` returns. Same conversions and errors as :func:`read_image`.
    """

    def decode(im: Any) -> np.ndarray:
        # PIL opens lazily; load() decodes now, so a truncated file raises here
        # (ImageFile.LOAD_TRUNCATED_IMAGES is left at its default, False).
        im.load()
        return _to_rgb(im)

    return _with_image(path, decode)


def image_header(path: str | Path) -> tuple[int, int, bool]:
    """``(width, height, eight_bit)`` of an image from its header, without decoding the pixels.

    ``eight_bit`` says :func:`read_pixels` will return uint8. Same errors as :func:`read_image`
    for files that cannot be opened (a truncated body is only found when decoding).
    """
    return _with_image(path, lambda im: (*im.size, not _is_wide(im.mode)))


def as_float(pixels: np.ndarray) -> np.ndarray:
    """Pixels from :func:`read_pixels` (or a window of them) as float32 in [0, 1]."""
    if pixels.dtype == np.uint8:
        # The division read_image always made, so cached and directly read images agree bit for bit.
        return pixels.astype(np.float32) / np.float32(255.0)
    return np.asarray(pixels, dtype=np.float32)


def _with_image(path: str | Path, use: Callable[[Any], _T]) -> _T:
    """Open ``path`` with PIL and return ``use(image)``, every failure as a one-line DataError."""
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
                return use(im)
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


def to_uint8(image: Any) -> np.ndarray:
    """An image as 8-bit for saving or showing: floats in [0, 1] are clipped (NaN as 0), scaled
    and rounded to the nearest level; integer images are clipped to 0-255; uint8 passes through.

    One rounding for every image the project writes: the synthetic dataset's bytes depend on it.
    """
    array = np.asarray(image)
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.floating):
        array = np.round(np.clip(np.nan_to_num(array), 0.0, 1.0) * 255.0)
    return np.clip(array, 0, 255).astype(np.uint8)


def side_by_side(images: Any) -> np.ndarray:
    """Images as one uint8 RGB strip, left to right (grey ones as RGB, shorter ones padded at
    the bottom): how a (blurred, restored, sharp) sample is shown and saved."""
    panels = [to_uint8(image) for image in images]
    panels = [np.repeat(p[..., None], 3, axis=-1) if p.ndim == 2 else p for p in panels]
    height = max(p.shape[0] for p in panels)
    return np.concatenate([np.pad(p, ((0, height - p.shape[0]), (0, 0), (0, 0))) for p in panels], axis=1)


def _check_pixels(path: Path, size: tuple[int, int]) -> None:
    width, height = size
    if width * height > MAX_PIXELS:
        raise DataError(
            f"{path}: image is {width}x{height} = {width * height:,} pixels, more than the limit of "
            f"{MAX_PIXELS:,} (model.images.MAX_PIXELS); downscale it"
        )


def _is_wide(mode: str) -> bool:
    """16-bit and float modes: kept as float32 rather than rounded to 8 bits."""
    return mode in _SIXTEEN_BIT or mode == "F"


def _to_rgb(im: Any) -> np.ndarray:
    """A loaded PIL image -> HxWx3: uint8 for 8-bit modes, float32 in [0, 1] for wider ones."""
    mode = im.mode
    if _is_wide(mode):
        # 16-bit greyscale PNG/TIFF ("I;16*", or "I" on some readers); float TIFF assumed in [0, 1].
        scale = 1.0 if mode == "F" else 65535.0
        grey = np.clip(np.asarray(im, dtype=np.float64) / scale, 0.0, 1.0).astype(np.float32)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=-1))
    if mode in ("LA", "La", "1"):
        im = im.convert("L")  # LA -> L drops alpha; "1" -> L gives 0/255
    elif mode not in ("L", "RGB"):
        im = im.convert("RGB")  # RGBA/RGBX/P/PA/CMYK/YCbCr...; RGBA -> RGB drops alpha
    pixels = np.asarray(im, dtype=np.uint8)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=-1)
    return np.ascontiguousarray(pixels)
