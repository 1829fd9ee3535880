"""User-facing errors shared by `model` and `sweeper`.

Every error a user can cause (bad data, bad parameters, bad spec) derives from
:class:`UserError`. The CLI prints ``str(err)`` as one line and exits with
``err.exit_code``; no traceback is shown. Kept free of TensorFlow so that the
light parts of the CLI can import it.
"""

from __future__ import annotations

__all__ = ["UserError", "DataError", "ConfigError", "OutOfMemory", "suggest"]


class UserError(Exception):
    """An error caused by the user's input, reported as one line without a traceback."""

    exit_code: int = 1


class DataError(UserError):
    """A dataset problem: missing directory, unpaired or unreadable image, size mismatch."""


class ConfigError(UserError, ValueError):
    """A bad parameter or configuration value; the message names the field and the fix."""

    exit_code = 2


class OutOfMemory(UserError, MemoryError):
    """Training ran out of device memory; the message names the sizes to lower."""


def suggest(name: str, valid: "list[str] | tuple[str, ...]") -> str:
    """Return a `` (did you mean 'x'?)`` hint for ``name`` among ``valid``, or ``""``."""
    import difflib

    close = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
