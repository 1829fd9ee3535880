"""One driver per sweep: a second ``sweeper run`` of a sweep that is running is refused.

Two drivers of one sweep would each dispatch every trial the ledger lacks: each trial would
train twice (seen: 12 trainings for 6 rows). Cooperating drivers would need trial claims that
survive a driver's death; refusing is simpler and says exactly what to do. The lock is an
``flock`` on ``<sweep>/.driver.lock``, which the kernel releases when the holder dies (even by
``kill -9``), so a crashed driver's lock is taken over by the next one; the file names the
holder (host, pid, since, and how it runs the sweep) for the message and for ``sweeper
status`` (:func:`holder`). Beside it, the driver keeps ``<sweep>/.driver.trials``: how many of
its trials run and how many wait to start, since when (:func:`note_trials`; a sweep joined to
another's cluster waits while the other holds the cores). POSIX ``flock`` does not reach
across hosts on every network filesystem: run one sweep's drivers from one host.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

from model.errors import UserError
from sweeper.folder import WriteError, writable, write_atomic
from sweeper.records import counted

try:  # POSIX; elsewhere there is no lock (one driver is still the rule)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["DriverLock", "SweepBusy", "described", "driver_lock", "holder", "note_trials"]

LOCK_NAME = ".driver.lock"
TRIALS_NAME = ".driver.trials"
# How long a driver waits for the lock before it refuses: :func:`holder` holds it shared for
# the microseconds it takes to look, and a driver starting then must not be turned away.
_PATIENCE = 1.0


class SweepBusy(UserError):
    """Another driver is running this sweep."""


class DriverLock:
    """The lock on one sweep folder; :meth:`acquire` or refuse, :meth:`release` when done."""

    def __init__(self, sweep_dir: Path) -> None:
        self.path = Path(sweep_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self, **note: Any) -> None:
        """Take the lock, writing who holds it and ``note`` (how it runs the sweep).

        Raises:
            SweepBusy: a live driver holds it (the message names it and what to do).
        """
        if fcntl is None:  # pragma: no cover
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise writable(self.path, err) from None
        if not _flock(fd, fcntl.LOCK_EX, patience=_PATIENCE):
            info = _note(fd)
            os.close(fd)
            raise SweepBusy(f"{self.path.parent}: this sweep is being run by {described(info)}; wait for it to finish "
                            "(or stop it with Ctrl-C), then run the same command again: only what is missing runs")
        self._fd = fd
        try:
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": _now(),
                                     **note}).encode())
        except OSError:
            pass  # the lock holds without its note (a full disk): the holder is then "just starting"

    def release(self) -> None:
        """Let the next driver in (the file stays; its content is stale once unlocked)."""
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None


def holder(sweep_dir: Path) -> dict[str, Any] | None:
    """Who runs the sweep now: the lock's note (host, pid, since, what the driver wrote into
    it; empty while it starts), or ``None`` when no driver holds the lock. Looks without
    waiting, holding the lock shared for an instant (a driver starting then waits for it)."""
    if fcntl is None:  # pragma: no cover
        return None
    try:
        fd = os.open(Path(sweep_dir) / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return None  # never run here (or unreadable: then nothing can be said)
    try:
        if _flock(fd, fcntl.LOCK_SH, patience=0.0):
            return None  # free: no driver holds it (its note is a past driver's)
        note = _note(fd)
        trials = _trials(Path(sweep_dir), os.fstat(fd).st_mtime)
        return {**note, "trials": trials} if trials else note
    finally:
        os.close(fd)  # and with it the shared lock, if it was taken


def note_trials(sweep_dir: Path, running: int, waiting: int, keeping: Sequence[str] = ()) -> None:
    """Note for ``sweeper status`` how many of the driver's trials run and how many wait to
    start, as of now (the driver writes it whenever the counts change), and, once the sweep is
    done, the other drivers it keeps its Ray cluster up for (``keeping``). Best effort: a note
    that cannot be written only leaves status less to say."""
    note = {"running": running, "waiting": waiting, "since": _now(), **({"keeping": list(keeping)} if keeping else {})}
    try:
        write_atomic(Path(sweep_dir) / TRIALS_NAME, json.dumps(note))
    except WriteError:
        pass


def _now() -> str:
    """Now, as the notes give their ``since``: local time with its offset, to the second."""
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _trials(sweep_dir: Path, locked_at: float) -> dict[str, Any] | None:
    """The holder's :func:`note_trials`, or ``None``: none written, or a past driver's (written
    before this lock's note was)."""
    path = sweep_dir / TRIALS_NAME
    try:
        if path.stat().st_mtime < locked_at:
            return None
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(info, dict) and all(isinstance(info.get(k), int) for k in ("running", "waiting"))
    keeping = info.get("keeping", []) if ok else None
    ok = ok and isinstance(keeping, list) and all(isinstance(d, str) for d in keeping)
    return info if ok and isinstance(info.get("since"), str) else None


def _flock(fd: int, how: int, patience: float) -> bool:
    """Take ``fd``'s flock (``how``) within ``patience`` seconds; False if another holds it."""
    deadline = time.monotonic() + patience
    while True:
        try:
            fcntl.flock(fd, how | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


def _note(fd: int) -> dict[str, Any]:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def described(note: dict[str, Any]) -> str:
    """A lock's holder as its note names it: ``pid 8980 on host since ..., 1 trial at a time on
    the cluster at 127.0.0.1:6379`` (``a driver (just starting)`` before it wrote the note)."""
    if "pid" not in note:
        return "a driver (just starting)"
    at = f", {counted(note['max_concurrent'], 'trial')} at a time" if isinstance(note.get("max_concurrent"), int) else ""
    joined = f" on the cluster at {note['address']}" if note.get("address") else ""
    return f"pid {note['pid']} on {note.get('host')} since {note.get('since')}{at}{joined}"


@contextlib.contextmanager
def driver_lock(sweep_dir: Path, **note: Any) -> Iterator[DriverLock]:
    """Hold the sweep's driver lock for the block, its note naming the holder and ``note``."""
    lock = DriverLock(sweep_dir)
    lock.acquire(**note)
    try:
        yield lock
    finally:
        lock.release()
