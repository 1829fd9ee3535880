"""Ray Tune dispatch: connect, pin resources, run the pending trials, write the ledger.

With ``trainable.py`` the only module that imports Ray (lazily, so ``sweeper --help`` and
``--dry-run`` stay light). The ledger, not Ray's experiment pickles, is the truth:

- every finished trial is recorded by a driver-side Tune callback (one writer, any node);
- a re-run of the same spec (or ``--resume``) first recovers trials that finished in an
  earlier Ray run but never reached the ledger (the driver was killed in between), from
  those runs' ``result.json`` files, then dispatches only the trials the ledger lacks.

``Tuner.restore`` is not used for grid and random sweeps: Ray snapshots its experiment
state every few seconds, so after a ``kill -9`` it would re-run trials that finished after
the last snapshot, and it cannot skip trials the ledger already holds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from model.errors import ConfigError, DataError, UserError
from model.params import PARAMETER_NAMES, TrainParams
from sweeper.ledger import Ledger, LedgerError
from sweeper.space import Trial, expand, finite_ids, pending, trial_count, trial_id
from sweeper.spec import SweepSpec

__all__ = ["RunOptions", "RunSummary", "run", "plan", "pin_resources", "record_from_results", "LOCAL_HOST"]

_log = logging.getLogger(__name__)

LOCAL_HOST = "127.0.0.1"
METRIC_KEYS = ("val_psnr", "val_ssim", "val_mae")


@dataclass(frozen=True)
class RunOptions:
    """How to run a sweep (command-line choices that are not part of the spec)."""

    results_dir: Path = Path("results")
    data_dir: Path | None = None
    resume: bool = False
    dry_run: bool = False
    address: str | None = None
    max_concurrent: int | None = None
    wandb_mode: str | None = None
    wandb_sweep: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        from sweeper.tracking import resolve_mode

        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ConfigError(f"--max-concurrent: {self.max_concurrent} is too small; use a whole number >= 1")
        if self.wandb_mode is not None:
            resolve_mode(self.wandb_mode)  # refuse a bad --wandb-mode before any work


@dataclass
class RunSummary:
    """What a call to :func:`run` did."""

    sweep_dir: Path
    planned: int
    already_done: int
    dispatched: int = 0
    recovered: int = 0
    status_counts: dict[str, int] = field(default_factory=dict)
    resources: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    interrupted: bool = False  # stopped by Ctrl-C (SIGINT); finished trials are in the ledger
    remaining: int = 0  # planned trials not in the ledger when run() returned


# ---------------------------------------------------------------- planning (no Ray)


def plan(spec: SweepSpec, ledger: Ledger) -> tuple[list[Trial], list[Trial]]:
    """All trials of a grid/random spec and those the ledger still lacks (bayes: both empty)."""
    if spec.method == "bayes":
        return [], []
    trials = expand(spec)
    return trials, pending(trials, ledger.done_ids())


def pin_resources(
    wanted: Any, cluster: Mapping[str, float]
) -> tuple[dict[str, float], str | None]:
    """Per-trial Ray resources for the spec's ``resources`` block on this cluster.

    Where the cluster advertises ``accelerator_type:<T>``, a trial asks for ``GPU`` plus a
    sliver of that custom resource, which pins it to such a node. With no such GPU,
    ``fallback: cpu`` runs on CPU (returned warning says so) and ``fallback: none`` refuses.

    Returns:
        (resources for ``tune.with_resources``, a warning or ``None``).
    """
    cpu = {"cpu": float(wanted.cpu)}
    if not wanted.gpu:
        return cpu, None
    if wanted.accelerator_type:
        key = f"accelerator_type:{wanted.accelerator_type}"
        if cluster.get(key, 0) > 0 and cluster.get("GPU", 0) >= wanted.gpu:
            return {**cpu, "gpu": float(wanted.gpu), key: 0.001}, None
        missing = f"no {wanted.accelerator_type} GPU"
    elif cluster.get("GPU", 0) >= wanted.gpu:
        return {**cpu, "gpu": float(wanted.gpu)}, None
    else:
        missing = "no GPU"
    have = ", ".join(f"{k}={v:g}" for k, v in sorted(cluster.items()) if not k.startswith("node:"))
    if wanted.fallback == "none":
        raise ConfigError(
            f"sweeper.resources: the cluster has {missing} and fallback is 'none'; "
            f"cluster resources: {have}; set sweeper.resources.fallback: cpu to run on CPU"
        )
    return cpu, f"the cluster has {missing}; running trials on CPU (sweeper.resources.fallback: cpu)"


def record_from_results(
    tid: str, params: Mapping[str, Any], results: Sequence[Mapping[str, Any]], *,
    goal: str, metric: str, error: str | None = None, attempts: int = 1,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Turn one trial's reported results into a ledger row and its epoch rows.

    Used both live (by the driver's callback) and when recovering an earlier Ray run.
    The row's metrics are those of the best epoch by the spec's metric and goal.
    """
    epochs = [r for r in results if r.get("status") == "ok" and isinstance(r.get("val_psnr"), (int, float))]
    by_epoch = {int(r["epoch"]): r for r in epochs}  # a retried trial re-reports epochs: keep the last
    epoch_rows = [
        {"trial_id": tid, "epoch": e, "train_loss": float(r.get("train_loss", math.nan)),
         **{k: float(r.get(k, math.nan)) for k in METRIC_KEYS}}
        for e, r in sorted(by_epoch.items())
    ]
    last = results[-1] if results else {}
    status = "error" if error is not None else str(last.get("status") or "error")
    pick = max if goal == "maximize" else min
    finite = [r for r in by_epoch.values() if math.isfinite(float(r.get(metric, math.nan)))]
    best = pick(finite, key=lambda r: float(r[metric])) if finite else {}
    row: dict[str, Any] = {
        "trial_id": tid,
        **{f"params_{k}": params.get(k) for k in PARAMETER_NAMES},
        "status": status,
        **{k: float(best.get(k, math.nan)) for k in METRIC_KEYS},
        "best_epoch": int(best.get("epoch", 0)),
        "epochs_run": len(by_epoch),
        "seconds": float(last.get("time_total_s", math.nan)),
        "images_per_second": float(by_epoch[max(by_epoch)].get("images_per_second", math.nan)) if by_epoch else math.nan,
        "accelerator": str(last.get("accelerator", "")),
        "gpu_ids": str(last.get("gpu_ids", "")),
        "node": str(last.get("node", "")),
        "attempts": int(attempts),
        "error": error if error is not None else str(last.get("error") or ""),
    }
    return row, epoch_rows


