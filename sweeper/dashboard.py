"""``sweeper dashboard``: a sweep's Optuna mirror served by optuna-dashboard on this machine.

The offline stand-in for W&B's sweep page: history, parallel coordinates and parameter
importance in a browser, with no network. Binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

from pathlib import Path

from model.errors import ConfigError

__all__ = ["serve"]


def serve(sweep: Path | None = None, results_dir: Path = Path("results"), *, host: str = "127.0.0.1",
          port: int = 8080, metric: str | None = None) -> None:
    """Mirror the sweep into ``<sweep>/optuna.db`` and serve it until interrupted.

    Args:
        sweep: A sweep folder (default: the latest under ``results_dir``).
        results_dir: Where sweeps live.
        host: Interface to bind; the default keeps the dashboard private to this machine.
        port: TCP port.
        metric: The study's objective (default: the spec's metric).

    Raises:
        UserError: no sweep, no trials, a bad port.
    """
    from sweeper.status import find_sweep
    from sweeper.study import mirror_to_optuna

    if not 0 < port < 65536:
        raise ConfigError(f"--port: {port} is not a TCP port; use 1-65535, e.g. 8080")
    sweep_dir = find_sweep(sweep, results_dir)
    url, name = mirror_to_optuna(sweep_dir, metric)
    import optuna_dashboard

    print(f"sweeper: dashboard for {name} ({url}) at http://{host}:{port}/ (Ctrl-C stops it)", flush=True)
    try:
        optuna_dashboard.run_server(url, host=host, port=port)
    except OSError as err:
        raise ConfigError(f"--port: cannot listen on {host}:{port} ({err.strerror or err}); pick another port") from None
