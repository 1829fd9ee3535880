"""W&B tracking: one run per trial (and one per look of a race), and it never fails a trial.

The only code that imports ``wandb``, and only inside functions: ``import sweeper.tracking``
stays cheap so ``sweeper report`` and ``--help`` never pay for it.

Runs are written offline by default (no API key): ``<sweep>/wandb/offline-run-*`` directories,
uploaded later with ``wandb sync`` and read back with ``wandb leet inspect --summary --json``.
Any W&B error (a bad key, no network, a full disk) is logged once as a warning (on the
``sweeper.tracking`` logger) and the tracker becomes a no-op; the trial and the ledger carry on.

Modules: :mod:`~sweeper.tracking.environment` (the mode, the project, the key kept out of
messages), :mod:`~sweeper.tracking.runs` (:class:`TrialTracker`, in the workers; a race's looks,
from the driver),
:mod:`~sweeper.tracking.sweep` (``--wandb-sweep``) and :mod:`~sweeper.tracking.readback`
(a local run read back).
"""

from __future__ import annotations

from sweeper.tracking.environment import resolve_mode
from sweeper.tracking.readback import read_run_summary
from sweeper.tracking.sweep import register_sweep
from sweeper.tracking.runs import TrialTracker, log_race_look

__all__ = ["TrialTracker", "log_race_look", "resolve_mode", "read_run_summary", "register_sweep"]
