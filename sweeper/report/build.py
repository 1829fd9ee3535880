"""One read of a sweep's ledger turned into a :class:`Report`, and the report files written.

:func:`build_report` reads the spec once and the ledger once, ranks the configurations,
judges the claims, computes Optuna's parameter importance, scores the blurred input (the
baseline) and draws the figures; :func:`report` also writes ``report.md``, ``report.html``,
``report.json`` and the ledger's CSV export into the sweep folder.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model.cache import open_split
from model.data import DatasetRef, eval_arrays
from model.errors import ConfigError, UserError, suggest
from model.metrics import VAL_METRICS, VAL_PREFIX, reference_metrics
from sweeper.folder import find_sweep, read_spec, write_atomic
from sweeper.ledger import Ledger, count_statuses
from sweeper.race import race_state
from sweeper.report.claims import CLAIMS, claimed_config, judge, race_verdicts
from sweeper.report.document import Report
from sweeper.report.plots import draw_all
from sweeper.report.ranking import failed_trials, rank_configs
from sweeper.report.render import render
from sweeper.space import config_keys, searched_params
from sweeper.spec import SweepSpec
from sweeper.status import planned_trials
from sweeper.study import goal_of, ledger_study

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["build_report", "report"]

_log = logging.getLogger(__name__)

_BASELINE_FILE = "baseline.json"  # the blurred input's scores (a committed reference run keeps it)
_REPORT_FILES = {"report.md": "md", "report.html": "html", "report.json": "json"}
_DEFAULT_METRIC = "val_psnr"  # without a spec: the figure deblurring papers lead with
_MIN_IMPORTANCE_TRIALS = 4  # fewer ok trials give PED-ANOVA no top quantile to speak of


def _importance(trials: "pd.DataFrame", epochs: "pd.DataFrame", metric: str, goal: str,
                spec: SweepSpec | None) -> tuple[dict[str, float], str]:
    """Optuna's PED-ANOVA importance of each searched parameter, and a note on how (or why not)."""
    import optuna

    ok = trials[(trials["status"] == "ok") & trials[metric].notna()]
    params = searched_params(spec, trials)
    if len(params) < 2:
        return {}, f"importance needs two or more searched parameters; this sweep searches {len(params)}"
    if len(ok) < _MIN_IMPORTANCE_TRIALS:
        return {}, f"importance needs at least {_MIN_IMPORTANCE_TRIALS} ok trials; {len(ok)} so far"
    # A parameter with one value among the ok trials explains none of their spread, yet PED-ANOVA
    # scores it against the spec's distribution (lr_rho_race's first 6 trials, all at lr 0.0001,
    # gave learning_rate 0.147): only the parameters the ok trials vary are scored.
    varied = set(searched_params(trials=ok))  # the no-spec reading: more than one value recorded
    fixed = [p for p in params if p not in varied]
    if len(params) - len(fixed) < 2:
        return {}, (f"importance needs two or more parameters that the ok trials vary; "
                    f"{', '.join(fixed)} {'has' if len(fixed) == 1 else 'have'} one value so far")
    study = ledger_study(ok, epochs, metric=metric, goal=goal, study_name="report", spec=spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PED-ANOVA warns when the top quantile holds few trials
        try:
            scores = optuna.importance.get_param_importances(study, params=[p for p in params if p in varied])
        except (ValueError, RuntimeError) as err:
            return {}, f"importance could not be computed: {err}"
    # Their last digits follow the CPU's summation order: rounded, a committed report's JSON
    # comes out the same on every machine (they sum to 1 within 2e-9).
    return ({k: round(float(v), 9) for k, v in scores.items()},
            "PED-ANOVA: how much each parameter's distribution differs between the top 10% of trials and all of them")


def _baseline(sweep_dir: Path, spec: SweepSpec | None) -> dict[str, Any] | None:
    """The blurred test images scored against the sharp ones, as a trial is scored (cached in
    ``<sweep>/baseline.json``, which a committed reference run keeps). ``None`` without the data."""
    cache = sweep_dir / _BASELINE_FILE
    if cache.is_file():
        try:
            return json.loads(cache.read_text())
        except (OSError, ValueError) as err:
            _log.debug("%s: not read (%s); scoring the blurred input again", cache, err)
    if spec is None:
        return None
    ref = DatasetRef(spec.dataset.dir, spec.dataset.name)
    try:
        pairs = eval_arrays(open_split(ref, "test"))
    except UserError as err:
        _log.debug("no baseline: %s", err)  # the data is elsewhere (or gone): the report goes on without it
        return None
    scores = [reference_metrics(sharp, blur) for blur, sharp in pairs]
    result = {"dataset": str(Path(ref.dir) / ref.name), "images": len(scores),
              **{m: sum(s[m.removeprefix(VAL_PREFIX)] for s in scores) / len(scores) for m in VAL_METRICS}}
    write_atomic(cache, json.dumps(result, indent=2) + "\n")
    return result


def build_report(sweep_dir: Path, metric: str | None = None, *, plots: bool = True) -> Report:
    """Compute a sweep's report from its ledger, drawing the plots into ``<sweep>/plots/``.

    Args:
        sweep_dir: The sweep folder.
        metric: The ranking metric (default: the spec's, else ``val_psnr``).
        plots: Draw the figures (``False`` for a quick text-only report).

    Raises:
        UserError: unknown metric, no trials recorded, unreadable ledger.
    """
    spec = read_spec(sweep_dir)
    metric = metric or (spec.metric if spec is not None else _DEFAULT_METRIC)
    if metric not in VAL_METRICS:
        raise ConfigError(f"--metric: unknown metric {metric!r}{suggest(metric, VAL_METRICS)}; "
                          f"valid: {', '.join(VAL_METRICS)}")
    goal = goal_of(metric, spec)
    ledger = Ledger(sweep_dir, create=False)
    trials, epochs = ledger.snapshot()
    if trials.empty:
        raise UserError(f"{sweep_dir}: no trials recorded yet; `sweeper status` shows progress")
    keys = config_keys(spec, trials)
    ranking = rank_configs(trials, keys, metric, goal)
    race = state = None
    if spec is not None and spec.race is not None:
        state = race_state(spec, trials, ledger.eliminations())
        race, verdicts = race_verdicts(spec, state, trials, metric)
    else:
        verdicts = tuple(judge(c, ranking, keys, metric, goal) for c in CLAIMS)
    importance, note = _importance(trials, epochs, metric, goal, spec)
    baseline = _baseline(sweep_dir, spec)
    claimed = () if race is None or state is None else tuple(
        c.config_id for c in (claimed_config(claim, race, state) for claim in CLAIMS) if c is not None)
    figures = (draw_all(sweep_dir, trials, epochs, ranking, keys, metric, goal, importance,
                        (baseline or {}).get(metric), race, claimed) if plots else {})
    # A race plans what it has run plus the round it is on; a grid, its whole listing.
    planned = (len(trials) + len(state.pending)) if state is not None else planned_trials(spec)
    return Report(
        sweep=spec.name if spec is not None else sweep_dir.name, sweep_dir=sweep_dir, metric=metric, goal=goal,
        recorded=len(trials), planned=planned,
        status_counts=count_statuses(trials), keys=tuple(keys),
        ranking=tuple(ranking), verdicts=verdicts,
        failures=failed_trials(trials), importance=importance, importance_note=note, figures=figures,
        baseline=baseline, race=race, emulated=int(trials["emulation"].notna().sum()),
    )


def report(sweep: Path | None = None, results_dir: Path = Path("results"), metric: str | None = None) -> Report:
    """Build a sweep's report and write ``report.md``, ``report.html``, ``report.json`` and the
    ledger's CSV export into the sweep folder.

    Args:
        sweep: A sweep folder (default: the latest under ``results_dir``).
        results_dir: Where sweeps live.
        metric: The ranking metric (default: the spec's).

    Returns:
        The :class:`Report`.
    """
    sweep_dir = find_sweep(sweep, results_dir)
    result = build_report(sweep_dir, metric)
    for name, fmt in _REPORT_FILES.items():
        write_atomic(sweep_dir / name, render(result, fmt))  # a browser refresh never sees half a report
    ledger = Ledger(sweep_dir, create=False)
    if ledger.trials_path.is_file():  # a committed CSV-only reference run is left as it is
        ledger.export_csv()
    return result
