"""TensorFlow runtime set-up for one process: CPU threads, GPU memory growth, determinism.

Must run before TensorFlow executes its first op (thread pools are fixed after that);
the Ray trainable calls it first thing in each worker with the CPUs Ray granted.
"""

from __future__ import annotations

import logging
import os

__all__ = ["configure_runtime", "RuntimeInfo"]

_log = logging.getLogger(__name__)

# Keep TensorFlow's C++ start-up chatter (CPU feature banners, oneDNN notes) out of
# the user's terminal; real errors still surface as Python exceptions.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class RuntimeInfo(dict):
    """What :func:`configure_runtime` set: ``{"cpus", "gpus", "deterministic"}``."""


def configure_runtime(cpus: int | None = None, *, deterministic: bool = True) -> RuntimeInfo:
    """Pin TensorFlow to ``cpus`` threads, let GPU memory grow, and make CPU runs repeatable.

    Args:
        cpus: Intra-op threads (the CPUs the scheduler granted); ``None`` keeps TF's default.
        deterministic: Enable op determinism when no GPU is visible, so the same params and
            seed give the same numbers on CPU. On GPU it is left off: deterministic cuDNN
            kernels are much slower, and GPU sweeps compare across seeds anyway.

    Returns:
        The settings applied. Calling it after TensorFlow has started keeps the thread
        settings already in force (logged, not raised): they cannot change then.
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            # Without growth TF grabs the whole card at start-up, which breaks fractional
            # GPU sharing between trials and co-located processes.
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError as err:  # already initialised
            _log.debug("memory growth not set on %s: %s", gpu.name, err)
    if cpus is not None:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(max(1, int(cpus)))
            tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, int(cpus))))
        except RuntimeError as err:
            _log.debug("thread counts not changed: %s", err)
    det = bool(deterministic and not gpus)
    if det:
        tf.config.experimental.enable_op_determinism()
    return RuntimeInfo(cpus=cpus, gpus=len(gpus), deterministic=det)
