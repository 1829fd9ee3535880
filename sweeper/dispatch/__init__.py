"""Ray Tune dispatch: plan the trials, join Ray, pin resources, run them, write the ledger.

With :mod:`sweeper.trainable` the only code that imports Ray, and only once a sweep really
runs (``sweeper --help`` and ``--dry-run`` stay light). The ledger, not Ray's experiment
pickles, is the truth: a driver-side callback records every finished trial, and a re-run
first recovers the trials an interrupted run finished, then dispatches only the rest.

Modules, in the order a run uses them: :mod:`~sweeper.dispatch.plan` (which trials),
:mod:`~sweeper.dispatch.cluster` (Ray and resource pinning), :mod:`~sweeper.dispatch.search`
(param space, batches, searcher, scheduler; :mod:`~sweeper.dispatch.distinct`),
:mod:`~sweeper.dispatch.results` (Tune results -> ledger rows, recovery;
:mod:`~sweeper.dispatch.callback`), :mod:`~sweeper.dispatch.console` (progress, watchdog,
Ctrl-C), :mod:`~sweeper.dispatch.provenance`, and :mod:`~sweeper.dispatch.driver` (``run``).
``sweeper run`` runs the driver in a child process of its own
(:mod:`~sweeper.dispatch.supervisor`, ``python -m sweeper.dispatch``): when Ray ends the
driver because its node died, the command still says so in one line.
"""

from __future__ import annotations

from sweeper.dispatch.cluster import LOCAL_HOST, connect, local_cpu_warning, pin_resources
from sweeper.dispatch.driver import RunOptions, RunSummary, run
from sweeper.dispatch.plan import SweepPlan, plan
from sweeper.dispatch.results import record_from_results
from sweeper.dispatch.supervisor import (EXIT_DRIVER_LOST, EXIT_INTERRUPTED, DriverLost, StoppedAtOnce, resume_command,
                                         supervise)

__all__ = [
    "EXIT_DRIVER_LOST", "EXIT_INTERRUPTED", "LOCAL_HOST", "DriverLost", "RunOptions", "RunSummary", "StoppedAtOnce",
    "SweepPlan", "connect", "local_cpu_warning", "pin_resources", "plan", "record_from_results", "resume_command",
    "run", "supervise",
]
