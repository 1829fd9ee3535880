"""Random camera-shake blur kernels and blurring with them.

Kernels follow Boracchi & Foi (2012) as implemented by DeblurGAN's ``Trajectory``/``PSF``:
a 2-D random walk with inertia, a pull back toward the origin, Gaussian shake and rare
impulsive jumps, rasterised by bilinear accumulation into a point-spread function.
Each kernel sums to 1 so blurring keeps brightness. NumPy and SciPy only.
"""

from __future__ import annotations

import math

import numpy as np

from model.errors import ConfigError
from model.params import int_arg

__all__ = ["blur", "exposure_arg", "is_real", "kernel_size_arg", "random_kernel", "trajectory"]


def trajectory(rng: np.random.Generator, *, length: float, num_t: int = 2000, expl: float = 0.005) -> np.ndarray:
    """A random camera-shake trajectory (Boracchi & Foi 2012, DeblurGAN's ``Trajectory``).

    The velocity has constant speed ``length / (num_t - 1)``; each step it is nudged by
    Gaussian shake, pulled toward the origin (centripetal term), and with probability
    ``prob_big_shake * expl`` kicked by an impulsive jump that roughly reverses it.
    The shake strengths are drawn once per trajectory, as in DeblurGAN.

    Args:
        rng: Source of all randomness.
        length: Path length travelled over the exposure, in pixels.
        num_t: Number of samples along the path.
        expl: Anisotropy/explosiveness; scales shake, pull and jump probability.

    Returns:
        Complex positions (x + iy), shape ``(num_t,)``, starting at 0.
    """
    if not length > 0:
        raise ConfigError(f"length={length!r}: must be > 0 pixels")
    if num_t < 2:
        raise ConfigError(f"num_t={num_t!r}: must be >= 2 samples")
    if not expl >= 0:
        raise ConfigError(f"expl={expl!r}: must be >= 0")
    centripetal = 0.7 * rng.uniform()
    prob_big_shake = 0.2 * rng.uniform()
    gaussian_shake = 10.0 * rng.uniform()
    angle = 2.0 * math.pi * rng.uniform()
    steps = num_t - 1
    # Draw every random number up front: one vectorised call each, same stream every time.
    jump_draws = rng.uniform(size=steps)
    jump_angles = rng.uniform(size=steps) - 0.5
    shakes = rng.standard_normal(steps) + 1j * rng.standard_normal(steps)

    speed = length / steps
    v = complex(math.cos(angle), math.sin(angle)) * (expl if expl > 0 else speed)
    position = 0j
    path = np.zeros(num_t, dtype=np.complex128)
    jump_chance = prob_big_shake * expl
    for t in range(steps):
        jump = 0j
        if jump_draws[t] < jump_chance:  # impulsive shake: roughly reverse, twice as fast
            jump = 2.0 * v * complex(math.cos(math.pi + jump_angles[t]), math.sin(math.pi + jump_angles[t]))
        v = v + jump + expl * (gaussian_shake * shakes[t] - centripetal * position) * speed
        magnitude = abs(v)
        if magnitude > 0:  # a zero velocity keeps its (renormalised) predecessor's direction
            v = v / magnitude * speed
        position += v
        path[t + 1] = position
    return path


def random_kernel(rng: np.random.Generator, *, kernel_size: int = 17, exposure: float = 1.0) -> np.ndarray:
    """A random camera-shake blur kernel (point-spread function).

    The trajectory's first ``exposure`` fraction is splatted bilinearly onto a
    ``kernel_size`` square, its centre of mass on the centre pixel (so blurring does not
    shift the image relative to its sharp partner), scaled down where needed to fit.
    The scale is set by the whole trajectory, so a shorter exposure is a part of the
    same shake, not a zoomed one.

    Args:
        rng: Source of all randomness.
        kernel_size: Odd side of the kernel, >= 3.
        exposure: Fraction of the trajectory exposed, in (0, 1].

    Returns:
        float64 ``(kernel_size, kernel_size)`` array, non-negative, summing to 1.
    """
    k = kernel_size_arg(kernel_size)
    exposure = exposure_arg(exposure)
    path = trajectory(rng, length=float(k), num_t=2000)
    used = path[: max(1, math.ceil(exposure * len(path)))]
    half = k // 2
    centre = used.mean()  # bilinear splatting preserves the centre of mass exactly

    def reach(points: np.ndarray, origin: complex) -> float:
        offsets = points - origin
        return float(max(np.abs(offsets.real).max(), np.abs(offsets.imag).max()))

    spread = max(reach(path, path.mean()), reach(used, centre), 1e-12)
    scale = min(1.0, half / spread)
    coords = complex(half, half) + (used - centre) * scale
    # Guard float round-off at the edges; the scale already keeps points inside.
    xs = np.clip(coords.real, 0.0, k - 1.0)
    ys = np.clip(coords.imag, 0.0, k - 1.0)
    kernel = np.zeros((k, k), dtype=np.float64)
    x0 = np.minimum(np.floor(xs).astype(np.int64), k - 2)
    y0 = np.minimum(np.floor(ys).astype(np.int64), k - 2)
    fx, fy = xs - x0, ys - y0
    for dy, dx, weight in (
        (0, 0, (1 - fy) * (1 - fx)),
        (0, 1, (1 - fy) * fx),
        (1, 0, fy * (1 - fx)),
        (1, 1, fy * fx),
    ):
        np.add.at(kernel, (y0 + dy, x0 + dx), weight)
    return kernel / kernel.sum()


def blur(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve each channel of an image with ``kernel`` (reflect boundary, same size).

    Args:
        image: HxWx3 (or HxW) float image in [0, 1].
        kernel: 2-D kernel.

    Returns:
        float64 array of the image's shape.
    """
    from scipy import ndimage

    image = np.asarray(image, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 2:
        raise ConfigError(f"kernel shape {kernel.shape}: must be 2-D")
    if image.ndim == 2:
        return ndimage.convolve(image, kernel, mode="reflect")
    if image.ndim != 3:
        raise ConfigError(f"image shape {image.shape}: must be HxW or HxWxC")
    # A (k, k, 1) kernel convolves every channel independently in one call.
    return ndimage.convolve(image, kernel[:, :, None], mode="reflect")


def kernel_size_arg(value: object) -> int:
    """A kernel side: an odd integer >= 3, so the kernel has a centre pixel.

    Raises:
        ConfigError: naming ``kernel_size=value`` and the nearest valid side.
    """
    k = int_arg("kernel_size", value, 17)
    if k < 3 or k % 2 == 0:
        fix = max(3, k + 1 if k % 2 == 0 else k)
        raise ConfigError(
            f"kernel_size={value!r}: must be an odd integer >= 3 so the kernel has a centre pixel; "
            f"use e.g. kernel_size={fix}"
        )
    return k


def is_real(value: object) -> bool:
    """A plain number (bools are ints to Python, but never a sensible exposure or sigma)."""
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))


def exposure_arg(value: object) -> float:
    """The exposed fraction of a shake trajectory, in (0, 1].

    Raises:
        ConfigError: naming ``exposure=value``.
    """
    if not is_real(value) or not 0 < value <= 1:  # type: ignore[operator]
        raise ConfigError(
            f"exposure={value!r}: must be in (0, 1], the fraction of the shake trajectory exposed; "
            "use e.g. exposure=1.0"
        )
    return float(value)
