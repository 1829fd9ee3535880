"""``sweeper run``: run (or resume) a sweep on Ray Tune, every trial the ledger lacks.

The order of a run: set aside an unreadable ledger, take in a committed CSV export, plan the
trials, recover those an interrupted run finished, make the dataset, join Ray, pin resources,
write the provenance, then one Tuner per batch with the ledger callback, the progress bar,
the stall watchdog and a graceful stop (Ctrl-C, SIGTERM). ``Tuner.restore`` is not used: Ray snapshots its
experiment state every few seconds, so after a ``kill -9`` it would re-run trials that
finished after the last snapshot, and it cannot skip trials the ledger already holds.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

from model.errors import ConfigError, UserError
from model.synth import ensure_dataset
from sweeper import tracking, trainable
from sweeper.dispatch import search
from sweeper.dispatch.cluster import (DriverNode, check_address, cluster_address, connect, driver_node,
                                      drivers_still_on_it, local_cpu_warning, other_drivers, pin_resources)
from sweeper.dispatch.console import Progress, ProgressSink, StopFlag, graceful_stop, resource_watch, watchdog
from sweeper.dispatch.lock import driver_lock, note_trials
from sweeper.dispatch.plan import SweepPlan, plan
from sweeper.dispatch.provenance import write_provenance
from sweeper.dispatch.results import recover, set_aside_unreadable
from sweeper.folder import is_sweep
from sweeper.ledger import CSV_NAMES, Ledger
from sweeper.race import RaceState, race_state
from sweeper.records import label, param_column
from sweeper.space import Trial
from sweeper.spec import SweepSpec
from sweeper.study import STUDY_FILE, mirror_to_optuna

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Hooks", "RunOptions", "RunSummary", "run", "sweep_folder"]

_log = logging.getLogger(__name__)

_DATASET_FIX = "sweeper.dataset in the spec, or --data-dir"
_OTHERS_POLL_S = 2.0  # how often a done driver looks whether the drivers joined to its cluster have ended


@dataclass(frozen=True)
class RunOptions:
    """How to run a sweep: the command-line choices that are not part of the spec.

    Attributes:
        results_dir: Where sweep folders go (``<results_dir>/<spec.name>``).
        data_dir: Overrides ``sweeper.dataset.dir``.
        resume: Continue an existing sweep only: refuse when the results folder holds none of
            this name (a mistyped ``--results-dir`` would otherwise start it from scratch).
            Re-running without it resumes too.
        address: A Ray cluster to join (default: ``RAY_ADDRESS``, else a private local Ray).
        max_concurrent: Trials at once (overrides the spec's).
        wandb_mode: ``online``, ``offline`` or ``disabled`` (default: offline without credentials).
        wandb_sweep: Online: register the spec as a W&B sweep and attach the runs to it.
        progress: Show the progress bar.

    Raises:
        ConfigError: a bad ``max_concurrent``, ``address`` (or ``RAY_ADDRESS``) or ``wandb_mode``, at
            construction.
    """

    results_dir: Path = Path("results")
    data_dir: Path | None = None
    resume: bool = False
    address: str | None = None
    max_concurrent: int | None = None
    wandb_mode: str | None = None
    wandb_sweep: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise ConfigError(f"--max-concurrent: {self.max_concurrent} is too small; use a whole number >= 1")
        address = cluster_address(self.address)  # checked once, here: RAY_ADDRESS too, before a driver starts
        if address is not None:
            check_address(address, "--address" if self.address else "RAY_ADDRESS")
        if self.wandb_mode is not None:
            tracking.resolve_mode(self.wandb_mode)  # refuse a bad --wandb-mode before any work


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
    interrupted: bool = False  # stopped by Ctrl-C or SIGTERM; finished trials are in the ledger
    remaining: int = 0  # planned trials not in the ledger when run() returned


@dataclass(frozen=True)
class Hooks:
    """What a supervising process (:mod:`sweeper.dispatch.supervisor`) hears of a run:
    ``progress`` shows the progress instead of a bar in this process, and ``joined`` is told
    which Ray node the driver is attached to, once it is."""

    progress: ProgressSink | None = None
    joined: Callable[[DriverNode], None] | None = None


def _warn(summary: RunSummary, message: str) -> None:
    summary.warnings.append(message)
    _log.warning("%s", message)


def sweep_folder(spec: SweepSpec, options: RunOptions) -> Path:
    """The sweep's folder, ``<results_dir>/<spec.name>``, resolved.

    Raises:
        UserError: ``options.resume`` and the folder holds no sweep.
    """
    sweep_dir = (options.results_dir / spec.name).resolve()
    if options.resume and not is_sweep(sweep_dir):
        raise UserError(f"--resume: {sweep_dir} holds no sweep to resume; check --results-dir, "
                        "or leave out --resume to start it")
    return sweep_dir


def sweep_lock(spec: SweepSpec, options: RunOptions, sweep_dir: Path) -> "contextlib.AbstractContextManager[object]":
    """The sweep's driver lock, its note saying how this driver runs it (``sweeper status``
    paces the sweep by it: a sweep joined to another's cluster with ``--max-concurrent 1``
    runs one trial at a time, whatever its spec says)."""
    return driver_lock(sweep_dir, max_concurrent=options.max_concurrent or spec.max_concurrent,
                       address=cluster_address(options.address))


def run(spec: SweepSpec, options: RunOptions = RunOptions(), *, hooks: Hooks = Hooks(),
        locked: bool = False) -> RunSummary:
    """Run (or resume) a sweep: every trial the ledger lacks, on Ray Tune.

    Args:
        spec: The sweep.
        options: The command line's choices.
        hooks: What a supervising process is told (none by default).
        locked: The caller holds the sweep's driver lock already (a supervisor does).

    Returns:
        A :class:`RunSummary`.

    Raises:
        UserError: nothing to resume (``options.resume``), another driver running the sweep
            (:class:`~sweeper.dispatch.lock.SweepBusy`), a missing dataset, a cluster that
            cannot be joined or lacks the GPU the spec insists on.
    """
    sweep_dir = sweep_folder(spec, options)
    stop = StopFlag()
    # From the start, not the first Tuner: a stop while the run prepares ends it before any
    # trial starts (a supervisor forks its driver with the stop signals held until here).
    with graceful_stop(stop), (contextlib.nullcontext() if locked else sweep_lock(spec, options, sweep_dir)):
        return _run(spec, options, sweep_dir, hooks, stop)


def _run(spec: SweepSpec, options: RunOptions, sweep_dir: Path, hooks: Hooks, stop: StopFlag) -> RunSummary:
    """:func:`run`, holding the sweep's driver lock; ``stop`` is set by a stop signal."""
    ledger = Ledger(sweep_dir)
    summary = RunSummary(sweep_dir=sweep_dir, planned=0, already_done=0)
    for message in set_aside_unreadable(ledger):
        _warn(summary, message)
    imported = ledger.import_csv_export()
    if imported:
        _log.info("%d trials taken into the ledger from %s", imported, sweep_dir / CSV_NAMES[0])
    sweep = plan(spec, ledger.done_ids())
    summary.planned, summary.already_done = sweep.planned, len(ledger.done_ids())
    if spec.run_cap is not None and sweep.planned < spec.run_cap:
        _warn(summary, f"run_cap is {spec.run_cap} but the space holds {sweep.planned} distinct trials; "
                       "each runs once (parameters: add values to search more)")
    summary.recovered = recover(spec, ledger)
    if summary.recovered:
        sweep = plan(spec, ledger.done_ids())
    data_dir = (options.data_dir or spec.dataset.dir).resolve()  # absolute: workers run elsewhere
    # Checked now, made (if built in) only once the cluster is known to fit the trials.
    ensure_dataset(data_dir, spec.dataset.name, fix=_DATASET_FIX, make=False)
    if spec.race is not None:
        rounds = _race_rounds(spec, ledger, tracking.resolve_mode(options.wandb_mode))
        first = next(rounds, ())
        n_todo, batches = len(first), itertools.chain([first], rounds)
    else:
        n_todo, batches = sweep.remaining(ledger.done_ids()), iter(search.batches(spec, sweep))
    if n_todo and not stop.is_set():
        _dispatch(spec, options, hooks, sweep, ledger, summary, data_dir, n_todo, batches, stop)
    done = ledger.done_ids()
    if done:
        _mirror(ledger.sweep_dir)
    summary.status_counts = ledger.status_counts()
    # A bayes search may end before n_todo: a space without new trials left to propose.
    summary.dispatched = len(done) - summary.already_done - summary.recovered
    summary.remaining = (len(race_state(spec, ledger.trials(), ledger.eliminations()).pending)
                         if spec.race is not None else sweep.remaining(done))
    # A stop once every trial is recorded (as while a done sweep keeps its cluster up for a
    # joined one) interrupted nothing of this sweep: there is nothing to resume.
    summary.interrupted = stop.is_set() and summary.remaining > 0
    return summary


