"""``--wandb-sweep``: the spec registered as a W&B sweep, so the trial runs attach to it.

``wandb`` is imported only when tracking online.
"""

from __future__ import annotations

import logging
import time

from sweeper.tracking.environment import default_project, redact, resolve_mode

__all__ = ["register_sweep"]

# The package's logger: the tracking stage warns as one (`sweeper.tracking`), whichever module.
_log = logging.getLogger(__package__)


def register_sweep(wandb_config: dict, project: str | None, *, mode: str | None = None) -> str | None:
    """Register the spec (minus ``sweeper:``) as a W&B sweep when tracking online.

    Args:
        wandb_config: The W&B sweep configuration.
        project: The W&B project; default ``WANDB_PROJECT`` or ``"sweeper"`` (the runs' project).
        mode: The resolved mode; resolved with :func:`~sweeper.tracking.environment.resolve_mode`
            when None.

    Returns:
        The sweep id, or None when offline/disabled or when W&B refused (a warning is logged).
    """
    try:
        if resolve_mode(mode) != "online":
            return None
        import wandb

        started = time.monotonic()
        sweep_id = wandb.sweep(dict(wandb_config), project=project or default_project())
        _log.info("registered W&B sweep %s in %.1fs", sweep_id, time.monotonic() - started)
        return str(sweep_id) if sweep_id else None
    except Exception as err:  # noqa: BLE001 - a sweep that can't register still runs, untracked by W&B sweeps
        _log.warning("could not register a W&B sweep (%s: %s); runs are tracked without one",
                     type(err).__name__, redact(str(err)))
        return None
