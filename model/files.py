"""Files replaced whole, so a reader or a ``kill -9`` at any moment sees the old file or the new
one, never half of one. The sweep folder's files (:func:`sweeper.folder.write_atomic`) and a
run's checkpoint (:mod:`model.checkpoint`) are both written through :func:`replace_file`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["TMP_SUFFIX", "replace_file"]

TMP_SUFFIX = ".tmp"
"""Ends a temp file's name (``trials.parquet.tmp``): a glob for the real files (``*.npz``,
``*.csv``) never matches one a killed writer left behind."""


def replace_file(path: Path, data: bytes, *, durable: bool = False) -> Path:
    """Replace ``path`` with ``data`` in one step: a temp file in the same folder, then ``os.replace``.

    Args:
        path: The file to write.
        data: Its whole content.
        durable: Also fsync the file and the folder, so the new content survives a power cut,
            not only a crash of this process.

    Returns:
        ``path``.

    Raises:
        OSError: the file could not be written; ``path`` is as it was and no temp file is left.
    """
    path = Path(path)
    tmp = path.with_name(f"{path.name}{TMP_SUFFIX}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
        if durable:
            fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)  # makes the rename itself durable
            finally:
                os.close(fd)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    return path
