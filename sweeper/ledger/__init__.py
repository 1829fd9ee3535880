"""The ledger: ``trials.parquet`` and ``epochs.parquet`` in a sweep folder, the sweep's truth.

One writer at a time (the sweep driver; a second one waits on a lock and then sees the
first one's rows), any number of readers (``sweeper status``/``report`` while it runs).
Every write replaces a whole file atomically (temp file in the same folder, fsync,
``os.replace``), so a reader or a ``kill -9`` at any moment sees the old or the new file,
never a torn one. Epochs are written before trials: ``trials.parquet`` is the commit point,
and epoch rows of a trial it does not list are ignored. No Ray, no TensorFlow here.

Modules: :mod:`~sweeper.ledger.store` (:class:`Ledger`: the parquet files, the lock),
:mod:`~sweeper.ledger.tables` (arrow and pandas types) and :mod:`~sweeper.ledger.export`
(the CSV form a reference run commits).
"""

from __future__ import annotations

from sweeper.ledger.export import CSV_NAMES, RACE_CSV, read_csv_export
from sweeper.ledger.store import Ledger
from sweeper.ledger.tables import EPOCH_COLUMNS, TRIAL_COLUMNS, LedgerError, arrow_table
from sweeper.records import STATUSES

__all__ = [
    "Ledger", "LedgerError", "TRIAL_COLUMNS", "EPOCH_COLUMNS", "STATUSES", "CSV_NAMES", "RACE_CSV", "arrow_table",
    "read_csv_export",
]