# ---------------------------------------------------------------- recovery


def _result_lines(path: Path) -> list[dict[str, Any]]:
    out = []
    try:
        text = path.read_text()
    except OSError:
        return out
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line torn by a kill: everything after it is suspect
    return out


def _config_trial(config: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """A Tune trial's parameters and trial id, from its config (a grid's carries the id; a
    bayes suggestion only its parameters, so the id is derived from them)."""
    params = {k: config[k] for k in PARAMETER_NAMES if k in config}
    return params, str(config.get("trial_id") or (trial_id(params) if params else ""))


def _set_aside_unreadable(ledger: Ledger) -> list[str]:
    """Move an unreadable ledger (both files: they are one record) aside, never deleting it.

    The caller then recovers every trial Ray's results show finished and re-runs the rest.

    Returns:
        One message per file moved.
    """
    try:
        ledger.trials()
        ledger.epochs()
        return []
    except LedgerError as err:
        reason = str(err)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    messages = []
    for path in (ledger.trials_path, ledger.epochs_path):
        if path.exists():
            target = path.with_name(f"{path.name}.unreadable-{stamp}")
            os.replace(path, target)
            messages.append(f"{path}: unreadable, moved to {target.name}; trials that finished are recovered "
                            f"from {ledger.sweep_dir / 'ray'}, the rest run again")
    _log.warning("ledger set aside: %s", reason)
    return messages


def _recover(spec: SweepSpec, ledger: Ledger) -> int:
    """Record trials that finished in earlier Ray runs but are missing from the ledger."""
    done = ledger.done_ids()
    recovered = 0
    for result_file in sorted((ledger.sweep_dir / "ray").glob("*/*/result.json")):
        results = _result_lines(result_file)
        if not results:
            continue
        params, tid = _config_trial(results[-1].get("config", {}))
        if not tid or tid in done:
            continue
        if not _ran_to_the_end(params, results):
            continue  # cut short by the kill: it will be dispatched again
        row, epochs = record_from_results(tid, params, results, goal=spec.goal, metric=spec.metric)
        if ledger.record(row, epochs):
            recovered += 1
            done.add(tid)
    return recovered


# ---------------------------------------------------------------- Ray


def _connect(address: str | None) -> None:
    """Join ``address`` / ``RAY_ADDRESS``, or start a local Ray bound to 127.0.0.1."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is None:
        # Ray otherwise binds the machine's routable IP and opens its ports to the network;
        # with clusters "disabled" it uses loopback. Read by Ray at import, so set it first.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():
        return
    try:
        if address is None:
            # address="local": always a new private instance, never a stray cluster that
            # /tmp/ray/ray_current_cluster happens to point at.
            ray.init(address="local", include_dashboard=False, _node_ip_address=LOCAL_HOST, log_to_driver=False,
                     configure_logging=False)
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise UserError(f"--address {address}: cannot join the Ray cluster ({str(err).splitlines()[0]})") from None


def _param_space(spec: SweepSpec, trials: Sequence[Trial]) -> dict[str, Any]:
    from ray import tune

    if spec.method == "bayes":
        return {p.name: _ray_domain(p) for p in spec.parameters}
    table = {t.id: dict(t.params) for t in trials}
    space: dict[str, Any] = {"trial_id": tune.grid_search([t.id for t in trials])}
    # Each parameter is looked up from the grid'd trial id, so Ray's tables and result.json
    # show real parameter names while the trial list stays ours (sorted, ledger-filtered).
    for name in PARAMETER_NAMES:
        space[name] = tune.sample_from(_Lookup(table, name))
    return space


class _Lookup:
    """Picklable ``sample_from`` function: a trial's value of one parameter."""

    def __init__(self, table: Mapping[str, Mapping[str, Any]], name: str) -> None:
        self.table, self.name = table, name

    def __call__(self, config: Mapping[str, Any]) -> Any:
        return self.table[config["trial_id"]][self.name]


def _ray_domain(param: Any) -> Any:
    """A W&B-style parameter as a Ray Tune search domain (for OptunaSearch)."""
    from ray import tune

    if param.value is not None:
        return param.value
    if param.values is not None:
        return tune.choice(list(param.values))
    kind, lo, hi = param.distribution, param.min, param.max
    if kind == "uniform":
        return tune.uniform(lo, hi)
    if kind == "log_uniform_values":
        return tune.loguniform(lo, hi)
    if kind == "int_uniform":
        return tune.randint(int(lo), int(hi) + 1)
    if kind == "q_uniform":
        return tune.quniform(lo, hi, param.q or 1.0)
    if kind == "q_log_uniform_values":
        return tune.qloguniform(lo, hi, param.q or 1.0)
    raise ConfigError(f"parameters.{param.name}.distribution: {kind!r} is not supported by the bayes method")


# Trials per Tuner. Ray Tune's driver keeps every trial of an experiment in memory until the
# experiment ends (its controller, its experiment-state cache and its default loggers all hold
# them: ray-project/ray#64231), about 0.17 MB a trial here. The ledger, not Tune's experiment,
# is the truth, so a long grid runs as consecutive Tuners of at most this many trials and the
# driver's memory stays bounded; the only cost is that concurrency drains at each boundary.
_TRIALS_PER_TUNER = 200


def _batches(spec: SweepSpec, todo: Sequence[Trial]) -> list[Sequence[Trial]]:
    """The pending trials split into one Tuner each (a bayes sweep or ASHA: one Tuner, since the
    searcher and the scheduler compare every trial of the sweep)."""
    if spec.early_terminate is not None:
        # Asynchronous ASHA judges a trial only against those that reached a rung before it. In
        # the grid's sorted order the first arrivals are one corner of the space (every lr 0.0001
        # of lr_rho.yaml), promoted unopposed: 0.62 of the grid's epochs were spent, all five
        # epochs for 18 of 40 trials. Trial ids are hashes of the parameters, so their order is
        # a fixed shuffle that owes nothing to any parameter.
        return [sorted(todo, key=lambda t: t.id)]
    if spec.method == "bayes" or len(todo) <= _TRIALS_PER_TUNER:
        return [todo]
    return [todo[i:i + _TRIALS_PER_TUNER] for i in range(0, len(todo), _TRIALS_PER_TUNER)]


def _next_run_name(sweep_dir: Path) -> str:
    """``run-NNN``, one past the Ray runs already in the sweep folder (recovery reads them all)."""
    numbers = [int(p.name[4:]) for p in (sweep_dir / "ray").glob("run-*") if p.name[4:].isdigit()]
    return f"run-{max(numbers, default=0) + 1:03d}"


# Suggestions in a row that repeat a trial before the search counts as spent, on a space
# that cannot be listed (one with a distribution repeats a trial almost never).
_MAX_REPEATS = 100


def _distinct_search(inner: Any, spec: SweepSpec, seen: Iterable[str]) -> Any:
    """``inner`` (a Ray Tune searcher) made to propose only trials this sweep has not run.

    TPE on a discrete space proposes a parameter set again and again; trained again, it buys
    nothing, since the ledger keeps one row per trial id. A repeat of a trial in ``seen`` (the
    ledger's) or already proposed is told to the inner searcher as pruned, Optuna's advice for
    duplicates (its sampler then steers away from it), and the next suggestion is asked for.
    The search is finished once every trial of a finite space is taken, or after
    :data:`_MAX_REPEATS` repeats in a row.
    """
    from ray.tune.search import Searcher

    space = finite_ids(spec)
    # A searcher proposes the searched parameters only; Tune adds the fixed ones after.
    fixed = {p.name: p.value for p in spec.parameters if p.kind == "value"}

    class _DistinctSearch(Searcher):
        def __init__(self) -> None:
            super().__init__(metric=inner.metric, mode=inner.mode)
            self.inner, self.seen, self.repeats = inner, set(seen), 0
            self._inner_ids: dict[str, str] = {}  # Tune's trial id -> the one the inner searcher knows

        def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
            ok = self.inner.set_search_properties(metric, mode, config, **spec)
            self._metric, self._mode = self.inner.metric, self.inner.mode
            return ok

        def suggest(self, trial_id: str) -> dict | str | None:
            for attempt in range(_MAX_REPEATS):
                if space is not None and space <= self.seen:
                    return Searcher.FINISHED
                inner_id = trial_id if attempt == 0 else f"{trial_id}-repeat{attempt}"
                config = self.inner.suggest(inner_id)
                if not isinstance(config, dict):
                    return config  # None: ask again later; FINISHED
                tid = _config_trial({**fixed, **config})[1]
                if tid not in self.seen:
                    self.seen.add(tid)
                    self._inner_ids[trial_id] = inner_id
                    return config
                self.inner.on_trial_complete(inner_id)  # no result, no error: Optuna's PRUNED
                self.repeats += 1
            return Searcher.FINISHED

        def on_trial_result(self, trial_id: str, result: dict) -> None:
            self.inner.on_trial_result(self._inner_ids.get(trial_id, trial_id), result)

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            self.inner.on_trial_complete(self._inner_ids.pop(trial_id, trial_id), result=result, error=error)

        def save(self, checkpoint_path: str) -> None:
            self.inner.save(checkpoint_path)

        def restore(self, checkpoint_path: str) -> None:
            self.inner.restore(checkpoint_path)

    return _DistinctSearch()


def _search_and_scheduler(spec: SweepSpec, sweep_dir: Path, done: Iterable[str] = ()) -> tuple[Any, Any]:
    """Ray Tune's search algorithm and trial scheduler for ``spec`` (``None`` where Tune's
    defaults serve: a grid is listed, not searched). ``done``: trial ids already recorded."""
    search_alg = scheduler = None
    if spec.method == "bayes":
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        storage = optuna.storages.RDBStorage(f"sqlite:///{sweep_dir / 'optuna.db'}")
        search_alg = _distinct_search(OptunaSearch(
            metric=spec.metric, mode=_mode(spec), storage=storage, study_name=spec.name,
            sampler=optuna.samplers.TPESampler(seed=0),
        ), spec, done)
    et = spec.early_terminate
    if et is not None:
        from ray.tune.schedulers import ASHAScheduler

        epochs = max(_epochs_values(spec))
        # metric and mode come from TuneConfig; Ray refuses them in both places.
        scheduler = ASHAScheduler(
            time_attr="epoch",
            grace_period=int(et.min_iter or 1), reduction_factor=float(et.eta or 3),
            max_t=int(et.max_iter or epochs),
        )
    return search_alg, scheduler


def _reuse_actors(scheduler: Any) -> bool:
    """Whether trials may reuse each other's worker process (saves a TensorFlow import each).

    Not under an early-stopping scheduler: a 40-trial ASHA sweep of lr_rho.yaml on real Ray
    hung for good after ASHA's first stops: the searcher counted a trial as live whose worker
    was idle, and the worker of the one running trial died unreported, so Tune waited forever
    with both slots taken (a class of hang reported upstream, ray-project/ray#28197). The exact
    race is not pinned down; without reuse (each trial in a fresh worker) the same sweep
    finished all 40 trials.
    """
    return scheduler is None


def _epochs_values(spec: SweepSpec) -> list[int]:
    for p in spec.parameters:
        if p.name == "epochs":
            return [int(p.value)] if p.value is not None else [int(v) for v in p.values or [TrainParams.epochs]]
    return [TrainParams.epochs]


def _mode(spec: SweepSpec) -> str:
    return "max" if spec.goal == "maximize" else "min"


def _ran_to_the_end(params: Mapping[str, Any], results: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a trial's reports show it finished on its own: all its epochs, or a final
    error/diverged status; not stopped mid-way (a kill, a Ctrl-C)."""
    if not results:
        return False
    last = results[-1]
    epochs = int(params.get("epochs") or TrainParams().epochs)
    return last.get("status") in ("error", "diverged") or (
        last.get("status") == "ok" and int(last.get("epoch", 0)) >= epochs
    )


def _ledger_callback(spec: SweepSpec, ledger: Ledger, progress: "_Progress", stop: "_StopFlag") -> Any:
    from ray.tune import Callback

    class _LedgerCallback(Callback):
        """Driver-side: collect each trial's results, record it in the ledger when it ends."""

        def __init__(self) -> None:
            self.results: dict[str, list[dict[str, Any]]] = {}

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            progress.update(trials)

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            self.results.setdefault(trial.trial_id, []).append(dict(result))
            progress.update(trials)

        def _finish(self, trials: list, trial: Any, error: str | None) -> None:
            params, tid = _config_trial(trial.config)
            results = self.results.pop(trial.trial_id, [])
            if stop.is_set() and (error is not None or not _ran_to_the_end(params, results)):
                # Cut short by Ctrl-C (stopped, or its worker hit by the same SIGINT): not a
                # result. Left out of the ledger, it runs again on resume.
                progress.update([t for t in trials if t is not trial])
                return
            row, epochs = record_from_results(
                tid, params, results, goal=spec.goal, metric=spec.metric, error=error,
                # every failure was an attempt; a trial that ends well adds its final one
                attempts=int(trial.num_failures) + (0 if error else 1),
            )
            ledger.record(row, epochs)
            progress.finished(row)
            # Ray still marks the finishing trial RUNNING while its callbacks run.
            progress.update([t for t in trials if t is not trial])

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._finish(trials, trial, None)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._finish(trials, trial, _error_message(trial))

    return _LedgerCallback()


def _error_message(trial: Any) -> str:
    """The last line of the trial's error trace: the exception type and message.

    The driver-local copy (``trial.error_file``) is written before the callback runs; the
    copy in the storage path may not be synced yet, so it is only the fallback.
    """
    text = ""
    try:
        local = trial.error_file
        if local and Path(local).is_file():
            text = Path(local).read_text(errors="replace")
        if not text.strip():
            text = trial.get_error() or ""
    except Exception:  # storage on a remote filesystem may be unreachable
        pass
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[-1] if lines else "trial failed (no error message recorded)"


class _Progress:
    """Trials done / running / failed and the best so far, as a rich progress bar."""

    def __init__(self, total: int, spec: SweepSpec, enabled: bool) -> None:
        self.spec, self.total, self.enabled = spec, total, enabled
        self.counts = {"ok": 0, "error": 0, "diverged": 0}
        self.best: float | None = None
        self._bar: Any = None

    def __enter__(self) -> "_Progress":
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.spec.name, total=self.total, detail="")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()

    def __getstate__(self) -> dict[str, Any]:
        # Tuner pickles its callbacks into the experiment state; a live terminal bar holds
        # locks and means nothing in another process, so it is left out.
        return {**self.__dict__, "_bar": None}

    def finished(self, row: Mapping[str, Any]) -> None:
        self.counts[row["status"]] = self.counts.get(row["status"], 0) + 1
        value = row.get(self.spec.metric)
        if row["status"] == "ok" and value is not None and math.isfinite(value):
            better = self.best is None or (value > self.best if self.spec.goal == "maximize" else value < self.best)
            self.best = value if better else self.best

    def update(self, trials: Iterable[Any]) -> None:
        if self._bar is None:
            return
        running = sum(1 for t in trials if getattr(t, "status", "") == "RUNNING")
        done = sum(self.counts.values())
        best = f"best {self.spec.metric} {self.best:.3f}" if self.best is not None else "best -"
        detail = f"running {running}  ok {self.counts['ok']}  failed {self.counts['error']}  diverged {self.counts['diverged']}  {best}"
        self._bar.update(self._task, completed=done, detail=detail)


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("sweeper", "tensorflow", "keras", "ray", "optuna", "wandb", "pandas"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _git_commit() -> str:
    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).resolve().parent)
        return proc.stdout.strip() if proc.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def _write_resolved_spec(spec: SweepSpec, sweep_dir: Path, extra: Mapping[str, Any]) -> None:
    import yaml

    doc = {**spec.to_dict(), "resolved": {"versions": _versions(), "git_commit": _git_commit(), **extra}}
    tmp = sweep_dir / ".spec.yaml.tmp"
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    os.replace(tmp, sweep_dir / "spec.yaml")


