"""Test-only fault injection (on PYTHONPATH for the write-fault tests, never in the product): the
sweep folder's writes fail like a full disk or a read-only folder.

SWEEPER_FAULT_ERRNO names the errno (ENOSPC, EROFS); SWEEPER_FAULT_FILE the file whose
replacement fails (a name or glob: trials.parquet, spec.yaml, train-*); SWEEPER_FAULT_AFTER
how many of those replacements succeed first.
"""

import errno
import fnmatch
import os

_ERRNO = os.environ.get("SWEEPER_FAULT_ERRNO")
if _ERRNO:
    _code = getattr(errno, _ERRNO)
    _file = os.environ.get("SWEEPER_FAULT_FILE", "trials.parquet")
    _left = [int(os.environ.get("SWEEPER_FAULT_AFTER", "0"))]
    _replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if fnmatch.fnmatch(os.path.basename(os.fspath(dst)), _file):
            if _left[0] <= 0:
                raise OSError(_code, os.strerror(_code), os.fspath(dst))
            _left[0] -= 1
        return _replace(src, dst, *args, **kwargs)

    os.replace = replace
