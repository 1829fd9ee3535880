"""A sweep's trials grouped into configurations (the searched parameters other than the seed)
and ranked by the report metric; and the trials that failed, which the ranking never hides.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

from model.metrics import VAL_METRICS
from sweeper.records import label, param_column, params_of, plain
from sweeper.report.stats import Interval, finite, mean_interval

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ConfigResult", "failed_trials", "rank_configs"]

_MESSAGE_CHARS = 300  # a failure's message in the report: its first line, cut to this length


@dataclasses.dataclass(frozen=True)
class ConfigResult:
    """One configuration: the searched parameters other than the seed, over its trials."""

    rank: int
    params: dict[str, Any]  # the searched parameters that define it
    n: int  # trials with status ok (the ones its statistics use)
    metrics: dict[str, Interval]
    seconds: float  # mean trial wall time
    statuses: dict[str, int]
    trial_ids: tuple[str, ...]
    values: tuple[float, ...]  # the report metric of its ok trials
    fixed: dict[str, Any]  # every parameter of its first trial (for matching claims)

    def label(self) -> str:
        """``optimizer=rmsprop, loss=mae`` (or ``all trials`` when nothing is searched)."""
        return label(self.params) or "all trials"


def _config(key: tuple, rows: list[dict[str, Any]], keys: list[str], metric: str) -> ConfigResult:
    """One configuration's statistics over its ``rows`` (not yet ranked)."""
    ok = [r for r in rows if r["status"] == "ok"]
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    metrics = {m: mean_interval([r[m] for r in ok]) for m in VAL_METRICS}
    seconds = finite([r["seconds"] for r in rows])
    return ConfigResult(
        rank=0, params=dict(zip(keys, key)), n=metrics[metric].n, metrics=metrics,
        seconds=sum(seconds) / len(seconds) if seconds else math.nan, statuses=dict(sorted(statuses.items())),
        trial_ids=tuple(r["trial_id"] for r in rows), values=tuple(finite([r[metric] for r in ok])),
        fixed=params_of(rows[0]),
    )


def rank_configs(trials: "pd.DataFrame", keys: list[str], metric: str, goal: str) -> list[ConfigResult]:
    """Group ``trials`` by the ``keys`` parameters and rank the groups by the mean ``metric``.

    Args:
        trials: The ledger's trials frame.
        keys: The parameters that define a configuration (the searched ones but the seed).
        metric: The ranking metric, one of :data:`~model.metrics.VAL_METRICS`.
        goal: ``maximize`` or ``minimize``.

    Returns:
        The configurations, best first, ranked from 1; those without an ok trial last (by label).
    """
    sign = 1.0 if goal == "maximize" else -1.0
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in trials.to_dict("records"):
        key = tuple(plain(row.get(param_column(k))) for k in keys)
        groups.setdefault(key, []).append(row)
    unranked = [_config(key, rows, keys, metric) for key, rows in groups.items()]

    def order(c: ConfigResult) -> tuple:
        mean = c.metrics[metric].mean
        scored = c.n > 0 and math.isfinite(mean)
        return (not scored, -sign * mean if scored else 0.0, c.label())

    return [dataclasses.replace(c, rank=i) for i, c in enumerate(sorted(unranked, key=order), start=1)]


def failed_trials(trials: "pd.DataFrame") -> tuple[dict[str, Any], ...]:
    """The trials that did not finish ok (error or diverged), each as
    ``{"trial_id", "status", "error": first line of the message, "params": {...}}``."""
    failed = trials[trials["status"] != "ok"]
    rows = [{k: plain(v) for k, v in row.items()} for row in failed.to_dict("records")]
    return tuple(
        {"trial_id": r["trial_id"], "status": r["status"],
         "error": (str(r["error"]).strip().splitlines() or [""])[0][:_MESSAGE_CHARS],
         "params": params_of(r)}
        for r in rows
    )
