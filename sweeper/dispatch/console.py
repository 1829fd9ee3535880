"""What a running sweep shows and how it stops: the progress bar, the stall watchdog and a
graceful stop (Ctrl-C, SIGTERM). Messages go to the ``sweeper`` loggers (the CLI prints them);
no Ray import."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar

from sweeper.dispatch.lock import holder
from sweeper.records import STATUSES, TrialRow, counted
from sweeper.spec import SweepSpec

__all__ = ["MISSING_S", "STOP_SIGNALS", "Bar", "Progress", "ProgressSink", "ResourceWatch", "StopFlag", "StopRelay",
           "Watchdog", "graceful_stop", "swapped_signals", "resource_watch", "stop_gracefully", "watchdog", "STALL_S",
           "STALL_FACTOR", "WATCH_POLL_S"]

_log = logging.getLogger(__name__)

# A sweep stuck inside Ray Tune (a worker dead unreported, ray-project/ray#28197) prints
# nothing and never ends. The watchdog warns when no trial has written a result for this many
# seconds, or 10x the longest gap seen so far in this run if longer (slow epochs are not a
# stall). A warned-about gap counts too, in case it was a slow epoch: a hang lasts for ever,
# so it is reported however long the gaps before it were.
STALL_S = 900.0
STALL_FACTOR = 10.0
WATCH_POLL_S = 10.0
STOP_SIGNALS = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}
"""The signals that stop a sweep (gracefully, then at once), by the name its messages give them."""


ProgressSink = Callable[[int, int, str], None]
"""Where a :class:`Progress` shows itself instead of its own bar: ``(total, completed, detail)``."""


class Bar:
    """The sweep's rich progress bar on this process's terminal (a context manager)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> "Bar":
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task(self.name, total=0, detail="")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def show(self, total: int, completed: int, detail: str) -> None:
        """Redraw: ``completed`` of ``total`` trials, and the running / failed / best line."""
        if self._bar is not None:
            self._bar.update(self._task, total=total, completed=completed, detail=detail)


class Progress:
    """Trials done / running / failed and the best so far: drawn as a :class:`Bar`, or handed
    to ``sink`` (a supervising process draws it: :mod:`sweeper.dispatch.supervisor`)."""

    def __init__(self, total: int, spec: SweepSpec, enabled: bool, sink: ProgressSink | None = None) -> None:
        self.spec, self.total, self.enabled = spec, total, enabled
        self.counts = dict.fromkeys(STATUSES, 0)
        self.best: float | None = None
        self._bar: Bar | None = None
        self._sink = sink if enabled else None
        self._detail = ""

    def __enter__(self) -> "Progress":
        if self.enabled and self._sink is None:
            self._bar = Bar(self.spec.name).__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def extend(self, trials: int) -> None:
        """Count ``trials`` more to run (a race adds each round's as it decides them)."""
        self.total += trials
        self._draw()

    def __getstate__(self) -> dict[str, Any]:
        # Tuner pickles its callbacks into the experiment state; a live terminal bar (or a
        # pipe to the supervisor) holds locks and means nothing in another process.
        return {**self.__dict__, "_bar": None, "_sink": None}

    def finished(self, row: TrialRow) -> None:
        """Count a trial the ledger has just recorded."""
        self.counts[row.status] += 1
        value = row.metrics.get(self.spec.metric, math.nan)
        if row.status == "ok" and math.isfinite(value):
            better = self.best is None or (value > self.best if self.spec.goal == "maximize" else value < self.best)
            self.best = value if better else self.best

    def update(self, trials: Iterable[Any]) -> None:
        """Redraw with Tune's trials (those ``RUNNING`` are counted as running)."""
        if self._bar is None and self._sink is None:
            return
        running = sum(1 for t in trials if getattr(t, "status", "") == "RUNNING")
        best = f"best {self.spec.metric} {self.best:.3f}" if self.best is not None else "best -"
        counts = self.counts
        self._detail = (f"running {running}  ok {counts['ok']}  failed {counts['error']}  "
                        f"diverged {counts['diverged']}  {best}")
        self._draw()

    def _draw(self) -> None:
        done = sum(self.counts.values())
        if self._bar is not None:
            self._bar.show(self.total, done, self._detail)
        elif self._sink is not None:
            self._sink(self.total, done, self._detail)