def _mirror(sweep_dir: Path) -> None:
    """Keep ``<sweep>/optuna.db`` up to date for optuna-dashboard; a sweep never fails for it."""
    try:
        mirror_to_optuna(sweep_dir)
    except Exception as err:  # noqa: BLE001 - the mirror is a view; the ledger is the truth
        _log.warning("the Optuna mirror %s was not updated (%s); `sweeper dashboard` rebuilds it",
                     sweep_dir / STUDY_FILE, str(err).splitlines()[0] if str(err) else type(err).__name__)


def _race_rounds(spec: SweepSpec, ledger: Ledger, wandb_mode: str) -> Iterator[Sequence[Trial]]:
    """A race's batches: the next round's trials, decided from the ledger after the last batch
    ran (its new eliminations recorded first, its look logged to W&B). Ends when the race does,
    or when a batch recorded nothing (interrupted): the next run replays the race and goes on."""
    last: Sequence[Trial] = ()
    while True:
        trials = ledger.trials()
        state = race_state(spec, trials, ledger.eliminations())
        ledger.record_eliminations(state.to_record)
        _log_look(spec, state, trials, ledger.sweep_dir, wandb_mode)
        for elimination in state.new:
            _log.info("race: %s eliminated after %d seeds: %s", _label(state, elimination.config_id),
                      elimination.round, elimination.reason)
        if state.done:
            _log.info("race over after %d seeds: %s; left: %s", state.seeds, state.why,
                      "; ".join(_label(state, c) for c in state.alive) or "none")
            return
        if state.pending == last:
            return
        _log.info("race: %d of %d configurations in the race; next %d trials (%d seeds each)",
                  len(state.alive), len(state.configs), len(state.pending), max(t.params["seed"] for t in state.pending) + 1)
        last = state.pending
        yield state.pending[:search.TRIALS_PER_TUNER]  # a long round runs as several Tuners, as a grid does


