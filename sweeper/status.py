"""``sweeper status``: a sweep's progress read from its ledger (no Ray, no TensorFlow).

Safe while the sweep runs: the ledger is replaced atomically, so a read sees a whole file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from model.metrics import metric_goal, metric_unit
from sweeper.folder import find_sweep, read_spec
from sweeper.ledger import Ledger
from sweeper.race import race_state
from sweeper.records import params_of
from sweeper.space import searched_params, trial_count
from sweeper.spec import SweepSpec

__all__ = ["planned_trials", "sweep_status"]

def planned_trials(spec: SweepSpec | None) -> int | None:
    """How many trials the sweep's spec plans (``None`` without a spec)."""
    return None if spec is None else trial_count(spec)


def sweep_status(sweep: Path | None, results_dir: Path) -> str:
    """A few lines: trials recorded by status out of those planned, and the best so far by
    the spec's metric and goal (``val_psnr``, higher is better, without a spec)."""
    sweep_dir = find_sweep(sweep, results_dir)
    spec = read_spec(sweep_dir)
    ledger = Ledger(sweep_dir, create=False)
    trials = ledger.trials()
    counts = ledger.status_counts()
    raced = spec is not None and spec.race is not None
    planned = None if raced else planned_trials(spec)  # a race decides as it goes
    done = len(trials)
    lines = [
        f"{sweep_dir.name}: {done}" + (f"/{planned}" if planned else "") + " trials recorded"
        + (f" ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})" if counts else ""),
    ]
    if raced:
        state = race_state(spec, trials, ledger.eliminations())
        where = f"over: {state.why}" if state.done else f"{len(state.pending)} trials of the next round to run"
        head = f"race after {state.seeds} seeds" if state.rounds else f"race before its first look (at {spec.race.first} seeds)"
        lines.append(f"{head}: {len(state.alive)} of {len(state.configs)} configurations "
                     f"left; {where} (at most {state.full_trials(spec.race.max)} trials)")
    elif planned:
        lines.append(f"remaining: {max(0, planned - done)}")
    flight = _in_flight(sweep_dir, set(trials["trial_id"]), searched_params(spec, trials))
    if flight:
        lines.append(flight)
    metric = spec.metric if spec is not None else "val_psnr"
    goal = spec.goal if spec is not None else metric_goal(metric)
    ok = trials[(trials["status"] == "ok") & trials[metric].notna()]
    if len(ok):
        best = ok.loc[ok[metric].idxmax() if goal == "maximize" else ok[metric].idxmin()]
        varied = searched_params(spec, trials)
        params = ", ".join(f"{k}={v}" for k, v in params_of(best.to_dict()).items() if k in varied)
        value = best[metric]
        lines.append(f"best {metric} {value:.3f}{metric_unit(metric)}" if math.isfinite(value) else f"best {metric} -")
        if params:
            lines[-1] += f" ({params})"
    return "\n".join(lines)


def _in_flight(sweep_dir: Path, recorded: set[str], varied: Sequence[str]) -> str | None:
    """The trials this node has checkpointed but the ledger lacks: running, or cut short (a rerun
    goes on from their last epoch)."""
    from model.checkpoint import read_progress

    parts = []
    for path in sorted((sweep_dir / "checkpoints").glob("*.npz")):
        progress = read_progress(path) if path.stem not in recorded else None
        if progress is not None:
            epoch, params = progress
            shown = ", ".join(f"{k}={v}" for k, v in sorted(params.items()) if k in varied) or path.stem
            parts.append(f"{shown} at epoch {epoch}/{params.get('epochs', '?')}")
    return f"in progress or cut short (checkpointed): {'; '.join(parts)}" if parts else None
