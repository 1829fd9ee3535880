"""What the benchmark modules share: the repository root, a tiny dataset and
a tiny trial, a layer's values and gradients, grid specs run through ``sweeper.dispatch.run``,
and a local Ray started as ``sweeper run`` starts it. Heavy libraries are imported inside the
functions that use them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

__all__ = [
    "Figures", "ROOT", "TINY_TRIAL", "ray_start", "ray_stop", "spec_doc", "timed_sweep", "tiny_dataset",
    "values_and_gradients",
]

ROOT = Path(__file__).resolve().parent.parent

Figures = dict[str, Any]

# The tiny trial of orchestration_overhead and load (concurrency's is larger).
TINY_TRIAL: dict[str, Any] = {"epochs": 1, "steps_per_epoch": 1, "batch_size": 2, "patch_size": 16}


def values_and_gradients(layer: Any, x: Any, upstream: Any) -> list[Any]:
    """A layer's output on ``x`` and the gradients of ``sum(output * upstream)`` (in float64, so
    the sum adds no rounding of its own) with respect to ``x`` and the layer's kernel, as tensors.
    The convolution benchmark times it; tests/test_architecture.py checks the same three values."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(tf.cast(y, tf.float64) * tf.cast(upstream, tf.float64))
    return [y, *tape.gradient(loss, [x, layer.kernel.value])]


def tiny_dataset(root: Path, size: int = 48) -> tuple[Path, str]:
    """A tiny synthetic dataset under ``root``; returns (dataset dir, name)."""
    from model.synth import synthesize

    synthesize(root, "tiny", n_train=4, n_test=2, size=size, seed=0, kernel_size=5)
    return root, "tiny"


def spec_doc(name: str, params: dict[str, Any], data: tuple[Path, str], *, cpu: float,
             max_concurrent: int) -> dict[str, Any]:
    """A grid spec document over ``params`` (lists become ``values``) on the CPU."""
    parameters = {k: {"values": v} if isinstance(v, list) else {"value": v} for k, v in params.items()}
    return {
        "name": name,
        "method": "grid",
        "metric": {"name": "val_psnr", "goal": "maximize"},
        "parameters": {"optimizer": {"value": "rmsprop"}, "loss": {"value": "mae"}, **parameters},
        "sweeper": {
            "dataset": {"dir": str(data[0]), "name": data[1]},
            "resources": {"cpu": cpu, "gpu": 0, "fallback": "cpu"},
            "max_concurrent": max_concurrent,
            "max_failures": 0,
        },
    }


def timed_sweep(spec: Any, results_dir: Path) -> tuple[float, Any]:
    """Run ``spec`` through ``sweeper.dispatch.run`` (W&B off); (wall seconds, ledger trials)."""
    from sweeper.dispatch import RunOptions, run
    from sweeper.ledger import Ledger

    t0 = time.perf_counter()
    summary = run(spec, RunOptions(results_dir=results_dir, wandb_mode="disabled", progress=False))
    seconds = time.perf_counter() - t0
    return seconds, Ledger(summary.sweep_dir, create=False).trials()


def ray_start() -> float:
    """Start a fresh local Ray exactly as ``sweeper run`` does; seconds taken.

    The sweeper's own connect (``address="local"``, loopback only, no dashboard), so a stale
    or foreign cluster is never joined and nothing listens beyond 127.0.0.1;
    ``sweeper.dispatch.run`` then finds Ray initialised and reuses it.
    """
    from sweeper.dispatch import connect

    t0 = time.perf_counter()
    connect(None)
    return time.perf_counter() - t0


def ray_stop() -> None:
    """Shut down the Ray :func:`ray_start` started."""
    import ray  # imported by ray_start already, after the loopback setting

    ray.shutdown()