class Watchdog(threading.Thread):
    """Watches a Tune run's ``result.json`` files from a thread of its own (a Tune callback
    would not fire: the hang seen was inside one step of Tune's loop); one warning per stall.
    While the driver's note (``sweep_dir``'s, :func:`~sweeper.dispatch.lock.note_trials`) has
    none of its trials running and some waiting to start, the cluster's resources are taken
    (a sweep joined to another's cluster): that is said once it lasts, and is not a stall."""

    def __init__(self, run_dir: Path, sweep_dir: Path | None = None) -> None:
        super().__init__(name="sweeper-watchdog", daemon=True)
        self.run_dir, self.sweep_dir, self._done = run_dir, sweep_dir, threading.Event()
        self.warnings = self.waits = 0

    def _newest(self, default: float) -> float:
        stamps = []
        for path in self.run_dir.glob("*/result.json"):
            with contextlib.suppress(OSError):  # a trial folder may be renamed or removed meanwhile
                stamps.append(path.stat().st_mtime)
        return max(stamps, default=default)

    def _waiting(self) -> dict[str, Any] | None:
        """The driver's note of its trials while none runs and some wait to start, else None."""
        note = (holder(self.sweep_dir) or {}).get("trials") if self.sweep_dir is not None else None
        return note if note and not note["running"] and note["waiting"] else None

    def run(self) -> None:
        last = time.time()
        longest, warned, waited_from, told = 0.0, False, None, False
        while not self._done.wait(WATCH_POLL_S):
            newest = self._newest(last)
            if newest > last:
                longest, last, warned = max(longest, newest - last), newest, False
                continue
            if (waiting := self._waiting()) is None:
                waited_from, told = None, False
            else:
                # Not a stall: the silence counts from when they start (and no gap is this long).
                waited_from, last = waited_from or last, time.time()
                if not told and last - waited_from > STALL_S:
                    told = True
                    self.waits += 1
                    _log.warning("%s waiting to start since %s: the cluster's resources are taken (by another sweep "
                                 "on it?); they start when it frees them", counted(waiting["waiting"], "trial"),
                                 waiting["since"])
                continue
            idle = time.time() - last
            if not warned and idle > max(STALL_S, STALL_FACTOR * longest):
                warned = True
                self.warnings += 1
                _log.warning("no trial has reported for %.0f s (%s); Ray may be stuck. Ctrl-C and run the same "
                             "command again: finished trials are in the ledger and only the rest run",
                             idle, self.run_dir)

    def stop(self) -> None:
        """End the thread and wait for it."""
        self._done.set()
        self.join()


@contextlib.contextmanager
def watchdog(run_dir: Path, sweep_dir: Path | None = None) -> Iterator[Watchdog]:
    """A :class:`Watchdog` on ``run_dir`` (of ``sweep_dir``'s driver) for the duration of the block."""
    with _running(Watchdog(run_dir, sweep_dir)) as watch:
        yield watch


MISSING_S = 60.0  # as long as Ray Tune's own insufficient-resources check waits


class ResourceWatch(threading.Thread):
    """Warns, once per outage, when the cluster has lost a resource every trial asks for (the
    only T4 node gone): Tune would otherwise keep the trials pending, silently, for ever."""

    def __init__(self, needs: Mapping[str, float], probe: Callable[[], Mapping[str, float]]) -> None:
        super().__init__(name="sweeper-resources", daemon=True)
        # tune.with_resources spells CPU and GPU in lower case; the cluster in upper case.
        self.needs = {_CLUSTER_NAMES.get(k, k): float(v) for k, v in needs.items() if v}
        self.probe, self._done = probe, threading.Event()
        self.warnings = 0

    def run(self) -> None:
        short_since: float | None = None
        warned = False
        while not self._done.wait(WATCH_POLL_S):
            try:
                have = self.probe()
            except Exception:  # noqa: BLE001 - a cluster mid-failure: the next poll tells
                continue
            short = sorted(k for k, v in self.needs.items() if float(have.get(k, 0.0)) < v)
            if not short:
                short_since, warned = None, False
                continue
            short_since = short_since or time.time()
            if not warned and time.time() - short_since >= MISSING_S:
                warned = True
                self.warnings += 1
                asks = ", ".join(f"{k} {v:g}" for k, v in sorted(self.needs.items()))
                _log.warning("the cluster has had no %s for %.0f s; every trial asks for %s, so none can start "
                             "until a node with it joins. Ctrl-C stops (finished trials are in the ledger) and "
                             "the same command resumes", " or ".join(short), time.time() - short_since, asks)

    def stop(self) -> None:
        """End the thread and wait for it."""
        self._done.set()
        self.join()


_CLUSTER_NAMES = {"cpu": "CPU", "gpu": "GPU"}


@contextlib.contextmanager
def resource_watch(needs: Mapping[str, float], probe: Callable[[], Mapping[str, float]]) -> Iterator[ResourceWatch]:
    """A :class:`ResourceWatch` for the duration of the block."""
    with _running(ResourceWatch(needs, probe)) as watch:
        yield watch


