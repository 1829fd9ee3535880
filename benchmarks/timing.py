"""Timing helpers shared by the benchmark modules."""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Sequence

__all__ = ["later_epochs_rate", "median_seconds"]


def later_epochs_rate(history: Sequence[dict[str, Any]], images_per_epoch: int) -> float:
    """Images/s over epochs 2.. (epoch 1 is warm-up, tracing) from the cumulative
    ``images_per_second`` in a ``model.train`` history."""
    elapsed = [rec["epoch"] * images_per_epoch / rec["images_per_second"] for rec in history]
    if len(elapsed) < 2:
        return history[-1]["images_per_second"]
    return (len(elapsed) - 1) * images_per_epoch / (elapsed[-1] - elapsed[0])


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
