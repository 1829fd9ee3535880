"""The ledger: ``trials.parquet`` and ``epochs.parquet`` in a sweep folder, the sweep's truth.

One writer (the sweep driver), any number of readers (``sweeper status``/``report`` while it
runs). Every write replaces a whole file atomically (temp file in the same folder, fsync,
``os.replace``), so a reader or a ``kill -9`` at any moment sees the old or the new file,
never a torn one. Epochs are written before trials: ``trials.parquet`` is the commit point,
and epoch rows of a trial it does not list are ignored. No Ray, no TensorFlow here.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from model.errors import UserError
from model.params import PARAMETER_NAMES

__all__ = ["Ledger", "LedgerError", "TRIAL_COLUMNS", "EPOCH_COLUMNS", "STATUSES"]

STATUSES = ("ok", "error", "diverged")

# column -> pandas dtype; params_* hold mixed types (a loss name, a rate), so "object".
_TRIAL_DTYPES: dict[str, str] = {
    "trial_id": "str",
    **{f"params_{name}": "object" for name in PARAMETER_NAMES},
    "status": "str",
    "val_psnr": "float64",
    "val_ssim": "float64",
    "val_mae": "float64",
    "best_epoch": "int64",
    "epochs_run": "int64",
    "seconds": "float64",
    "images_per_second": "float64",
    "accelerator": "str",
    "gpu_ids": "str",
    "node": "str",
    "attempts": "int64",
    "error": "str",
    "finished_at": "str",
}
_EPOCH_DTYPES: dict[str, str] = {
    "trial_id": "str",
    "epoch": "int64",
    "train_loss": "float64",
    "val_psnr": "float64",
    "val_ssim": "float64",
    "val_mae": "float64",
}
TRIAL_COLUMNS: tuple[str, ...] = tuple(_TRIAL_DTYPES)
EPOCH_COLUMNS: tuple[str, ...] = tuple(_EPOCH_DTYPES)
_TMP_PREFIX = ".tmp-"


class LedgerError(UserError):
    """A ledger file cannot be read (truncated or corrupt)."""


def _frame(rows: Sequence[Mapping[str, Any]], dtypes: Mapping[str, str]) -> Any:
    import pandas as pd

    frame = pd.DataFrame(list(rows), columns=list(dtypes))
    for column, dtype in dtypes.items():
        if dtype == "object":
            frame[column] = frame[column].astype(object)
        elif dtype == "str":
            frame[column] = frame[column].fillna("").astype(str)
        else:
            frame[column] = frame[column].astype(dtype)
    return frame


def _coerce(row: Mapping[str, Any], dtypes: Mapping[str, str], what: str) -> dict[str, Any]:
    unknown = sorted(set(row) - set(dtypes))
    if unknown:
        raise ValueError(f"{what}: unknown columns {unknown}; valid: {', '.join(dtypes)}")
    out: dict[str, Any] = {}
    for column, dtype in dtypes.items():
        value = row.get(column)
        if dtype == "float64":
            out[column] = math.nan if value is None else float(value)
        elif dtype == "int64":
            out[column] = 0 if value is None else int(value)
        elif dtype == "str":
            out[column] = "" if value is None else str(value)
        else:
            out[column] = value
    return out


class Ledger:
    """The record of one sweep's finished trials.

    Args:
        sweep_dir: The sweep folder (``<results>/<name>``).
        create: Make the folder if missing (readers pass ``False`` and see an empty ledger).
    """

    def __init__(self, sweep_dir: str | Path, *, create: bool = True) -> None:
        self.sweep_dir = Path(sweep_dir)
        if create:
            self.sweep_dir.mkdir(parents=True, exist_ok=True)
        self.trials_path = self.sweep_dir / "trials.parquet"
        self.epochs_path = self.sweep_dir / "epochs.parquet"
        self._trials: list[dict[str, Any]] | None = None  # the writer's cache
        self._epochs: list[dict[str, Any]] | None = None

    # ------------------------------------------------------------------ reading

    def _read(self, path: Path, dtypes: Mapping[str, str]) -> Any:
        import io

        import pandas as pd

        try:
            # One open, one read: pyarrow given a path may open it several times (footer,
            # then pages), and a replace in between would pair one file's footer with
            # another's pages. The bytes of a single open are always one whole file.
            data = path.read_bytes()
        except FileNotFoundError:
            return _frame([], dtypes)
        try:
            frame = pd.read_parquet(io.BytesIO(data))
        except Exception as err:  # pyarrow raises several types for torn or foreign files
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise LedgerError(
                f"{path}: unreadable ({reason}); move it aside and run `sweeper run SPEC --resume`: "
                "trials found in the sweep's ray/ folder are recovered, the rest re-run"
            ) from None
        missing = [c for c in dtypes if c not in frame.columns]
        if missing:
            raise LedgerError(f"{path}: not a sweeper ledger (missing columns {', '.join(missing)})")
        return frame[list(dtypes)]

    def trials(self) -> Any:
        """All recorded trials as a DataFrame with :data:`TRIAL_COLUMNS`."""
        return self._read(self.trials_path, _TRIAL_DTYPES)

    def epochs(self) -> Any:
        """Per-epoch rows of the recorded trials (rows of unrecorded trials are dropped)."""
        epochs = self._read(self.epochs_path, _EPOCH_DTYPES)
        return epochs[epochs["trial_id"].isin(self.done_ids())].reset_index(drop=True)

    def done_ids(self) -> set[str]:
        """Ids of every recorded trial, whatever its status."""
        return set(self.trials()["trial_id"])

    def status_counts(self) -> dict[str, int]:
        """Recorded trials per status."""
        return {str(k): int(v) for k, v in self.trials()["status"].value_counts().sort_index().items()}

    # ------------------------------------------------------------------ writing

    def _load_cache(self) -> None:
        if self._trials is None:
            self._trials = self.trials().to_dict("records")
            self._epochs = self._read(self.epochs_path, _EPOCH_DTYPES).to_dict("records")
            for stale in self.sweep_dir.glob(f"{_TMP_PREFIX}*"):  # left by a killed write
                stale.unlink(missing_ok=True)

    def _write(self, rows: list[dict[str, Any]], dtypes: Mapping[str, str], path: Path) -> None:
        tmp = path.with_name(f"{_TMP_PREFIX}{path.name}")
        _frame(rows, dtypes).to_parquet(tmp, index=False)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(self.sweep_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the rename itself durable
        finally:
            os.close(dir_fd)

    def record(self, row: Mapping[str, Any], epochs: Sequence[Mapping[str, Any]] = ()) -> bool:
        """Append one finished trial and its epoch rows.

        Returns:
            ``False`` (and writes nothing) when the trial id is already recorded: re-recording
            after a resume can never duplicate a trial.

        Raises:
            ValueError: missing trial_id, unknown status or unknown columns.
        """
        if not row.get("trial_id"):
            raise ValueError("ledger row: trial_id is missing")
        if row.get("status") not in STATUSES:
            raise ValueError(f"ledger row: status {row.get('status')!r} is not one of {', '.join(STATUSES)}")
        clean = _coerce(row, _TRIAL_DTYPES, "ledger row")
        if not clean["finished_at"]:
            clean["finished_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        epoch_rows = [_coerce({**e, "trial_id": clean["trial_id"]}, _EPOCH_DTYPES, "epoch row") for e in epochs]
        self._load_cache()
        assert self._trials is not None and self._epochs is not None
        if any(r["trial_id"] == clean["trial_id"] for r in self._trials):
            return False
        # Stale rows of this trial (from a write cut short before its commit) are replaced.
        new_epochs = [r for r in self._epochs if r["trial_id"] != clean["trial_id"]] + epoch_rows
        self._write(new_epochs, _EPOCH_DTYPES, self.epochs_path)
        self._epochs = new_epochs
        self._write(self._trials + [clean], _TRIAL_DTYPES, self.trials_path)
        self._trials.append(clean)
        return True

    def export_csv(self, path: str | Path) -> Path:
        """Write the trials table as CSV (for committing reference runs)."""
        target = Path(path)
        self.trials().to_csv(target, index=False)
        return target
