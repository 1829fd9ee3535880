"""How Tune meets a sweep's trials: the param space, batches of Tuners, the search algorithm
and the scheduler. Ray is imported inside the functions that need it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, TypeVar

from model.errors import ConfigError
from model.params import PARAMETER_NAMES, TrainParams
from sweeper.dispatch.plan import SweepPlan
from sweeper.space import Trial
from sweeper.spec import Param, SweepSpec
from sweeper.study import study_storage

__all__ = ["TRIALS_PER_TUNER", "batches", "in_tuners", "mode", "param_space", "reuse_actors", "search_and_scheduler",
           "tuner_sizes"]

_T = TypeVar("_T", bound=Sequence[Any])

TRIALS_PER_TUNER = 200
"""Trials per Tuner. Ray Tune's driver keeps every trial of an experiment in memory until the
experiment ends (its controller, its experiment-state cache and its default loggers all hold
them: ray-project/ray#64231), about 0.17 MB a trial here. The ledger, not Tune's experiment,
is the truth, so a long grid runs as consecutive Tuners of at most this many trials and the
driver's memory stays bounded; the only cost is that concurrency drains at each boundary."""


def mode(spec: SweepSpec) -> str:
    """Tune's ``mode`` for the spec's goal: ``max`` or ``min``."""
    return "max" if spec.goal == "maximize" else "min"


def param_space(spec: SweepSpec, plan: SweepPlan, batch: Sequence[Trial]) -> dict[str, Any]:
    """Tune's ``param_space`` for one Tuner: search domains when a searcher proposes the trials,
    else a grid over the batch's trial ids."""
    from ray import tune

    if plan.searched:
        return {p.name: _ray_domain(p) for p in spec.parameters}
    table = {t.id: dict(t.params) for t in batch}
    space: dict[str, Any] = {"trial_id": tune.grid_search([t.id for t in batch])}
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


def _ray_domain(param: Param) -> Any:
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


def batches(spec: SweepSpec, plan: SweepPlan) -> list[Sequence[Trial]]:
    """The pending trials split into one Tuner each. A searched sweep or ASHA is one Tuner,
    since the searcher and the scheduler compare every trial of the sweep."""
    todo: Sequence[Trial] = plan.todo
    if spec.early_terminate is not None:
        # Asynchronous ASHA judges a trial only against those that reached a rung before it. In
        # the grid's sorted order the first arrivals are one corner of the space (every lr 0.0001
        # of lr_rho.yaml), promoted unopposed: 0.62 of the grid's epochs were spent, all five
        # epochs for 18 of 40 trials. Trial ids are hashes of the parameters, so their order is
        # a fixed shuffle that owes nothing to any parameter.
        todo = sorted(todo, key=lambda t: t.id)
    return [todo] if _one_tuner(spec) or not todo else in_tuners(todo)


def tuner_sizes(spec: SweepSpec | None, trials: int) -> list[int]:
    """How many trials each of the consecutive Tuners that ``trials`` pending trials of the
    sweep run as holds, as :func:`batches` splits them (a race's round alike): each waits for
    all its trials before the next starts. A sweep without its spec counts as a grid."""
    if (spec is not None and _one_tuner(spec)) or not trials:
        return [trials]
    return [len(tuner) for tuner in in_tuners(range(trials))]


def in_tuners(trials: _T) -> list[_T]:
    """``trials`` in consecutive slices of at most :data:`TRIALS_PER_TUNER`, a Tuner each."""
    return [trials[i:i + TRIALS_PER_TUNER] for i in range(0, len(trials), TRIALS_PER_TUNER)]


def _one_tuner(spec: SweepSpec) -> bool:
    """Whether the sweep runs as one Tuner: a searched one (bayes) or ASHA."""
    return spec.method == "bayes" or spec.early_terminate is not None


def search_and_scheduler(spec: SweepSpec, plan: SweepPlan, sweep_dir: Path,
                         done: Iterable[str] = ()) -> tuple[Any, Any]:
    """Ray Tune's search algorithm and trial scheduler for ``spec`` (``None`` where Tune's
    defaults serve: a grid is listed, not searched). ``done``: trial ids already recorded.

    A searched sweep runs Optuna's TPE (an RDB study in ``<sweep>/optuna.db``, so
    optuna-dashboard shows it) behind :class:`~sweeper.dispatch.distinct.DistinctSearch`;
    ``early_terminate: hyperband`` runs ASHA on the ``epoch`` reports.
    """
    search_alg = scheduler = None
    if plan.searched:
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        from sweeper.dispatch.distinct import DistinctSearch  # imports Ray

        storage = study_storage(sweep_dir)
        search_alg = DistinctSearch(OptunaSearch(
            metric=spec.metric, mode=mode(spec), storage=storage, study_name=spec.name,
            sampler=optuna.samplers.TPESampler(seed=0),
        ), spec, done)
    et = spec.early_terminate
    if et is not None:
        from ray.tune.schedulers import ASHAScheduler

        # metric and mode come from TuneConfig; Ray refuses them in both places.
        scheduler = ASHAScheduler(
            time_attr="epoch", grace_period=int(et.min_iter or 1), reduction_factor=float(et.eta or 3),
            max_t=int(et.max_iter or max(_epochs_values(spec))),
        )
    return search_alg, scheduler


def reuse_actors(scheduler: Any) -> bool:
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
    param = spec.param("epochs")
    if param is None:
        return [TrainParams.epochs]
    return [int(param.value)] if param.value is not None else [int(v) for v in param.values or [TrainParams.epochs]]