def _dataset(spec: SweepSpec, options: RunOptions) -> tuple[Path, str]:
    """The dataset folder (absolute: workers run elsewhere), made on first use if synthetic."""
    base = (options.data_dir or Path(spec.dataset.dir)).resolve()
    name = spec.dataset.name
    if not (base / name).is_dir():
        if name != "synthetic":
            raise DataError(f"{base / name}: dataset not found (sweeper.dataset in the spec, or --data-dir)")
        from model.synth import ensure_synthetic

        print(f"making the synthetic dataset in {base / name} (first use)", file=sys.stderr)
        ensure_synthetic(base, name)
    return base, name


def run(spec: SweepSpec, options: RunOptions = RunOptions()) -> RunSummary:
    """Run (or resume) a sweep: every trial the ledger lacks, on Ray Tune.

    Returns:
        A :class:`RunSummary`. ``options.dry_run`` plans only (no Ray, nothing written).
    """
    sweep_dir = (options.results_dir / spec.name).resolve()
    ledger = Ledger(sweep_dir)
    set_aside = [] if options.dry_run else _set_aside_unreadable(ledger)
    for message in set_aside:
        print(f"sweeper: warning: {message}", file=sys.stderr)
    imported = 0 if options.dry_run else ledger.import_csv_export()
    if imported:
        print(f"sweeper: {imported} trials taken into the ledger from {ledger.sweep_dir / 'trials.csv'}",
              file=sys.stderr)
    trials, todo = plan(spec, ledger)
    done_before = len(ledger.done_ids())
    # plan() has just listed a grid's or random sweep's trials: count those, not a second listing.
    summary = RunSummary(sweep_dir=sweep_dir, planned=len(trials) if spec.method != "bayes" else trial_count(spec),
                         already_done=done_before, warnings=list(set_aside))
    if options.dry_run:
        summary.dispatched = 0
        return summary
    if spec.run_cap is not None and summary.planned < spec.run_cap:
        fewer = (f"run_cap is {spec.run_cap} but the space holds {summary.planned} distinct trials; "
                 f"each runs once (parameters: add values to search more)")
        summary.warnings.append(fewer)
        print(f"sweeper: warning: {fewer}", file=sys.stderr)

    summary.recovered = _recover(spec, ledger)
    if summary.recovered:
        trials, todo = plan(spec, ledger)
    data_dir, data_name = _dataset(spec, options)
    n_todo = len(todo) if spec.method != "bayes" else max(0, summary.planned - len(ledger.done_ids()))
    if n_todo == 0:
        summary.status_counts = ledger.status_counts()
        return summary

    from sweeper.tracking import register_sweep, resolve_mode

    wandb_mode = resolve_mode(options.wandb_mode)
    sweep_id = register_sweep(spec.wandb_config(), None, mode=wandb_mode) if options.wandb_sweep else None
    _connect(options.address)
    import ray
    from ray import tune

    resources, warning = pin_resources(spec.resources, ray.cluster_resources())
    if warning:
        summary.warnings.append(warning)
        print(f"sweeper: warning: {warning}", file=sys.stderr)
    summary.resources = resources
    _write_resolved_spec(spec, sweep_dir, {"resources": resources, "wandb_mode": wandb_mode})

    from sweeper.trainable import TrialContext, run_trial

    context = TrialContext(
        sweep=spec.name, sweep_dir=str(sweep_dir), dataset_dir=str(data_dir), dataset_name=data_name,
        wandb_mode=wandb_mode, cpus=resources["cpu"],
        accelerator_type=spec.resources.accelerator_type if "gpu" in resources else None, sweep_id=sweep_id,
        vgg_weights=os.environ.get("SWEEPER_VGG_WEIGHTS") or "auto",
    )
    max_concurrent = options.max_concurrent or spec.max_concurrent
    stop = _StopFlag()
    with _Progress(n_todo, spec, options.progress) as progress, _graceful_ctrl_c(stop):
        for batch in _batches(spec, todo):
            if stop.is_set():
                break
            search_alg, scheduler = _search_and_scheduler(spec, sweep_dir, ledger.done_ids())
            run_name = _next_run_name(sweep_dir)
            tuner = tune.Tuner(
                tune.with_resources(tune.with_parameters(run_trial, context=context), resources),
                param_space=_param_space(spec, batch),
                tune_config=tune.TuneConfig(
                    metric=spec.metric, mode=_mode(spec), search_alg=search_alg, scheduler=scheduler,
                    num_samples=n_todo if spec.method == "bayes" else 1,
                    max_concurrent_trials=max_concurrent, reuse_actors=_reuse_actors(scheduler),
                    trial_dirname_creator=_trial_dirname,
                ),
                run_config=tune.RunConfig(
                    name=run_name, storage_path=str(sweep_dir / "ray"), verbose=0,
                    failure_config=tune.FailureConfig(max_failures=spec.max_failures),
                    callbacks=[_ledger_callback(spec, ledger, progress, stop)],
                    progress_reporter=None,
                ),
            )
            with _watchdog(sweep_dir / "ray" / run_name):
                tuner.fit()
    summary.status_counts = ledger.status_counts()
    summary.interrupted = stop.is_set()
    done = ledger.done_ids()
    # A bayes search may end before n_todo: a space without new trials left to propose.
    summary.dispatched = n_todo if spec.method != "bayes" else len(done) - done_before - summary.recovered
    summary.remaining = (max(0, summary.planned - len(done)) if spec.method == "bayes"
                         else sum(t.id not in done for t in trials))
    return summary