def _log_look(spec: SweepSpec, state: RaceState, trials: "pd.DataFrame", sweep_dir: Path, wandb_mode: str) -> None:
    """The race's last look as a W&B run (:func:`~sweeper.tracking.log_race_look`): every
    configuration's seeds, mean, elimination and p-value, and the claims' verdicts, as the
    report gives them. Logged while the ledger holds what that look saw (no trial of a later
    seed yet), once; a sweep never fails for it."""
    if wandb_mode == "disabled" or not state.rounds or (trials[param_column("seed")] >= state.seeds).any():
        return
    look = state.rounds[-1]
    try:
        from sweeper.report.claims import race_verdicts  # the report's verdicts: pandas, no Ray

        race, verdicts = race_verdicts(spec, state, trials, spec.metric)
        keys = list(race.configs[0].params)
        table = ([*keys, "seeds", spec.metric, "eliminated_after", "p_value", "reason", "trial_seconds"],
                 [[*(c.params.get(k) for k in keys), c.seeds, c.mean, c.eliminated_after, c.p_value, c.reason,
                   c.seconds] for c in race.configs])
        summary = {
            "seeds": look.seeds, "configurations": len(state.configs), "left": len(state.alive),
            "best": _label(state, look.best), "eliminated": "; ".join(_label(state, c) for c in look.eliminated),
            "p_value": look.p_value if look.p_value is not None else math.nan, "level": state.level,
            "trials_run": race.trials_run, "full_trials": race.full_trials, "most_trials": race.most_trials,
            "compute_fraction": race.compute_fraction, "done": state.done, "why": state.why,
            **({"seeds_to_part": race.parting[2]} if race.parting and race.parting[2] else {}),
            **{f"verdict_{v.claim.key}": v.outcome for v in verdicts if v.outcome != "not tested"},
            **{f"verdict_{v.claim.key}_reason": v.reason for v in verdicts if v.outcome != "not tested"},
        }
        config = {"test": race.test, "alpha": race.alpha, "level_per_look": race.level, "seeds_first": race.first,
                  "seeds_max": race.max, "metric": spec.metric}
        tracking.log_race_look(spec.name, sweep_dir / "wandb", wandb_mode, look.seeds, config, table, summary)
    except Exception as err:  # noqa: BLE001 - W&B is a view of the race; the ledger holds it
        _log.warning("the race's look after %d seeds was not logged to W&B (%s); the sweep goes on", look.seeds,
                     str(err).splitlines()[0] if str(err) else type(err).__name__)


