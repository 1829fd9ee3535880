"""A trial's data path run in a fresh interpreter, for its peak memory.

Shared by the ``dataset_scale`` benchmark (:mod:`benchmarks.scale`) and by
``tests/test_cache.py``: each gives what its trial does with the data, this module the rest,
so both measure alike: a fresh process (a trial's own memory, not the caller's), one
TensorFlow thread as a 1-CPU trial has, the split read through the node's cache or decoded
in memory, and the peak resident set (``VmHWM``) read back.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from benchmarks.common import ROOT

__all__ = ["peak_rss_mib"]

# Defines `ref` and `split(name)` (that split of the dataset, cached or decoded in memory), and
# imports train_pipeline and eval_arrays, for the trial's code that follows.
_PRELUDE = """
import sys
from model.runtime import configure_runtime
configure_runtime(1)
from model.cache import open_split
from model.data import DatasetRef, eval_arrays, load_split, train_pipeline
ref = DatasetRef(sys.argv[1], sys.argv[2])
def split(name):
    return open_split(ref, name) if sys.argv[3] == "cache" else load_split(ref, name)
"""
_PRINT_PEAK = """
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so a child would report its parent's peak
print(next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')))
"""


def peak_rss_mib(trial: str, dataset: tuple[Path | str, str], how: str, *, timeout: float) -> float:
    """The peak RSS of ``trial`` run on ``dataset`` in a fresh interpreter.

    Args:
        trial: Python source run with ``ref`` (the :class:`~model.data.DatasetRef`),
            ``split(name)``, ``train_pipeline`` and ``eval_arrays`` defined.
        dataset: (the folder holding datasets, the dataset's name).
        how: ``"cache"`` (read through the node's cache) or ``"memory"`` (decoded in memory).
        timeout: Seconds the child may take.

    Returns:
        The child's peak resident set, in MiB.

    Raises:
        RuntimeError: the child failed (with the tail of its stderr).
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", _PRELUDE + trial + _PRINT_PEAK, str(dataset[0]), dataset[1], how],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"the trial exited {done.returncode}: {done.stderr[-2000:]}")
    return int(done.stdout.split()[-1]) / 1024  # VmHWM is in KiB
