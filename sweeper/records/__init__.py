"""The records handed from one stage to the next, each defined once for writer and reader.

- :class:`TrialReport`: what a running trial reports to Ray Tune (worker -> driver), once
  per scored epoch and once more when it ends without one (a config error, a divergence).
  The trainable writes ``report.to_dict()``; the driver reads ``TrialReport.from_result``.
- :class:`TrialRow` and :class:`EpochRow`: a finished trial and its epochs as the ledger keeps
  them (driver -> ledger -> report); :class:`Elimination`, a configuration a race stopped.
  :data:`TRIAL_SCHEMA`, :data:`EPOCH_SCHEMA` and :data:`RACE_SCHEMA` are their columns, in
  order, with types; the ledger's files and frames are built from them.

Modules: :mod:`~sweeper.records.columns` (the schemas, parameter columns, plain values),
:mod:`~sweeper.records.placement` (where a trial ran), :mod:`~sweeper.records.rows` (the
ledger's rows) and :mod:`~sweeper.records.trial_report` (the worker's report). No pandas,
pyarrow, Ray or TensorFlow here: the trainable imports this in every worker.
"""

from __future__ import annotations

from sweeper.records.columns import (
    EPOCH_SCHEMA,
    PARAM_PREFIX,
    RACE_SCHEMA,
    STATUSES,
    TRIAL_SCHEMA,
    Column,
    counted,
    label,
    param_column,
    params_of,
    plain,
    show,
    shown_apart,
)
from sweeper.records.placement import Placement
from sweeper.records.rows import Elimination, EpochRow, TrialRow
from sweeper.records.trial_report import TrialReport

__all__ = [
    "Column",
    "EPOCH_SCHEMA",
    "Elimination",
    "RACE_SCHEMA",
    "EpochRow",
    "PARAM_PREFIX",
    "Placement",
    "STATUSES",
    "TRIAL_SCHEMA",
    "TrialReport",
    "TrialRow",
    "counted",
    "label",
    "param_column",
    "params_of",
    "plain",
    "show",
    "shown_apart",
]