def _label(state: RaceState, cid: str) -> str:
    varied = [k for k in next(iter(state.configs.values()), {})
              if len({repr(c[k]) for c in state.configs.values()}) > 1]
    return label(state.configs[cid], varied) or cid


def _dispatch(spec: SweepSpec, options: RunOptions, hooks: Hooks, sweep: SweepPlan, ledger: Ledger,
              summary: RunSummary, data_dir: Path, n_todo: int, batches: Iterator[Sequence[Trial]],
              stop: StopFlag) -> None:
    """The Ray part of :func:`run`: connect, pin, and run one Tuner per batch until ``stop``."""
    wandb_mode = tracking.resolve_mode(options.wandb_mode)
    sweep_id = tracking.register_sweep(spec.wandb_config(), None, mode=wandb_mode) if options.wandb_sweep else None
    connect(options.address)
    with graceful_stop(stop):  # again, once Ray is up: ray.init installed its own SIGTERM handler
        if hooks.joined is not None:
            hooks.joined(driver_node())
        import ray
        from ray import tune

        from sweeper.dispatch.callback import LedgerCallback, TrialsNow  # imports Ray

        resources, warning = pin_resources(spec.resources, ray.cluster_resources())
        if warning:
            _warn(summary, warning)
        if "gpu" not in resources and (emulated := local_cpu_warning(spec, options.address)):
            _warn(summary, emulated)  # the trials train on this machine's CPU, whose flags are known here
        summary.resources = resources
        ensure_dataset(data_dir, spec.dataset.name, fix=_DATASET_FIX)
        # spec.yaml is the spec the sweep ran with: --max-concurrent's, not the file's, when given
        ran = spec if options.max_concurrent is None else replace(spec, max_concurrent=options.max_concurrent)
        write_provenance(ran, ledger.sweep_dir, {"resources": resources, "wandb_mode": wandb_mode})
        context = trainable.TrialContext(
            sweep=spec.name, sweep_dir=str(ledger.sweep_dir), dataset_dir=str(data_dir), dataset_name=spec.dataset.name,
            wandb_mode=wandb_mode, cpus=resources["cpu"],
            accelerator_type=spec.resources.accelerator_type if "gpu" in resources else None, sweep_id=sweep_id,
            vgg_weights=os.environ.get("SWEEPER_VGG_WEIGHTS") or "auto",
        )
        with Progress(0, spec, options.progress, hooks.progress) as progress:
            for batch in batches:
                if stop.is_set():
                    break
                progress.extend(len(batch) if not sweep.searched else n_todo)
                search_alg, scheduler = search.search_and_scheduler(spec, sweep, ledger.sweep_dir, ledger.done_ids())
                run_name = _next_run_name(ledger.sweep_dir)
                recorder = LedgerCallback(spec, ledger, progress, stop)
                tuner = tune.Tuner(
                    # Looked up now, not imported: tests swap in a trainable of their own.
                    tune.with_resources(tune.with_parameters(trainable.run_trial, context=context), resources),
                    param_space=search.param_space(spec, sweep, batch),
                    tune_config=tune.TuneConfig(
                        metric=spec.metric, mode=search.mode(spec), search_alg=search_alg, scheduler=scheduler,
                        num_samples=n_todo if sweep.searched else 1,
                        max_concurrent_trials=options.max_concurrent or spec.max_concurrent,
                        reuse_actors=search.reuse_actors(scheduler), trial_dirname_creator=_trial_dirname,
                    ),
                    run_config=tune.RunConfig(
                        name=run_name, storage_path=str(ledger.sweep_dir / "ray"), verbose=0,
                        failure_config=tune.FailureConfig(max_failures=spec.max_failures),
                        callbacks=[recorder, TrialsNow(ledger.sweep_dir)], progress_reporter=None,
                    ),
                )
                with (watchdog(ledger.sweep_dir / "ray" / run_name, ledger.sweep_dir),
                      resource_watch(resources, ray.cluster_resources)):
                    tuner.fit()
                if recorder.failed is not None:
                    raise recorder.failed
        if cluster_address(options.address) is None and not stop.is_set():
            _outlast_joined(stop, ledger.sweep_dir)