_W = TypeVar("_W", Watchdog, ResourceWatch)


@contextlib.contextmanager
def _running(watch: _W) -> Iterator[_W]:
    """``watch`` started for the duration of the block, stopped however it ends."""
    watch.start()
    try:
        yield watch
    finally:
        watch.stop()


class StopFlag:
    """Set on Ctrl-C. A plain object, not a threading.Event: Ray pickles the callbacks.
    ``finished``: the sweep's trials are all done (a stop then drops none)."""

    def __init__(self) -> None:
        self._set = False
        self.finished = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


def stop_gracefully(stop: StopFlag) -> None:
    """Stop the sweep as the first Ctrl-C does: Ray Tune's graceful stop (its own SIGUSR1), no
    new trial or Tuner after it; trials cut short are not recorded and run again on resume."""
    stop.set()
    os.kill(os.getpid(), signal.SIGUSR1)


class _DropRestoreHint(logging.Filter):
    """Ray's "Resume experiment with: Tuner.restore(...)" is not how a sweep resumes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tuner.restore" not in record.getMessage()


@contextlib.contextmanager
def swapped_signals(handlers: Mapping[int, Any]) -> Iterator[None]:
    """Install ``handlers`` (signal -> handler) for the block, then put the previous ones back.
    Main thread only, as :func:`signal.signal` requires."""
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def graceful_stop(stop: StopFlag) -> Iterator[None]:
    """First Ctrl-C or SIGTERM: Ray Tune's graceful stop (finished trials are recorded, running
    ones are not); a second one stops at once. Outside the main thread, Ray's default applies.

    Entered again once Ray is up: ``ray.init`` installs its own SIGTERM handler (``sys.exit``),
    which would end the driver mid-trial. A stop signal the process holds (blocked: a
    supervisor forks its driver so, lest a Ctrl-C while Python starts be lost) is taken here.
    """
    tune_logger = logging.getLogger("ray.tune.tune")
    hint_filter = _DropRestoreHint()
    tune_logger.addFilter(hint_filter)
    if threading.current_thread() is not threading.main_thread():
        try:
            yield
        finally:
            tune_logger.removeFilter(hint_filter)
        return

    def on_stop(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        name = STOP_SIGNALS[signum]
        if not stop.finished:  # else what stops says so itself
            _log.warning("stopping after %s: running trials are dropped (they re-run on resume), finished ones "
                         "are in the ledger; %s again stops at once", name, name)
        stop_gracefully(stop)

    previous_env = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # our handler, not Tune's, owns SIGINT
    # Tune installs its SIGUSR1 handler only inside fit(); before the first fit (or between
    # two Tuners) SIGUSR1's default action would kill the driver. The stop flag does the job there.
    try:
        with swapped_signals({**dict.fromkeys(STOP_SIGNALS, on_stop), signal.SIGUSR1: lambda signum, frame: None}):
            held = signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            try:
                yield
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
    finally:
        tune_logger.removeFilter(hint_filter)
        if previous_env is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = previous_env


class StopRelay(contextlib.AbstractContextManager):
    """The Ctrl-Cs and SIGTERMs a supervising process gets while its driver runs (from the
    terminal, ``kill``, ``timeout``, a process manager), each passed on to the driver once: it
    stops gracefully and says so (:func:`graceful_stop`), a second one stops it at once. The
    supervisor waits for it instead of dying, which would take it down without a word.

    A context manager: its handler takes the signals for the block (main thread only, as
    :func:`signal.signal` requires; elsewhere they keep their handlers).
    """

    def __init__(self) -> None:
        self.received: list[int] = []
        self._driver: subprocess.Popen | None = None
        self._early: list[int] = []  # received before the driver existed
        self._handlers = contextlib.ExitStack()

    def __enter__(self) -> "StopRelay":
        if threading.current_thread() is threading.main_thread():
            self._handlers.enter_context(swapped_signals(dict.fromkeys(STOP_SIGNALS, self._pass_on)))
        return self

    def __exit__(self, *exc: object) -> None:
        self._handlers.close()

    def start(self, argv: Sequence[str], **popen: Any) -> subprocess.Popen:
        """``Popen(argv, **popen)`` with the stop signals held (blocked) across the fork: the
        driver inherits the hold and takes them in :func:`graceful_stop`, so a Ctrl-C while its
        Python starts is neither lost nor a crash. One that came earlier is passed on now."""
        held = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            self._driver = subprocess.Popen(argv, **popen)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        while self._early:
            os.kill(self._driver.pid, self._early.pop(0))
        return self._driver

    def _pass_on(self, signum: int, frame: Any) -> None:
        self.received.append(signum)
        if self._driver is None:
            self._early.append(signum)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._driver.pid, signum)
