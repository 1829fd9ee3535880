"""W&B tracking: one run per trial, and it never fails a trial.

This is the only module that imports ``wandb``, and only inside functions: ``import
sweeper.tracking`` stays cheap so ``sweeper report`` and ``--help`` never pay for it.

Runs are written offline by default (no API key): ``<sweep>/wandb/offline-run-*`` directories,
uploaded later with ``wandb sync`` and read back with ``wandb leet inspect --summary --json``.
Any W&B error (a bad key, no network, a full disk) is logged once as a warning and the
tracker becomes a no-op; the trial and the ledger carry on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence, TypeVar

from model.errors import ConfigError, suggest
from model.images import side_by_side
from model.metrics import VAL_METRICS

if TYPE_CHECKING:
    import numpy as np

__all__ = ["TrialTracker", "resolve_mode", "read_run_summary", "register_sweep"]

_log = logging.getLogger(__name__)

MODES = ("online", "offline", "disabled")
# wandb's own legacy spellings of WANDB_MODE, accepted so an existing environment keeps working.
_MODE_ALIASES = {"dryrun": "offline", "run": "online"}
_DEFAULT_PROJECT = "sweeper"
_EPOCH_METRICS = ("train_loss", *VAL_METRICS)
_OK_STATUSES = ("ok", "diverged")  # a diverged trial is a result, not a crash
_MAX_RUN_ID = 64
# Starting wandb-core took 48 s once on a loaded 2-core CI machine; wandb's own default is 90 s.
_INIT_TIMEOUT_S = 120.0
# Online only: stop waiting for uploads at the end of a run; the data stays on disk for `wandb sync`.
_FINISH_TIMEOUT_S = 120.0
_INSPECT_TIMEOUT_S = 60.0
# How wandb's transaction log spells non-finite floats (history values come back like this).
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}

_T = TypeVar("_T")


# --------------------------------------------------------------------------- mode


def resolve_mode(requested: str | None = None) -> str:
    """Decide the W&B mode for a sweep: ``"online"``, ``"offline"`` or ``"disabled"``.

    Precedence: ``requested`` (the CLI's ``--wandb-mode``), then the ``WANDB_MODE``
    environment variable, then ``"online"`` if W&B finds credentials without network
    access (``WANDB_API_KEY``, an identity token file, a netrc entry, the settings file) and
    ``"offline"`` otherwise.

    Args:
        requested: The value of ``--wandb-mode``, or None when not given.

    Returns:
        One of ``"online"``, ``"offline"``, ``"disabled"``.

    Raises:
        ConfigError: ``requested`` or ``WANDB_MODE`` is not a valid mode.
    """
    if requested is not None:
        return _valid_mode(requested, "--wandb-mode")
    env = os.environ.get("WANDB_MODE", "").strip()
    if env:
        return _valid_mode(env, "WANDB_MODE")
    return "online" if _has_credentials() else "offline"


def _valid_mode(value: str, source: str) -> str:
    mode = str(value).strip().lower()
    mode = _MODE_ALIASES.get(mode, mode)
    if mode not in MODES:
        hint = "" if source == "--wandb-mode" else " (or pass --wandb-mode)"
        raise ConfigError(
            f"{source}: unknown W&B mode {value!r}{suggest(mode, MODES)}; "
            f"--wandb-mode takes one of {', '.join(MODES)}{hint}"
        )
    return mode


def _has_credentials() -> bool:
    """Whether wandb would find credentials, asked the way ``wandb.init`` asks, without network.

    wandb 0.31 looks at WANDB_API_KEY / WANDB_IDENTITY_TOKEN_FILE, then the netrc entry for
    its base URL (the default is the Forge proxy, whose netrc lookup falls back to
    api.wandb.ai), then the settings file. A hand-written netrc check would miss those rules.
    """
    try:
        from wandb.errors import AuthenticationError
        from wandb.sdk import wandb_setup
        from wandb.sdk.lib import wbauth
    except ImportError as err:  # wandb missing or its internals moved: nothing to go online with
        _log.warning("W&B credentials could not be checked (%s); tracking offline", err)
        return False
    try:
        base_url = wandb_setup.singleton().settings.base_url
        auth = wbauth.authenticate_session(
            host=base_url, source="sweeper", prompt=False, verify=False, update_session=False,
        )
    except AuthenticationError as err:  # e.g. a mistyped key: offline runs can be synced later
        _log.warning("W&B credentials are not usable (%s); tracking offline", _redact(str(err)))
        return False
    except Exception as err:  # noqa: BLE001 - a lookup problem must not stop a sweep
        _log.warning("W&B credentials could not be checked (%s); tracking offline", _redact(str(err)))
        return False
    return auth is not None


def _project() -> str:
    return os.environ.get("WANDB_PROJECT") or _DEFAULT_PROJECT


def _redact(text: str) -> str:
    """Remove the API key from a message that may quote it (wandb errors sometimes echo input)."""
    key = os.environ.get("WANDB_API_KEY")
    return text.replace(key, "***") if key else text


# --------------------------------------------------------------------------- runs


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
    ) -> None:
        self.sweep_name = sweep_name
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
            project=_project(),
            group=self.sweep_name,
            job_type="trial",
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
            self.finish({"error": _redact(f"{type(exc).__name__}: {exc}")}, "error")

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
                _log.warning(
                    "W&B tracking off for trial %s (%s failed: %s: %s); the trial goes on",
                    self.trial_id, what, type(err).__name__, _redact(str(err)),
                )
            return None


# --------------------------------------------------------------------------- reading back


def _wandb_command() -> list[str]:
    """The wandb CLI of this interpreter's environment (a Ray worker's PATH may lack it)."""
    beside = Path(sys.executable).parent / "wandb"  # not resolved: a venv's python is a symlink
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("wandb")
    return [found] if found else [sys.executable, "-m", "wandb"]


def _inspect_run(run_dir: Path) -> dict[str, Any]:
    """``wandb leet inspect --summary --json <run_dir>``: run state, config and summary."""
    path = Path(run_dir)
    if not path.exists():
        raise FileNotFoundError(f"no W&B run at {path}")
    # The reader needs no credentials; don't hand it any.
    env = {k: v for k, v in os.environ.items() if k != "WANDB_API_KEY"}
    command = [*_wandb_command(), "leet", "inspect", "--summary", "--json", str(path)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=_INSPECT_TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired as err:
        raise RuntimeError(f"`wandb leet inspect` timed out after {_INSPECT_TIMEOUT_S:.0f}s on {path}") from err
    if done.returncode != 0:
        raise RuntimeError(f"`wandb leet inspect` failed on {path}: {(done.stderr or done.stdout).strip()}")
    try:
        record = json.loads(done.stdout)
    except json.JSONDecodeError as err:
        raise RuntimeError(f"`wandb leet inspect` printed no JSON for {path}: {err}") from err
    if not isinstance(record, dict):
        raise RuntimeError(f"`wandb leet inspect` printed {type(record).__name__}, not an object, for {path}")
    return record


def read_run_summary(run_dir: Path) -> dict[str, Any]:
    """Read one local run's summary with ``wandb leet inspect --summary --json``.

    Args:
        run_dir: A run directory (``.../offline-run-...``), its ``.wandb`` file, or a wandb
            directory (then its latest run).

    Returns:
        The run summary: the final and best metrics, ``status``, ``seconds``... as written by
        :meth:`TrialTracker.finish` plus wandb's ``_step``/``_runtime``; non-finite values
        come back as floats.

    Raises:
        FileNotFoundError: ``run_dir`` does not exist.
        RuntimeError: the wandb CLI failed, timed out or printed something unexpected.
    """
    summary = _inspect_run(run_dir).get("summary") or {}
    return {k: _NON_FINITE.get(v, v) if isinstance(v, str) else v for k, v in summary.items()}


# --------------------------------------------------------------------------- sweeps


def register_sweep(wandb_config: dict, project: str | None, *, mode: str | None = None) -> str | None:
    """Register the spec (minus ``sweeper:``) as a W&B sweep when tracking online.

    Args:
        wandb_config: The W&B sweep configuration.
        project: The W&B project; default ``WANDB_PROJECT`` or ``"sweeper"`` (the runs' project).
        mode: The resolved mode; resolved with :func:`resolve_mode` when None.

    Returns:
        The sweep id, or None when offline/disabled or when W&B refused (a warning is logged).
    """
    try:
        if resolve_mode(mode) != "online":
            return None
        import wandb

        started = time.monotonic()
        sweep_id = wandb.sweep(dict(wandb_config), project=project or _project())
        _log.info("registered W&B sweep %s in %.1fs", sweep_id, time.monotonic() - started)
        return str(sweep_id) if sweep_id else None
    except Exception as err:  # noqa: BLE001 - a sweep that can't register still runs, untracked by W&B sweeps
        _log.warning("could not register a W&B sweep (%s: %s); runs are tracked without one",
                     type(err).__name__, _redact(str(err)))
        return None
