"""A sweep's ledger as an Optuna study: the offline stand-in for W&B's sweep dashboard.

Every sweep is mirrored into ``<sweep>/optuna.db`` so that ``optuna-dashboard`` (or
``sweeper dashboard``) shows its history, parallel coordinates and parameter importance
without a network. A bayes sweep already has the study OptunaSearch wrote there; grid and
random sweeps get one trial per ledger row. The report builds the same study in memory
for its importance figures. No TensorFlow, no Ray.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model.errors import UserError
from model.metrics import VAL_METRICS, metric_goal
from sweeper.folder import read_spec
from sweeper.ledger import Ledger
from sweeper.records import param_column, plain
from sweeper.space import searched_params
from sweeper.spec import SweepSpec

if TYPE_CHECKING:
    import optuna
    import pandas as pd

__all__ = ["ledger_study", "mirror_to_optuna", "goal_of", "study_storage", "STUDY_FILE"]

STUDY_FILE = "optuna.db"
_TRIAL_ID_ATTR = "sweeper_trial_id"


def study_storage(sweep_dir: str | Path) -> "optuna.storages.RDBStorage":
    """``<sweep>/optuna.db`` as an Optuna storage (made when missing).

    Raises:
        UserError: the file is there but is not a study this Optuna can read (another file
            under that name, or one written by an Optuna whose schema this one cannot read).
    """
    import optuna
    import sqlalchemy.exc

    path = Path(sweep_dir) / STUDY_FILE
    try:
        return optuna.storages.RDBStorage(f"sqlite:///{path.resolve()}")
    except (sqlalchemy.exc.SQLAlchemyError, RuntimeError) as err:
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"{path}: not an Optuna study this Optuna can read ({why}); move it aside: the ledger "
                        "keeps every trial, and the study is made again from it") from None


def _distributions(trials: "pd.DataFrame", names: list[str], spec: SweepSpec | None,
                   stored: bool) -> dict[str, Any]:
    import optuna.distributions as od

    out: dict[str, Any] = {}
    for name in names:
        param = spec.param(name) if spec is not None else None
        if param is not None and param.kind == "distribution":
            log = "log" in str(param.distribution)
            if param.integer:
                out[name] = od.IntDistribution(int(param.min), int(param.max), log=log)
            else:
                out[name] = od.FloatDistribution(float(param.min), float(param.max), log=log)
            continue
        choices = list(param.values) if param is not None and param.values else []
        if stored and name == "seed" and spec is not None and spec.race is not None:
            # A race adds a seed a round; its stored study is told them all (0 .. max-1) at
            # once, as Optuna refuses a categorical whose choices change between mirrors. A
            # study in memory (the report's importance, which weighs every choice) gets the
            # seeds recorded.
            choices = list(range(spec.race.max))
        # Values recorded but not in the spec (a spec edited between runs) are still shown.
        seen = [plain(v) for v in trials.get(param_column(name), [])]
        for value in seen:
            if value is not None and value not in choices:
                choices.append(value)
        if choices:
            out[name] = od.CategoricalDistribution(sorted(choices, key=lambda v: (str(type(v)), v)))
    return out


def ledger_study(
    trials: "pd.DataFrame",
    epochs: "pd.DataFrame",
    *,
    metric: str,
    goal: str,
    study_name: str,
    spec: SweepSpec | None = None,
    storage: Any = None,
) -> "optuna.Study":
    """The ledger's trials as an Optuna study, adding only the rows the study lacks.

    ``ok`` trials are COMPLETE with ``metric`` as the value and each epoch's ``metric`` as an
    intermediate value; ``error`` and ``diverged`` trials are FAIL with the status and message
    in user attributes. Each trial carries its sweeper trial id, so mirroring twice adds nothing.

    Args:
        trials: The ledger's trials table.
        epochs: The ledger's epochs table.
        metric: The study's objective column (e.g. ``val_psnr``).
        goal: ``maximize`` or ``minimize``.
        study_name: The study to create or extend.
        spec: The sweep's spec (gives the distributions); inferred from the ledger without it.
        storage: An Optuna storage or URL; ``None`` keeps the study in memory.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names = searched_params(spec, trials)
    dists = _distributions(trials, names, spec, stored=storage is not None)
    study = optuna.create_study(study_name=study_name, storage=storage, direction=goal, load_if_exists=True)
    existing = study.get_trials(deepcopy=False)
    if any(dists.get(n, d) != d for t in existing for n, d in t.distributions.items()):
        # The spec's values changed since the last mirror (Optuna cannot widen a stored
        # categorical): the study is a view of the ledger, so it is rebuilt from it.
        optuna.delete_study(study_name=study_name, storage=storage)
        study = optuna.create_study(study_name=study_name, storage=storage, direction=goal)
        existing = []
    known = {t.user_attrs.get(_TRIAL_ID_ATTR) for t in existing}
    curves: dict[str, dict[int, float]] = {}
    for row in epochs.itertuples(index=False):
        value = plain(getattr(row, metric, None))
        if value is not None and math.isfinite(value):
            curves.setdefault(row.trial_id, {})[int(row.epoch)] = float(value)
    new = []
    for row in trials.to_dict("records"):
        if row["trial_id"] in known:
            continue
        params = {n: plain(row.get(param_column(n))) for n in dists}
        params = {n: v for n, v in params.items() if v is not None}
        value = plain(row.get(metric))
        ok = row["status"] == "ok" and value is not None and math.isfinite(value)
        attrs = {
            _TRIAL_ID_ATTR: row["trial_id"], "status": row["status"],
            **{k: plain(row.get(k)) for k in (*VAL_METRICS, "seconds")},
        }
        if row.get("error"):
            attrs["error"] = str(row["error"])[:500]
        new.append(optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE if ok else optuna.trial.TrialState.FAIL,
            value=float(value) if ok else None,
            params=params,
            distributions={n: dists[n] for n in params},
            intermediate_values=curves.get(row["trial_id"], {}) if ok else {},
            user_attrs={k: v for k, v in attrs.items() if v is not None and v == v},
        ))
    if new:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # add_trials is experimental in some Optuna releases
            study.add_trials(new)
    return study


def mirror_to_optuna(sweep_dir: str | Path, metric: str | None = None) -> tuple[str, str]:
    """Mirror a sweep's ledger into ``<sweep>/optuna.db`` (idempotent).

    A bayes sweep's own study (written by OptunaSearch) is left as it is.

    Args:
        sweep_dir: The sweep folder.
        metric: The objective (default: the spec's metric, else ``val_psnr``).

    Returns:
        The storage URL and the study name.

    Raises:
        UserError: the sweep has no ledger yet, or its ledger is unreadable.
    """
    import optuna

    folder = Path(sweep_dir)
    spec = read_spec(folder)
    trials, epochs = Ledger(folder, create=False).snapshot()
    if trials.empty:
        raise UserError(f"{folder}: no trials recorded yet; nothing to show")
    name = spec.name if spec is not None else folder.name
    storage = study_storage(folder)
    url = storage.url
    if spec is not None and spec.method == "bayes":
        if name in {s.study_name for s in optuna.get_all_study_summaries(storage)}:
            return url, name
    metric = metric or (spec.metric if spec is not None else "val_psnr")
    ledger_study(trials, epochs, metric=metric, goal=goal_of(metric, spec), study_name=name, spec=spec, storage=storage)
    return url, name


def goal_of(metric: str, spec: SweepSpec | None = None) -> str:
    """The spec's goal when ``metric`` is its metric, else the metric's natural direction."""
    return spec.goal if spec is not None and spec.metric == metric else metric_goal(metric)
