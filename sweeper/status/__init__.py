"""``sweeper status`` and ``sweeper run --dry-run``: where a sweep stands and what a run of it
would do, read from its spec, ledger, checkpoints and driver lock (no Ray, no TensorFlow).

Safe while the sweep runs: the ledger is replaced atomically, so a read sees a whole file.
"""

from sweeper.status.dry_run import Preview, planned_trials, preview
from sweeper.status.summary import sweep_status

__all__ = ["Preview", "planned_trials", "preview", "sweep_status"]