def _outlast_joined(stop: StopFlag, sweep_dir: Path) -> None:
    """Keep the Ray cluster this driver started up while other drivers run on it (sweeps
    joined with ``--address``): Ray shuts it down when this driver exits, and their trials
    with it. Ctrl-C (``stop``) ends the wait; they then lose the cluster, and each says how
    to resume."""
    others = other_drivers()
    if not others:
        return
    one = len(others) == 1
    _log.warning("this sweep is done, but its Ray cluster goes down when it exits, and %s still on it (%s): "
                 "keeping it up until %s (Ctrl-C stops now)", "another driver is" if one else f"{len(others)} other drivers are",
                 ", ".join(others), "it ends" if one else "they end")
    noted: list[str] = []
    stop.finished = True
    while others and not stop.is_set():
        if others != noted:  # for `sweeper status`: this sweep is done, and why its driver runs on
            note_trials(sweep_dir, 0, 0, keeping=others)
            noted = others
        time.sleep(_OTHERS_POLL_S)
        others = other_drivers()
    if others:
        _log.warning("stopped waiting: the Ray cluster goes down now, and with it the trials of %s (%s); "
                     "each resumes with the command that started it", drivers_still_on_it(others), ", ".join(others))


def _next_run_name(sweep_dir: Path) -> str:
    """``run-NNN``, one past the Ray runs already in the sweep folder (recovery reads them all)."""
    numbers = [int(p.name[4:]) for p in (sweep_dir / "ray").glob("run-*") if p.name[4:].isdigit()]
    return f"run-{max(numbers, default=0) + 1:03d}"


def _trial_dirname(trial: object) -> str:
    tid = trial.config.get("trial_id") or trial.trial_id  # type: ignore[attr-defined]
    return f"{tid}_{trial.trial_id}"  # type: ignore[attr-defined]
