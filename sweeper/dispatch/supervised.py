"""The driver's side of a supervised ``sweeper run`` (``python -m sweeper.dispatch FD PARENT_PID``):
take the job from the socket the supervisor passed, run it, and send back the log records,
the progress, the Ray node it uses and its outcome (:mod:`sweeper.dispatch.supervisor`)."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import pickle
import signal
import threading
import traceback
from multiprocessing.connection import Connection
from typing import Any, Sequence

from model.errors import UserError
from model.runtime import VERBOSE_ENV, exit_now
from sweeper.dispatch.driver import Hooks, run

__all__ = ["child_main"]


class _Channel:
    """The driver's end of the socket; log records come from threads too, so sends take turns."""

    def __init__(self, conn: Connection) -> None:
        self.conn, self._lock = conn, threading.Lock()

    def send(self, *message: Any) -> None:
        with self._lock:
            self.conn.send(message)


class _Forward(logging.Handler):
    """The driver's log records, sent to the supervising process, which prints them."""

    def __init__(self, channel: _Channel) -> None:
        super().__init__(logging.DEBUG)
        self.channel = channel

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.channel.send("log", record.name, record.levelno, record.getMessage())
        except Exception:  # noqa: BLE001 - logging must never take the driver down
            self.handleError(record)


def child_main(argv: Sequence[str]) -> int:
    """The driver of a supervised sweep (``python -m sweeper.dispatch FD PARENT_PID``): take the
    job from the socket ``FD``, run it, send back its outcome. Returns the exit status."""
    fd, parent = int(argv[0]), int(argv[1])
    _die_with(parent)
    # Ctrl-C and SIGTERM are held (blocked) from the fork until run() can stop gracefully.
    channel = _Channel(Connection(fd))
    try:
        _, spec, options = channel.conn.recv()
        handler = _Forward(channel)
        for name in ("sweeper", "model"):
            logger = logging.getLogger(name)
            logger.setLevel(logging.DEBUG if os.environ.get(VERBOSE_ENV) else logging.INFO)
            logger.addHandler(handler)
        hooks = Hooks(progress=lambda total, done, detail: channel.send("progress", total, done, detail),
                      joined=lambda node: channel.send("node", node))
        outcome: tuple[Any, ...] = ("done", run(spec, options, hooks=hooks, locked=True))
    except UserError as err:
        outcome = ("error", _portable(err))
    except (KeyboardInterrupt, SystemExit):  # SystemExit: ray.init's SIGTERM handler, while Ray starts
        outcome = ("interrupted",)
    except BaseException:  # noqa: BLE001 - the parent decides: a dead cluster, or a bug to show
        outcome = ("crash", traceback.format_exc())
    channel.send(*outcome)
    channel.conn.close()
    if outcome[0] == "crash":
        exit_now(1)  # Ray's exit handlers would wait on a cluster that may be gone; the parent has the story
    return {"done": 0, "error": 1, "interrupted": 130}[outcome[0]]


def _die_with(parent: int) -> None:
    """SIGKILL this process when its parent dies (Linux), as Ray does for the processes it
    starts: a ``kill -9`` of ``sweeper run`` ends its driver and, with it, its local Ray."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def _portable(err: UserError) -> UserError:
    """``err`` if it survives pickling, else a plain UserError with its message and exit status."""
    try:
        pickle.loads(pickle.dumps(err))
        return err
    except Exception:  # noqa: BLE001 - an exception type whose __init__ pickle cannot replay
        plain = UserError(str(err))
        plain.exit_code = err.exit_code
        return plain
