"""What a sweep ran with, written beside its ledger: the resolved spec, package versions and
the git commit (``<sweep>/spec.yaml``, read back by :func:`sweeper.folder.read_spec`)."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

from sweeper.folder import write_spec
from sweeper.spec import SweepSpec

__all__ = ["write_provenance", "versions", "git_commit"]

_DISTRIBUTIONS = ("sweeper", "tensorflow", "keras", "ray", "optuna", "wandb", "pandas")


def versions() -> dict[str, str]:
    """Python's version and those of the installed packages a result depends on."""
    out = {"python": platform.python_version()}
    for dist in _DISTRIBUTIONS:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_commit() -> str:
    """The commit of the sweeper's own checkout (``""`` outside git)."""
    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).resolve().parent)
        return proc.stdout.strip() if proc.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def write_provenance(spec: SweepSpec, sweep_dir: Path, extra: Mapping[str, Any]) -> Path:
    """``<sweep>/spec.yaml``: the resolved spec plus versions, git commit and ``extra``."""
    return write_spec(sweep_dir, spec, {"versions": versions(), "git_commit": git_commit(), **extra})