# A sweep stuck inside Ray Tune (a worker dead unreported, ray-project/ray#28197) prints
# nothing and never ends. The watchdog warns when no trial has written a result for this many
# seconds, or 10x the longest gap seen so far in this run if longer (slow epochs are not a
# stall). A warned-about gap counts too, in case it was a slow epoch: a hang lasts for ever,
# so it is reported however long the gaps before it were.
_STALL_S = 900.0
_STALL_FACTOR = 10.0
_WATCH_POLL_S = 10.0


class _Watchdog(threading.Thread):
    """Watches a Tune run's ``result.json`` files from a thread of its own (a Tune callback
    would not fire: the hang seen was inside one step of Tune's loop); one warning per stall."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(name="sweeper-watchdog", daemon=True)
        self.run_dir, self._done = run_dir, threading.Event()
        self.warnings = 0

    def _newest(self, default: float) -> float:
        stamps = []
        for path in self.run_dir.glob("*/result.json"):
            with contextlib.suppress(OSError):  # a trial folder may be renamed or removed meanwhile
                stamps.append(path.stat().st_mtime)
        return max(stamps, default=default)

    def run(self) -> None:
        last = time.time()
        longest, warned = 0.0, False
        while not self._done.wait(_WATCH_POLL_S):
            newest = self._newest(last)
            if newest > last:
                longest, last, warned = max(longest, newest - last), newest, False
                continue
            idle = time.time() - last
            if not warned and idle > max(_STALL_S, _STALL_FACTOR * longest):
                warned = True
                self.warnings += 1
                print(f"sweeper: warning: no trial has reported for {idle:.0f} s ({self.run_dir}); Ray may be "
                      "stuck. Ctrl-C and run the same command again: finished trials are in the ledger and "
                      "only the rest run", file=sys.stderr, flush=True)

    def stop(self) -> None:
        self._done.set()
        self.join()


@contextlib.contextmanager
def _watchdog(run_dir: Path) -> Iterator[_Watchdog]:
    watch = _Watchdog(run_dir)
    watch.start()
    try:
        yield watch
    finally:
        watch.stop()


class _StopFlag:
    """Set on Ctrl-C. A plain object, not a threading.Event: Ray pickles the callbacks."""

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


class _DropRestoreHint(logging.Filter):
    """Ray's "Resume experiment with: Tuner.restore(...)" is not how a sweep resumes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tuner.restore" not in record.getMessage()


