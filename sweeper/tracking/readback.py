"""A local W&B run read back, with ``wandb leet inspect --summary --json``: what a trial's
run recorded (its state, config and summary), for tests, checks and people.

Only wandb's command line is run, in a child process: ``wandb`` is never imported here, and
the reader is handed no credentials.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["read_run_summary"]

_INSPECT_TIMEOUT_S = 60.0
# How wandb's transaction log spells non-finite floats (history values come back like this).
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _wandb_command() -> list[str]:
    """The wandb CLI of this interpreter's environment (a Ray worker's PATH may lack it)."""
    beside = Path(sys.executable).parent / "wandb"  # not resolved: a venv's python is a symlink
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("wandb")
    return [found] if found else [sys.executable, "-m", "wandb"]


def _inspect_run(run_dir: Path) -> dict[str, Any]:
    """``wandb leet inspect --summary --json <run_dir>``: run state, config and summary."""
    path = Path(run_dir)
    if not path.exists():
        raise FileNotFoundError(f"no W&B run at {path}")
    # The reader needs no credentials; don't hand it any.
    env = {k: v for k, v in os.environ.items() if k != "WANDB_API_KEY"}
    command = [*_wandb_command(), "leet", "inspect", "--summary", "--json", str(path)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=_INSPECT_TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired as err:
        raise RuntimeError(f"`wandb leet inspect` timed out after {_INSPECT_TIMEOUT_S:.0f}s on {path}") from err
    if done.returncode != 0:
        raise RuntimeError(f"`wandb leet inspect` failed on {path}: {(done.stderr or done.stdout).strip()}")
    try:
        record = json.loads(done.stdout)
    except json.JSONDecodeError as err:
        raise RuntimeError(f"`wandb leet inspect` printed no JSON for {path}: {err}") from err
    if not isinstance(record, dict):
        raise RuntimeError(f"`wandb leet inspect` printed {type(record).__name__}, not an object, for {path}")
    return record


def read_run_summary(run_dir: Path) -> dict[str, Any]:
    """Read one local run's summary with ``wandb leet inspect --summary --json``.

    Args:
        run_dir: A run directory (``.../offline-run-...``), its ``.wandb`` file, or a wandb
            directory (then its latest run).

    Returns:
        The run summary: the final and best metrics, ``status``, ``seconds``... as written by
        :meth:`~sweeper.tracking.runs.TrialTracker.finish` plus wandb's ``_step``/``_runtime``;
        non-finite values come back as floats.

    Raises:
        FileNotFoundError: ``run_dir`` does not exist.
        RuntimeError: the wandb CLI failed, timed out or printed something unexpected.
    """
    summary = _inspect_run(run_dir).get("summary") or {}
    return {k: _NON_FINITE.get(v, v) if isinstance(v, str) else v for k, v in summary.items()}
