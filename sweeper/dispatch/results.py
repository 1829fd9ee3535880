"""Ray Tune's results of a trial -> its ledger rows, live and after a crash.

The ledger is the truth, not Ray's experiment pickles: a driver-side callback records each
trial when it ends (see :mod:`sweeper.dispatch.callback`), and a re-run first recovers the
trials that finished in an earlier Ray run but never reached the ledger (the driver was
killed in between) from those runs' ``result.json`` files. Both go through
:func:`record_from_results`. No Ray import here.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from model.params import TrainParams
from sweeper.ledger import Ledger, LedgerError
from sweeper.records import EpochRow, Placement, TrialReport, TrialRow
from sweeper.space import config_trial
from sweeper.spec import SweepSpec

__all__ = ["ran_to_the_end", "record_from_results", "recover", "result_lines", "set_aside_unreadable"]

_log = logging.getLogger(__name__)


def result_lines(path: Path) -> list[dict[str, Any]]:
    """The results in a trial's ``result.json``, up to the first line a kill tore (everything
    after it is suspect); none when the file cannot be read."""
    out: list[dict[str, Any]] = []
    try:
        text = path.read_text()
    except OSError:
        return out
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return out


def ran_to_the_end(params: Mapping[str, Any], results: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a trial's reports show it finished on its own: all its epochs, or a final
    error/diverged status; not stopped mid-way (a kill, a Ctrl-C)."""
    if not results:
        return False
    last = TrialReport.from_result(results[-1])
    if last is None:
        return False
    epochs = int(params.get("epochs") or TrainParams().epochs)
    return last.status in ("error", "diverged") or (last.status == "ok" and last.epoch >= epochs)


def record_from_results(
    tid: str, params: Mapping[str, Any], results: Sequence[Mapping[str, Any]], *,
    goal: str, metric: str, error: str | None = None, attempts: int = 1,
) -> tuple[TrialRow, list[EpochRow]]:
    """Turn one trial's reported results into its ledger row and epoch rows.

    Args:
        tid: The trial id.
        params: The trial's parameters.
        results: Ray Tune's results of the trial, in order (:class:`TrialReport` plus Ray's keys).
        goal: ``maximize`` or ``minimize``: which epoch is the best one.
        metric: The metric that picks the best epoch; the row's metrics are that epoch's.
        error: The error that ended the trial, if it raised.
        attempts: How many times it ran (retries included).
    """
    reports = [r for r in map(TrialReport.from_result, results) if r is not None]
    by_epoch = {r.epoch: r for r in reports if r.scored}  # a retried trial re-reports epochs: keep the last
    epochs = [EpochRow(epoch=e, trial_id=tid, train_loss=r.train_loss, metrics=r.metrics, seconds=r.seconds)
              for e, r in sorted(by_epoch.items())]
    last = reports[-1] if reports else None
    finite = [r for r in by_epoch.values() if math.isfinite(r.metrics.get(metric, math.nan))]
    pick = max if goal == "maximize" else min
    best = pick(finite, key=lambda r: r.metrics[metric]) if finite else None
    row = TrialRow(
        trial_id=tid,
        params=params,
        status="error" if error is not None or last is None else last.status,
        metrics=best.metrics if best is not None else {},
        best_epoch=best.epoch if best is not None else 0,
        epochs_run=len(by_epoch),
        seconds=_seconds(reports, results),
        images_per_second=by_epoch[max(by_epoch)].images_per_second if by_epoch else math.nan,
        placement=last.placement if last else Placement(),
        attempts=attempts,
        error=error if error is not None else (last.error if last else ""),
    )
    return row, epochs


def _seconds(reports: Sequence[TrialReport], results: Sequence[Mapping[str, Any]]) -> float:
    """A trial's compute: the trainer's wall time at its last report, which carries over a
    resumed trial's earlier attempts; Ray's ``time_total_s`` for reports without it (older
    ledgers; a trial that ended without a scored epoch)."""
    if reports and math.isfinite(reports[-1].seconds):
        return reports[-1].seconds
    return float(results[-1].get("time_total_s", math.nan)) if results else math.nan


def set_aside_unreadable(ledger: Ledger) -> list[str]:
    """Move an unreadable ledger (all its files: they are one record) aside, never deleting it.

    The caller then recovers every trial Ray's results show finished and re-runs the rest.

    Returns:
        One message per file moved.
    """
    try:
        ledger.trials()
        ledger.epochs()
        ledger.eliminations()
        return []
    except LedgerError as err:
        reason = str(err)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    messages = []
    # A race's eliminations follow from the trials: set aside with them, they are replayed.
    for path in (ledger.trials_path, ledger.epochs_path, ledger.race_path):
        if path.exists():
            target = path.with_name(f"{path.name}.unreadable-{stamp}")
            os.replace(path, target)
            messages.append(f"{path}: unreadable, moved to {target.name}; trials that finished are recovered "
                            f"from {ledger.sweep_dir / 'ray'}, the rest run again")
    _log.debug("ledger set aside: %s", reason)
    return messages


def recover(spec: SweepSpec, ledger: Ledger) -> int:
    """Record the trials that finished in earlier Ray runs of this sweep but are missing from
    the ledger; those cut short stay out and are dispatched again.

    Returns:
        How many trials were recovered.
    """
    done = ledger.done_ids()
    recovered = 0
    for result_file in sorted((ledger.sweep_dir / "ray").glob("*/*/result.json")):
        results = result_lines(result_file)
        if not results:
            continue
        params, tid = config_trial(results[-1].get("config", {}))
        if not tid or tid in done or not ran_to_the_end(params, results):
            continue
        row, epochs = record_from_results(tid, params, results, goal=spec.goal, metric=spec.metric)
        if ledger.record(row, epochs):
            recovered += 1
            done.add(tid)
    return recovered
