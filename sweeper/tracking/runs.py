"""One W&B run per trial (:class:`TrialTracker`), and it never fails a trial.

``wandb`` is imported inside methods only: ``import sweeper.tracking`` stays cheap so
``sweeper report`` and ``--help`` never pay for it. Any W&B error (a bad key, no network, a
full disk) is logged once as a warning and the tracker becomes a no-op; the trial and the
ledger carry on.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence, TypeVar

from model.images import side_by_side
from model.metrics import VAL_METRICS
from sweeper.tracking.environment import default_project, redact

if TYPE_CHECKING:
    import numpy as np

__all__ = ["TrialTracker", "log_race_look"]

# The package's logger: the tracking stage warns as one (`sweeper.tracking`), whichever module.
_log = logging.getLogger(__package__)

_EPOCH_METRICS = ("train_loss", *VAL_METRICS)
_OK_STATUSES = ("ok", "diverged")  # a diverged trial is a result, not a crash
_MAX_RUN_ID = 64
# Starting wandb-core took 48 s once on a loaded 2-core CI machine; wandb's own default is 90 s.
_INIT_TIMEOUT_S = 120.0
# Online only: stop waiting for uploads at the end of a run; the data stays on disk for `wandb sync`.
_FINISH_TIMEOUT_S = 120.0

_T = TypeVar("_T")


def _clean(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")


def _run_id(sweep_name: str, trial_id: str) -> str:
    """A deterministic W&B run id (so ``resume="allow"`` continues a retried trial's run).

    Only letters, digits, ``_`` and ``-`` (W&B rejects ``:;,#?/'`` and uses the id in paths).
    The trial id is kept whole: it is what ledger rows and run directories are matched on.
    """
    sweep, trial = _clean(sweep_name) or "sweep", _clean(trial_id) or "trial"
    run_id = f"{sweep}-{trial}"
    if len(run_id) <= _MAX_RUN_ID:
        return run_id
    # A digest of the full id keeps two long names that share a prefix apart.
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:8]
    trial = trial[-(_MAX_RUN_ID // 2):]
    return f"{sweep[: _MAX_RUN_ID - len(trial) - len(digest) - 2]}-{digest}-{trial}"


def _wandb_root(wandb_dir: Path) -> Path:
    """The ``dir=`` for ``wandb.init`` so that runs land directly in ``wandb_dir``.

    wandb always writes into ``<dir>/wandb``; for ``results/<sweep>/wandb`` that means passing
    the sweep folder. Any other name gets its own ``wandb`` subfolder.
    """
    return wandb_dir.parent if wandb_dir.name == "wandb" else wandb_dir


def _settings_kwargs(mode: str, sweep_id: str | None) -> dict[str, Any]:
    """``wandb.Settings`` for a trial run: quiet, fast to start, nothing captured but our data.

    Measured here (wandb 0.31, 2 cores): a cold ``wandb.init`` costs ~0.5 s whatever the
    settings (starting wandb-core dominates); warm, these make it ~15 ms instead of ~125 ms.
    """
    settings: dict[str, Any] = dict(
        silent=True,  # Ray already prefixes and collects worker output; no per-run banners
        console="off",  # trial stdout is Ray's; capturing it could copy anything into W&B
        x_disable_stats=True,  # no system-metrics sampler per trial on a 2-core box
        # No environment record: a Ray worker's argv/program/host details are noise and may be
        # sensitive; versions and the git commit are in results/<sweep>/spec.yaml.
        x_disable_meta=True,
        x_disable_machine_info=True,
        disable_git=True,
        save_code=False,
        x_save_requirements=False,  # a pip freeze per trial; spec.yaml records versions
        init_timeout=_INIT_TIMEOUT_S,
        use_dot_wandb=False,  # always `<dir>/wandb`, even if a `.wandb` folder exists there
    )
    if mode == "online":
        settings["finish_timeout"] = _FINISH_TIMEOUT_S
    if sweep_id:
        settings["sweep_id"] = sweep_id
    return settings


def _summary_value(value: Any) -> Any:
    """Make a summary value survive the round trip through the ``.wandb`` log.

    wandb writes a NaN summary value as null, which readers then drop; a diverged trial's
    metrics would vanish. Store non-finite floats the way wandb stores them in history.
    """
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()  # numpy scalar -> Python
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


class TrialTracker:
    """One W&B run for one trial; every W&B call is guarded so tracking never fails a trial.
    (``job_type="race"``: one look of a race, from the driver; see :func:`log_race_look`.)

    On the first W&B error the tracker logs one warning (with the reason) and turns into a
    no-op for the rest of the run. Usable as a context manager (``start`` on entry, ``finish``
    on exit if not already finished, with status ``error`` when an exception is leaving).

    Attributes:
        ok: False once a W&B call has failed (the tracker is then a no-op).
        run_dir: The run's local directory (``.../wandb/offline-run-...``), once started.
        run_id: The deterministic W&B run id.
    """

    def __init__(
        self,
        sweep_name: str,
        trial_id: str,
        params: Mapping[str, Any],
        wandb_dir: Path,
        mode: str,
        sweep_id: str | None = None,
        job_type: str = "trial",
    ) -> None:
        self.sweep_name = sweep_name
        self.job_type = job_type
        self.trial_id = trial_id
        # Copied now: config is exactly the trial params, nothing from the environment.
        self.params = dict(params)
        self.wandb_dir = Path(wandb_dir)
        self.mode = mode
        self.sweep_id = sweep_id
        self.run_id = _run_id(sweep_name, trial_id)
        self.ok = True
        self.run_dir: Path | None = None
        self._run: Any = None
        self._step = 0
        self._finished = False

    # -- lifecycle

    def start(self) -> "TrialTracker":
        """Create the W&B run (nothing at all in ``disabled`` mode). Returns self."""
        if self.mode == "disabled" or self._run is not None or self._finished or not self.ok:
            return self
        self._run = self._guard("wandb.init", self._init)
        if self._run is not None:
            self.run_dir = self._guard("locating the run directory", lambda: Path(self._run.settings.sync_dir))
        return self

    def _init(self) -> Any:
        import wandb

        root = _wandb_root(self.wandb_dir)
        root.mkdir(parents=True, exist_ok=True)
        return wandb.init(
            project=default_project(),
            group=self.sweep_name,
            job_type=self.job_type,
            name=self.trial_id,
            id=self.run_id,
            config=self.params,
            dir=str(root),
            mode=self.mode,
            reinit="create_new",  # a Ray worker may run several trials; each gets its own run
            resume="allow",  # a retried trial continues the same run id
            settings=wandb.Settings(**_settings_kwargs(self.mode, self.sweep_id)),
        )

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Log one epoch's ``train_loss``, ``val_psnr``, ``val_ssim``, ``val_mae`` at step ``epoch``."""
        if self._run is None:
            return

        def log() -> None:
            row = {k: float(metrics[k]) for k in _EPOCH_METRICS if k in metrics}
            self._step = max(self._step, int(epoch))
            self._run.log(row, step=self._step)

        self._guard("logging an epoch", log)

    def log_images(
        self,
        triplets: Sequence[tuple["np.ndarray", "np.ndarray", "np.ndarray"]],
        caption_prefix: str = "",
    ) -> None:
        """Log (blurred, restored, sharp) samples, one side-by-side strip per sample."""
        if self._run is None:
            return

        def log() -> None:
            if len(triplets) == 0:
                return
            import wandb

            images = [
                wandb.Image(side_by_side(t), caption=f"{caption_prefix}sample {i}: blurred | restored | sharp")
                for i, t in enumerate(triplets)
            ]
            # At the last epoch's step: stepping back is refused, stepping on adds a blank row.
            self._run.log({"samples": images}, step=self._step)

        self._guard("logging sample images", log)

    def log_table(self, key: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Log ``rows`` as one ``wandb.Table`` under ``key`` (at the current step)."""
        if self._run is None:
            return

        def log() -> None:
            import wandb

            self._run.log({key: wandb.Table(columns=list(columns), data=[list(r) for r in rows])}, step=self._step)

        self._guard(f"logging the {key} table", log)

    def logged_before(self) -> bool:
        """Whether a run with this run id is in the wandb folder already (offline or online)."""
        root = _wandb_root(self.wandb_dir) / "wandb"
        # <offline-run|run>-YYYYMMDD_HHMMSS-<id>: the timestamp has no hyphen, so the id is exact.
        return any(root.glob(f"*run-[0-9]*_[0-9]*-{self.run_id}"))

    def finish(self, summary: Mapping[str, Any], status: str) -> None:
        """Write the run summary (plus ``status``) and close the run.

        Exit code 0 for ``ok``/``diverged``, 1 otherwise, so W&B shows errors as failed runs.
        """
        if self._finished:
            return
        self._finished = True
        if self._run is None:
            return
        self._guard("writing the summary", lambda: self._run.summary.update(
            {str(k): _summary_value(v) for k, v in {**summary, "status": status}.items()}))
        exit_code = 0 if status in _OK_STATUSES else 1
        # Finish even after an earlier failure: an open run would hold wandb-core resources.
        self._guard("finishing the run", lambda: self._run.finish(exit_code=exit_code), always=True)
        self._run = None

    def __enter__(self) -> "TrialTracker":
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.finish({}, "ok")
        else:
            self.finish({"error": redact(f"{type(exc).__name__}: {exc}")}, "error")

    # -- failure handling

    def _guard(self, what: str, call: Callable[[], _T], always: bool = False) -> _T | None:
        """Run one W&B call; on any error warn once and stop tracking (never raise)."""
        if not self.ok and not always:
            return None
        try:
            return call()
        except Exception as err:  # noqa: BLE001 - W&B must never fail a trial
            if self.ok:
                self.ok = False
                trial = self.job_type == "trial"
                _log.warning(
                    "W&B tracking off for %s %s (%s failed: %s: %s); the %s goes on",
                    "trial" if trial else f"{self.job_type} run", self.trial_id, what, type(err).__name__,
                    redact(str(err)), "trial" if trial else "sweep",
                )
            return None


def log_race_look(sweep_name: str, wandb_dir: Path, mode: str, seeds: int, config: Mapping[str, Any],
                  table: tuple[Sequence[str], Sequence[Sequence[Any]]], summary: Mapping[str, Any]) -> Path | None:
    """One W&B run (``job_type`` ``race``, in the sweep's group) for a race's look after
    ``seeds`` seeds: ``table`` (columns, rows) as the ``race`` table, ``summary`` as its summary.

    Once per look: a look whose run is in ``wandb_dir`` already is not logged again (a resumed
    race replays its looks). Never raises; returns the run's directory (``None``: not logged).
    """
    tracker = TrialTracker(sweep_name, f"race-{seeds}-seeds", config, wandb_dir, mode, job_type="race")
    if mode == "disabled" or tracker.logged_before():
        return None
    with tracker:
        tracker.log_table("race", *table)
        tracker.finish(summary, "ok")
    return tracker.run_dir
