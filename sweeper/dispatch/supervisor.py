"""``sweeper run`` in two processes: the driver in a child, watched by the command's own.

When the Ray node a driver is attached to dies (its raylet killed, as the OOM killer would),
Ray ends the driver from C++ with no Python in between: at its next use of the dead node's
object store ("The connection to the plasma store is failed. Terminate the process") or
raylet socket ("the Raylet IPC connection failed and the local Raylet is dead"), or a minute
after it lost the cluster's GCS ("Failed to connect to GCS within 60 seconds"), each a
``QuickExit``, that is ``_exit(1)``. Before that, Tune logs its trials' deaths as tracebacks
and Ray prints the raylet's last log lines. Nothing inside the driver can catch an
``_exit``; its parent sees it. So the ``sweeper run`` process (no Ray, no TensorFlow) holds
the sweep's driver lock, starts the driver (``python -m sweeper.dispatch``:
:mod:`sweeper.dispatch.supervised`) with Ray's
output in ``<sweep>/driver.log`` (on the terminal with ``--verbose``), draws its progress
bar, prints its log lines and receives its outcome over a socket. A driver that ends without
an outcome died: the parent, which watched the driver's raylet and the cluster's GCS while
it ran, names what died, counts the ledger and gives the command that resumes, in one line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, Any, Sequence

from model.errors import UserError
from model.runtime import VERBOSE_ENV
from sweeper.dispatch.cluster import DriverNode
from sweeper.dispatch.console import STOP_SIGNALS, Bar, StopRelay
from sweeper.dispatch.driver import RunOptions, RunSummary, sweep_folder, sweep_lock
from sweeper.dispatch.plan import plan
from sweeper.ledger import Ledger, LedgerError
from sweeper.spec import SweepSpec

__all__ = ["EXIT_DRIVER_LOST", "EXIT_INTERRUPTED", "LOG_NAME", "DriverCrashed", "DriverLost", "StoppedAtOnce",
           "resume_command", "supervise"]

_log = logging.getLogger(__name__)

EXIT_DRIVER_LOST = 75
"""``sweeper run``'s exit status when its driver died under it: sysexits' EX_TEMPFAIL (a
temporary failure; the same command, run again, resumes)."""
EXIT_INTERRUPTED = 130
"""``sweeper run``'s exit status after Ctrl-C (128 + SIGINT, as a shell reports it)."""
LOG_NAME = "driver.log"
"""Ray's own output in a supervised run, in the sweep folder (appended to, run after run; not
in ``ray/``, whose appearance tells that Ray Tune has started)."""

POLL_S = 0.5  # how often the parent looks at the driver's raylet and GCS
PROBE_S = 5.0  # a GCS on another host is dialled this often; gone after PROBE_MISSES refusals
PROBE_MISSES = 3
# Ray ends a driver whose node died within seconds (the GCS marks the node dead after ~15 s
# without health checks), one without a GCS after 60 s; a driver Ray has not ended this long
# after its node died is ended here: it cannot work without that node.
GRACE_S = 120.0
EXIT_WAIT_S = 60.0  # a driver that sent its outcome gets this long to shut Ray down
DRAIN_S = 5.0  # and its output this long to reach the log once it has ended


class DriverLost(UserError):
    """The sweep's driver died under it: its Ray node or the cluster's head died, or the
    driver process itself was killed. Everything recorded is in the ledger."""

    exit_code = EXIT_DRIVER_LOST


class StoppedAtOnce(UserError):
    """A second Ctrl-C (or SIGTERM) stopped the driver without waiting for its trials.
    Everything recorded is in the ledger."""

    exit_code = EXIT_INTERRUPTED


class DriverCrashed(RuntimeError):
    """The driver raised an unexpected exception on a healthy cluster (a bug): its traceback."""


def resume_command(spec_path: Path, overrides: Sequence[str], options: RunOptions, *, allow_huge: bool = False) -> str:
    """The ``sweeper run`` command that resumes this sweep: the spec and every choice that says
    which sweep folder, data, cluster and trials it is."""
    argv = ["sweeper", "run", str(spec_path)]
    valued = {
        "--results-dir": options.results_dir if options.results_dir != RunOptions().results_dir else None,
        "--data-dir": options.data_dir, "--address": options.address,
        "--max-concurrent": options.max_concurrent, "--wandb-mode": options.wandb_mode,
    }
    for flag, value in valued.items():
        if value is not None:
            argv += [flag, str(value)]
    if options.wandb_sweep:
        argv.append("--wandb-sweep")
    for override in overrides:
        argv += ["--set", override]
    if allow_huge:
        argv.append("--yes")
    return shlex.join(argv)


