"""``sweeper dashboard``: a sweep's Optuna mirror served by optuna-dashboard on this machine.

The offline stand-in for W&B's sweep page: history, parallel coordinates and parameter
importance in a browser, with no network. Binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

from pathlib import Path

from model.errors import ConfigError
from sweeper.folder import find_sweep
from sweeper.study import mirror_to_optuna

__all__ = ["prepare", "serve"]


def prepare(sweep: Path | None = None, results_dir: Path = Path("results"), *, port: int = 8080,
            metric: str | None = None) -> tuple[str, str]:
    """Check the port and mirror the sweep into ``<sweep>/optuna.db``.

    Args:
        sweep: A sweep folder (default: the latest under ``results_dir``).
        results_dir: Where sweeps live.
        port: The TCP port :func:`serve` will listen on.
        metric: The study's objective (default: the spec's metric).

    Returns:
        The study's storage URL and its name.

    Raises:
        UserError: no sweep, no trials, a bad port.
    """
    if not 0 < port < 65536:
        raise ConfigError(f"--port: {port} is not a TCP port; use 1-65535, e.g. 8080")
    return mirror_to_optuna(find_sweep(sweep, results_dir), metric)


def serve(url: str, *, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve the study at ``url`` with optuna-dashboard until interrupted.

    Args:
        url: An Optuna storage URL (from :func:`prepare`).
        host: Interface to bind; the default keeps the dashboard private to this machine.
        port: TCP port.

    Raises:
        ConfigError: the port cannot be listened on.
    """
    import optuna_dashboard

    try:
        optuna_dashboard.run_server(url, host=host, port=port)
    except OSError as err:
        raise ConfigError(f"--port: cannot listen on {host}:{port} ({err.strerror or err}); pick another port") from None
