"""The ledger: ``trials.parquet`` and ``epochs.parquet`` in a sweep folder, the sweep's truth.

Written by the sweep driver alone, read by anyone at any moment (``sweeper status`` and
``report`` while it runs): every file is replaced whole, and ``trials.parquet`` is the commit
point (the rules are :class:`Ledger`'s, in :mod:`~sweeper.ledger.store`). No Ray, no TensorFlow.

Modules: :mod:`~sweeper.ledger.store` (:class:`Ledger`: the parquet files, the lock),
:mod:`~sweeper.ledger.tables` (arrow and pandas types) and :mod:`~sweeper.ledger.export`
(the CSV form a reference run commits).
"""

from __future__ import annotations

from sweeper.ledger.export import CSV_NAMES, RACE_CSV, read_csv_export
from sweeper.ledger.store import Ledger
from sweeper.ledger.tables import EPOCH_COLUMNS, TRIAL_COLUMNS, LedgerError, arrow_table, count_statuses
from sweeper.records import STATUSES

__all__ = [
    "Ledger", "LedgerError", "TRIAL_COLUMNS", "EPOCH_COLUMNS", "STATUSES", "CSV_NAMES", "RACE_CSV", "arrow_table",
    "count_statuses", "read_csv_export",
]