def supervise(spec: SweepSpec, options: RunOptions, resume: str) -> RunSummary:
    """:func:`~sweeper.dispatch.driver.run` in a child process, watched from this one.

    Args:
        spec: The sweep.
        options: The command line's choices.
        resume: The command that resumes the sweep (:func:`resume_command`), for the message
            when the driver dies.

    Returns:
        The driver's :class:`~sweeper.dispatch.driver.RunSummary`.

    Raises:
        UserError: what :func:`~sweeper.dispatch.driver.run` raised in the driver.
        DriverLost: the driver died: one line naming what died, the trials in the ledger and
            ``resume``.
        DriverCrashed: the driver raised an unexpected exception and its cluster is alive.
        StoppedAtOnce: a second Ctrl-C or SIGTERM stopped the driver at once: one line with the
            trials in the ledger and ``resume``.
    """
    sweep_dir = sweep_folder(spec, options)
    with sweep_lock(spec, options, sweep_dir):  # held here, so a driver that dies cannot let a second one in early
        outcome, watch, code, pid, log, stops = _drive(spec, options, sweep_dir)
    kind = outcome[0] if outcome else "died"
    if kind == "done":
        return outcome[1]
    if kind == "error":
        raise outcome[1]
    if kind == "interrupted":
        raise StoppedAtOnce(_lost(_stopped_at_once(stops), spec, sweep_dir, resume, None, head_gone=False))
    if kind == "crash" and not watch.dead:
        raise DriverCrashed(f"the sweep's driver failed:\n{outcome[1]}")
    what = watch.dead if watch.dead and not watch.killed_from_outside(code) else _driver_death(pid, code)
    if kind == "crash":
        _log.debug("the driver's last words: %s", outcome[1])
    raise DriverLost(_lost(what, spec, sweep_dir, resume, log, head_gone="head" in what))


