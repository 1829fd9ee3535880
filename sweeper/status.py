"""``sweeper status``: a sweep's progress read from its ledger (no Ray, no TensorFlow).

Safe while the sweep runs: the ledger is replaced atomically, so a read sees a whole file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from model.errors import UserError

if TYPE_CHECKING:
    from sweeper.spec import SweepSpec

__all__ = ["find_sweep", "sweep_status", "planned_trials", "sweep_spec"]


def find_sweep(sweep: Path | None, results_dir: Path) -> Path:
    """The sweep folder named, or the most recently updated one under ``results_dir``."""
    if sweep is not None:
        if not sweep.is_dir():
            raise UserError(f"{sweep}: no such sweep folder")
        return sweep
    markers = ("spec.yaml", "trials.parquet", "trials.csv")
    candidates = [d for d in results_dir.glob("*") if any((d / m).is_file() for m in markers)]
    if not candidates:
        raise UserError(f"{results_dir}: no sweeps yet; start one with `sweeper run search_spaces/optim_loss.yaml`")
    return max(candidates, key=lambda d: max(p.stat().st_mtime for p in d.iterdir()))


def sweep_spec(sweep_dir: Path) -> "SweepSpec | None":
    """The spec a sweep ran with, read from its resolved ``spec.yaml`` (``None`` if absent or unreadable)."""
    import yaml

    from sweeper.spec import SpecError, loads

    path = sweep_dir / "spec.yaml"
    if not path.is_file():
        return None
    try:
        doc = yaml.safe_load(path.read_text()) or {}
        doc.pop("resolved", None)  # provenance (versions, git), not part of the spec
        return loads(yaml.safe_dump(doc), source=str(path))
    except (SpecError, yaml.YAMLError, AttributeError, OSError):
        return None


def planned_trials(sweep_dir: Path) -> int | None:
    """How many trials the sweep's resolved ``spec.yaml`` plans (``None`` if unknown)."""
    from sweeper.space import trial_count

    spec = sweep_spec(sweep_dir)
    return None if spec is None else trial_count(spec)


def sweep_status(sweep: Path | None, results_dir: Path) -> str:
    """A few lines: trials recorded by status out of those planned, and the best so far."""
    from sweeper.ledger import Ledger

    sweep_dir = find_sweep(sweep, results_dir)
    ledger = Ledger(sweep_dir, create=False)
    trials = ledger.trials()
    counts = ledger.status_counts()
    planned = planned_trials(sweep_dir)
    done = len(trials)
    lines = [
        f"{sweep_dir.name}: {done}" + (f"/{planned}" if planned else "") + " trials recorded"
        + (f" ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})" if counts else ""),
    ]
    if planned:
        lines.append(f"remaining: {max(0, planned - done)}")
    ok = trials[trials["status"] == "ok"] if done else trials
    if len(ok):
        best = ok.loc[ok["val_psnr"].idxmax()]
        params = ", ".join(
            f"{c.removeprefix('params_')}={best[c]}" for c in ok.columns
            if c.startswith("params_") and ok[c].nunique(dropna=False) > 1
        )
        psnr = best["val_psnr"]
        lines.append(f"best val_psnr {psnr:.3f} dB" if math.isfinite(psnr) else "best val_psnr -")
        if params:
            lines[-1] += f" ({params})"
    return "\n".join(lines)
