"""One driver per sweep: a second ``sweeper run`` of a sweep that is running is refused.

Two drivers of one sweep would each dispatch every trial the ledger lacks: each trial would
train twice (seen: 12 trainings for 6 rows). Cooperating drivers would need trial claims that
survive a driver's death; refusing is simpler and says exactly what to do. The lock is an
``flock`` on ``<sweep>/.driver.lock``, which the kernel releases when the holder dies (even by
``kill -9``), so a crashed driver's lock is taken over by the next one; the file names the
holder (host, pid, since) for the message. POSIX ``flock`` does not reach across hosts on
every network filesystem: run one sweep's drivers from one host.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import socket
from pathlib import Path
from typing import Iterator

from model.errors import UserError
from sweeper.folder import writable

try:  # POSIX; elsewhere there is no lock (one driver is still the rule)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["DriverLock", "SweepBusy", "driver_lock"]

LOCK_NAME = ".driver.lock"


class SweepBusy(UserError):
    """Another driver is running this sweep."""


class DriverLock:
    """The lock on one sweep folder; :meth:`acquire` or refuse, :meth:`release` when done."""

    def __init__(self, sweep_dir: Path) -> None:
        self.path = Path(sweep_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, writing who holds it.

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
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder(fd)
            os.close(fd)
            raise SweepBusy(f"{self.path.parent}: this sweep is being run by {holder}; wait for it to finish (or "
                            "stop it with Ctrl-C), then run the same command again: only what is missing runs") from None
        self._fd = fd
        try:
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                     "since": _dt.datetime.now().astimezone().isoformat(timespec="seconds")}).encode())
        except OSError:
            pass  # the lock holds without its note (a full disk): the holder is then "just starting"

    def release(self) -> None:
        """Let the next driver in (the file stays; its content is stale once unlocked)."""
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        except (OSError, ValueError):
            info = {}
        if not info:
            return "another driver (just starting)"
        return f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')}"


@contextlib.contextmanager
def driver_lock(sweep_dir: Path) -> Iterator[DriverLock]:
    """Hold the sweep's driver lock for the block."""
    lock = DriverLock(sweep_dir)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()