def _drive(spec: SweepSpec, options: RunOptions,
           sweep_dir: Path) -> tuple[tuple[Any, ...] | None, "_Watch", int, int, Path | None, list[int]]:
    """Start the driver, relay what it says until it ends. Returns (its outcome or None, what
    the watch saw, its exit status, its pid, Ray's log file, the stop signals passed on to it)."""
    ours, theirs = socket.socketpair()
    # Ray's output: on the terminal with --verbose, else through a pipe into the sweep's log.
    quiet = not os.environ.get(VERBOSE_ENV)
    with contextlib.ExitStack() as stack:
        stops = stack.enter_context(StopRelay())
        try:
            proc = stops.start(
                [sys.executable, "-m", "sweeper.dispatch", str(theirs.fileno()), str(os.getpid())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if quiet else None, stderr=subprocess.STDOUT if quiet else None,
                # Its own session: a terminal's Ctrl-C (sent to the whole foreground job) reaches
                # this process only, which passes it on once; the driver's Ray is not hit by it.
                start_new_session=True,
            )
        finally:
            theirs.close()
        log = _Drain(proc.stdout, sweep_dir / LOG_NAME) if proc.stdout is not None else None
        if log is not None:
            log.start()
        conn = stack.enter_context(Connection(ours.detach()))
        watch = _Watch()
        outcome: tuple[Any, ...] | None = None
        bar: Bar | None = None  # drawn once there is progress: a run with nothing to do shows none
        with contextlib.suppress(OSError):  # a driver that died at start: its EOF says so below
            conn.send(("job", spec, options))
        while True:
            if conn.poll(POLL_S):
                try:
                    message = conn.recv()
                except (EOFError, OSError):  # the driver has ended (or closed its end after its outcome)
                    break
                if message[0] == "log":
                    _relay(*message[1:])
                elif message[0] == "progress":
                    if options.progress and bar is None:
                        bar = stack.enter_context(Bar(spec.name))
                    if bar is not None:
                        bar.show(*message[1:])
                elif message[0] == "node":
                    watch.node = message[1]
                else:
                    outcome = message
            if outcome is not None:
                continue  # what dies from here on (its local Ray, with it) is not why it ended
            watch.check(proc)
            if watch.dead and time.monotonic() - watch.since > GRACE_S and proc.poll() is None:
                _log.debug("the driver outlived its Ray node by %.0f s; ending it", GRACE_S)
                watch.end(proc)
        try:
            code = proc.wait(timeout=EXIT_WAIT_S if outcome else None)
        except subprocess.TimeoutExpired:  # done, but stuck shutting Ray down: its work is recorded
            watch.end(proc)
            code = proc.wait()
    if log is not None:
        log.join(timeout=DRAIN_S)  # the rest of what the driver said (a process it left may hold the pipe)
    return outcome, watch, code, proc.pid, log.path if log is not None and log.written else None, stops.received


class _Drain(threading.Thread):
    """Copies the driver's output (Ray's logs, Tune's tracebacks) into ``path``, appending.

    Through a pipe rather than the file itself: a write that fails (a full disk) drops the
    rest of the log here, while the driver, whose own writes never fail, goes on.
    """

    def __init__(self, source: IO[bytes], path: Path) -> None:
        super().__init__(name="sweeper-driver-log", daemon=True)
        self.source, self.path = source, path
        self.written = False

    def run(self) -> None:
        handle: IO[bytes] | None = None
        try:
            handle = open(self.path, "ab")  # noqa: SIM115 - closed below, however the drain ends
            handle.write(f"\n=== sweeper run (pid {os.getpid()}) {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n".encode())
            self.written = True
        except OSError:
            handle = None
        for chunk in iter(lambda: self.source.read1(1 << 16), b""):  # type: ignore[attr-defined]
            if handle is None:
                continue
            try:
                handle.write(chunk)
                handle.flush()
            except OSError:
                handle.close()
                handle = None
        if handle is not None:
            with contextlib.suppress(OSError):
                handle.close()
        self.source.close()


def _relay(name: str, level: int, message: str) -> None:
    """A log record of the driver, as if logged here (the command line prints it)."""
    logger = logging.getLogger(name)
    if logger.isEnabledFor(level):
        logger.log(level, "%s", message)


class _Watch:
    """Which of the driver's Ray processes died first, seen from outside the driver."""

    def __init__(self) -> None:
        self.node: DriverNode | None = None
        self.dead = ""
        self.since = 0.0
        self._probed, self._misses = 0.0, 0
        self.ended_it = False  # this process killed the driver (it outlived its node)

    def end(self, driver: subprocess.Popen) -> None:
        """SIGKILL the driver, remembering that this process sent it (not ``kill -9`` from outside)."""
        self.ended_it = True
        driver.kill()

    def killed_from_outside(self, code: int) -> bool:
        """Whether a signal this process did not send (kill -9, the OOM killer) ended the driver.

        Then the driver's death came first, whatever the watch saw: the Ray processes that
        ``ray.init`` started die with their parent (Ray's parent-death signal), and the kernel
        sends that signal before the killed driver becomes waitable, so for a moment the
        raylet is gone while the driver still looks alive. A raylet's death ends the driver
        with an exit status (Ray's core exits), or with this process's SIGKILL.
        """
        return code in (-signal.SIGKILL, -signal.SIGTERM) and not self.ended_it

    def check(self, driver: subprocess.Popen) -> None:
        """Look at the driver's raylet and GCS once; a death counts only while ``driver`` runs:
        a local Ray dies with its driver, and would otherwise take the blame for its end."""
        node = self.node
        if node is None or self.dead:
            return
        what = ""
        if node.raylet_pid is not None and not _alive(node.raylet_pid):
            what = f"the Ray node at {node.ip or 'this host'} died (raylet gone)"
        elif node.gcs_pid is not None and not _alive(node.gcs_pid):
            what = f"the Ray cluster's head at {node.gcs_address} died (GCS gone)"
        elif node.gcs_pid is None and node.gcs_address and time.monotonic() - self._probed > PROBE_S:
            self._probed = time.monotonic()
            self._misses = 0 if _answers(node.gcs_address) else self._misses + 1
            if self._misses >= PROBE_MISSES:
                what = f"the Ray cluster's head at {node.gcs_address} is gone (its GCS does not answer)"
        if what and driver.poll() is None:
            self.dead, self.since = what, time.monotonic()


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not: a killed raylet stays one until reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rpartition(")")[2].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except (OSError, IndexError):  # no /proc here
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True


def _answers(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_S):
            return True
    except (OSError, ValueError):
        return False


def _stopped_at_once(stops: Sequence[int]) -> str:
    """What stopped the driver at once: the last of the stop signals passed on to it (the
    second, or later), the only one if it landed while ``ray.init`` had its own handler in
    place (for a few seconds as Ray starts), or one sent to the driver's own pid."""
    if not stops:
        return "stopped at once by a stop signal sent to the driver itself"
    if len(stops) == 1:
        return f"stopped at once by {STOP_SIGNALS[stops[0]]} while its Ray started"
    return f"stopped at once by a second {STOP_SIGNALS[stops[-1]]}"


def _driver_death(pid: int, code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"the sweep's driver (pid {pid}) was killed by {signal.Signals(-code).name}"
    return f"the sweep's driver (pid {pid}) ended without a result (exit status {code})"


def _lost(what: str, spec: SweepSpec, sweep_dir: Path, resume: str, log: Path | None, *, head_gone: bool) -> str:
    """The one line for a driver that died or was stopped: what happened, what the ledger
    holds, how to resume."""
    try:
        ledger = Ledger(sweep_dir, create=False)
        counts = ledger.status_counts()
        done = ledger.done_ids()
        planned = plan(spec, done).planned if spec.race is None else None  # a race decides as it goes
        held = sum(counts.values())
        of = f" of {planned}" if planned else ""
        detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
        ledger_line = f"{held}{of} trials are in the ledger ({detail}), nothing recorded is lost"
    except (LedgerError, OSError) as err:
        ledger_line = f"the ledger could not be read ({err})"
    when = "once the cluster is back, resume" if head_gone else "resume"
    account = f"; Ray's account: {log}" if log is not None else ""
    return f"{what}; {ledger_line}; {when} with `{resume}`{account}"
