"""The driver-side Tune callbacks: each finished trial into the ledger; how many trials run
and how many wait to start, for ``sweeper status``.

One writer (the driver) on any cluster: workers on other nodes cannot reach the driver's
disk. Imports Ray at module level (it subclasses Ray's ``Callback``); the driver imports it
only once Ray is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.tune import Callback

from sweeper.dispatch.console import Progress, StopFlag, stop_gracefully
from sweeper.dispatch.lock import note_trials
from sweeper.dispatch.results import ran_to_the_end, record_from_results
from sweeper.folder import WriteError
from sweeper.ledger import Ledger
from sweeper.space import config_trial
from sweeper.spec import SweepSpec

__all__ = ["LedgerCallback", "TrialsNow", "error_message"]


class LedgerCallback(Callback):
    """Collect each trial's results; record it in the ledger when it ends (well or not).

    A trial cut short by Ctrl-C is left out (it runs again on resume), never recorded as a
    result.
    """

    def __init__(self, spec: SweepSpec, ledger: Ledger, progress: Progress, stop: StopFlag) -> None:
        self.spec, self.ledger, self.progress, self.stop = spec, ledger, progress, stop
        self.results: dict[str, list[dict[str, Any]]] = {}
        self.failed: WriteError | None = None  # the ledger could not be written: the sweep stops

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.progress.update(trials)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self.results.setdefault(trial.trial_id, []).append(dict(result))
        self.progress.update(trials)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trials, trial, None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trials, trial, error_message(trial))

    def _finish(self, trials: list, trial: Any, error: str | None) -> None:
        params, tid = config_trial(trial.config)
        results = self.results.pop(trial.trial_id, [])
        # Ray still marks the finishing trial RUNNING while its callbacks run.
        others = [t for t in trials if t is not trial]
        if self.stop.is_set() and (error is not None or not ran_to_the_end(params, results)):
            # Cut short by Ctrl-C (stopped, or its worker hit by the same SIGINT): not a result.
            self.progress.update(others)
            return
        row, epochs = record_from_results(
            tid, params, results, goal=self.spec.goal, metric=self.spec.metric, error=error,
            # every failure was an attempt; a trial that ends well adds its final one
            attempts=int(trial.num_failures) + (0 if error else 1),
        )
        try:
            self.ledger.record(row, epochs)
        except WriteError as err:
            # Nothing is lost: this trial's results stay in Ray's folder, and the next run
            # recovers them. Going on would only train trials that cannot be recorded.
            if self.failed is None:
                self.failed = err
                stop_gracefully(self.stop)
            return
        self.progress.finished(row)
        self.progress.update(others)


class TrialsNow(Callback):
    """Note how many of the sweep's trials run and how many wait to start, when that changes
    (:func:`~sweeper.dispatch.lock.note_trials`): a trial waits while the cluster lacks the
    resources it asks for, as when another sweep joined to the cluster holds its cores."""

    def __init__(self, sweep_dir: Path) -> None:
        self.sweep_dir = sweep_dir
        self._last: tuple[int, int] | None = None

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        statuses = [getattr(t, "status", "") for t in trials]
        counts = (statuses.count("RUNNING"), statuses.count("PENDING"))
        if counts != self._last:
            note_trials(self.sweep_dir, *counts)
            self._last = counts


def error_message(trial: Any) -> str:
    """The last line of the trial's error trace: the exception type and message.

    The driver-local copy (``trial.error_file``) is written before the callback runs; the
    copy in the storage path may not be synced yet, so it is only the fallback.
    """
    text = ""
    try:
        local = trial.error_file
        if local and Path(local).is_file():
            text = Path(local).read_text(errors="replace")
        if not text.strip():
            text = trial.get_error() or ""
    except Exception:  # storage on a remote filesystem may be unreachable
        pass
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[-1] if lines else "trial failed (no error message recorded)"
