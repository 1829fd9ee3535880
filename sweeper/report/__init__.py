"""``sweeper report``: a sweep's ledger turned into a ranking, plots and a verdict on the write-up.

One row per configuration (the searched parameters except the seed), with the mean and a
95% Student-t interval over seeds; the write-up's two claims checked against the ranking
with Welch intervals of the gaps; Optuna's parameter importance; plots; ``report.md``,
a self-contained ``report.html`` and ``report.json`` in the sweep folder.

Safe while the sweep runs (the ledger is read whole and report files are replaced
atomically). No TensorFlow, Ray or Keras.

Modules, in the order a report uses them: :mod:`~sweeper.report.stats` (intervals),
:mod:`~sweeper.report.ranking` (configurations ranked, failed trials),
:mod:`~sweeper.report.claims` (the verdicts), :mod:`~sweeper.report.plots` (the figures),
:mod:`~sweeper.report.render` (md, csv, html, json, terminal tables; value formatting in
:mod:`~sweeper.report.display`) and :mod:`~sweeper.report.build` (:func:`build_report`, :func:`report`).
"""

from __future__ import annotations

from sweeper.report.build import build_report, report
from sweeper.report.claims import CLAIMS, OUTCOMES, Claim, Verdict, judge
from sweeper.report.document import Report
from sweeper.report.ranking import ConfigResult, failed_trials, rank_configs
from sweeper.report.render import FORMATS, render, rich_table
from sweeper.report.stats import LEVEL, Interval, difference_interval, mean_interval

__all__ = [
    "CLAIMS",
    "Claim",
    "ConfigResult",
    "FORMATS",
    "LEVEL",
    "OUTCOMES",
    "Interval",
    "Report",
    "Verdict",
    "build_report",
    "difference_interval",
    "failed_trials",
    "judge",
    "mean_interval",
    "rank_configs",
    "render",
    "report",
    "rich_table",
]