@contextlib.contextmanager
def _graceful_ctrl_c(stop: _StopFlag) -> Iterator[None]:
    """First Ctrl-C: Ray Tune's graceful stop (finished trials are recorded, running ones are
    not); a second one stops at once. Outside the main thread, Ray's default applies."""
    tune_logger = logging.getLogger("ray.tune.tune")
    hint_filter = _DropRestoreHint()
    tune_logger.addFilter(hint_filter)
    if threading.current_thread() is not threading.main_thread():
        try:
            yield
        finally:
            tune_logger.removeFilter(hint_filter)
        return

    def on_sigint(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("\nsweeper: stopping after Ctrl-C: running trials are dropped (they re-run on resume), "
              "finished ones are in the ledger; Ctrl-C again stops at once", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGUSR1)  # Ray Tune's own graceful stop signal

    previous_env = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # our handler, not Tune's, owns SIGINT
    previous = signal.signal(signal.SIGINT, on_sigint)
    # Tune installs its SIGUSR1 handler only inside fit(); before the first fit (or between
    # two Tuners) SIGUSR1's default action would kill the driver. The stop flag does the job there.
    previous_usr1 = signal.signal(signal.SIGUSR1, lambda signum, frame: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGUSR1, previous_usr1)
        tune_logger.removeFilter(hint_filter)
        if previous_env is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = previous_env


def _trial_dirname(trial: Any) -> str:
    tid = trial.config.get("trial_id") or trial.trial_id
    return f"{tid}_{trial.trial_id}"
