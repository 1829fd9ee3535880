"""A sweep folder, ``<results>/<sweep>/``: finding one, its resolved spec, and atomic writes.

Every file the sweeper writes into a sweep folder is replaced whole (:func:`write_atomic`): a
reader (``sweeper status``/``report`` while a sweep runs, a browser refreshing the report)
or a ``kill -9`` at any moment sees the old file or the new one, never half of one. Temp
files end with :data:`TMP_SUFFIX`; the ledger removes any a killed writer left behind. The
one exception is ``driver.log``, Ray's output in a supervised run, appended to as it comes
(:mod:`sweeper.dispatch.supervisor`): a log, never read back.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

from model.errors import UserError
from model.files import TMP_SUFFIX, replace_file
from sweeper.spec import SpecError, SweepSpec, from_dict

__all__ = ["SPEC_FILE", "TMP_SUFFIX", "WriteError", "checkpoint_path", "find_sweep", "is_sweep", "read_spec",
           "write_atomic", "write_spec", "writable"]

_log = logging.getLogger(__name__)

SPEC_FILE = "spec.yaml"
"""The resolved spec a sweep ran with (defaults filled in), plus a ``resolved:`` provenance block."""
_RESOLVED = "resolved"  # provenance in spec.yaml (versions, git commit, resources): not part of the spec


def checkpoint_path(sweep_dir: Path, trial_id: str) -> Path:
    """Where a trial's epoch checkpoint lives: ``<sweep>/checkpoints/<trial id>.npz`` (``"*"``
    for a glob of them all)."""
    return Path(sweep_dir) / "checkpoints" / f"{trial_id}.npz"


# What makes a folder under results/ a sweep: any of these.
_MARKERS = (SPEC_FILE, "trials.parquet", "trials.csv")


class WriteError(UserError):
    """A file of the sweep cannot be written (a full disk, a read-only folder): nothing
    already written is harmed, and the same command, run again once it can write, goes on."""


def writable(path: Path, error: OSError) -> WriteError:
    """The one-line error for a failed write of ``path``."""
    why = error.strerror or type(error).__name__
    return WriteError(f"{path}: cannot be written ({why}); nothing recorded is lost: free some space, or make the "
                      "folder writable, and run the same command again")


def write_atomic(path: Path, data: str | bytes, *, durable: bool = False) -> Path:
    """Replace ``path`` with ``data`` in one step (:func:`model.files.replace_file`).

    Args:
        path: The file to write.
        data: Its whole content (text is written as UTF-8).
        durable: Also fsync the file and the folder, so the new content survives a power
            cut, not only a crash of this process (the ledger's commit needs it).

    Returns:
        ``path``.

    Raises:
        WriteError: the file could not be written; ``path`` is as it was, no temp file is left.
    """
    try:
        return replace_file(Path(path), data.encode("utf-8") if isinstance(data, str) else data, durable=durable)
    except OSError as err:
        raise writable(Path(path), err) from None


def is_sweep(folder: Path) -> bool:
    """Whether ``folder`` holds a sweep: a spec written by ``sweeper run`` (before its first
    trial starts), a ledger, or a committed CSV export."""
    return any((Path(folder) / marker).is_file() for marker in _MARKERS)


def find_sweep(sweep: Path | None, results_dir: Path) -> Path:
    """The sweep folder named (a path, or a sweep's name under ``results_dir``, as `sweeper run`
    names it), or the most recently updated one under ``results_dir``.

    Raises:
        UserError: the folder named does not exist, or ``results_dir`` holds no sweep.
    """
    if sweep is not None:
        if sweep.is_dir():
            return sweep
        if len(sweep.parts) == 1 and (results_dir / sweep).is_dir():
            return results_dir / sweep
        raise UserError(f"{sweep}: no such sweep folder (nor {results_dir / sweep})")
    candidates = [d for d in results_dir.glob("*") if is_sweep(d)]
    if not candidates:
        raise UserError(f"{results_dir}: no sweeps yet; start one with `sweeper run search_spaces/optim_loss.yaml`")
    return max(candidates, key=lambda d: max(p.stat().st_mtime for p in d.iterdir()))


def read_spec(sweep_dir: Path) -> SweepSpec | None:
    """The spec a sweep ran with, from its ``spec.yaml`` (``None`` when absent or unreadable:
    the ledger alone still makes a report)."""
    import yaml

    path = Path(sweep_dir) / SPEC_FILE
    if not path.is_file():
        return None
    try:
        doc = yaml.safe_load(path.read_text()) or {}
        doc.pop(_RESOLVED, None)
        return from_dict(doc, source=str(path), wandb_schema_check=False)  # checked when the sweep ran
    except (SpecError, yaml.YAMLError, AttributeError, OSError) as err:
        _log.warning("%s: not read (%s); reporting from the ledger alone", path, str(err).splitlines()[0])
        return None


def write_spec(sweep_dir: Path, spec: SweepSpec, resolved: Mapping[str, Any]) -> Path:
    """Write the resolved spec and its provenance (``resolved:``) as ``spec.yaml``."""
    import yaml

    doc = {**spec.to_dict(), _RESOLVED: dict(resolved)}
    return write_atomic(Path(sweep_dir) / SPEC_FILE, yaml.safe_dump(doc, sort_keys=False))
