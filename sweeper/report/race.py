"""A raced sweep in the report: what each configuration ran, when it left and why, and the
compute the race spent against running every configuration on every seed."""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any, Mapping

from model.metrics import metric_unit
from sweeper.race import RaceState
from sweeper.records import label, params_of
from sweeper.report.display import json_number
from sweeper.space import config_id
from sweeper.spec import SweepSpec

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RaceConfig", "RaceSummary", "summarise_race"]


@dataclasses.dataclass(frozen=True)
class RaceConfig:
    """One configuration in the race.

    Attributes:
        params: Its searched parameters (the report's keys).
        seeds: Seeds it ran.
        eliminated_after: The seeds of the test that eliminated it (``None``: still in).
        p_value: That test's p-value for it (``None``: in, or a failed trial).
        reason: Why it left (empty while in).
        mean: Its mean score on the seeds it ran (the report metric).
        seconds: The trial-seconds it used.
    """

    config_id: str
    params: dict[str, Any]
    seeds: int
    eliminated_after: int | None
    p_value: float | None
    reason: str
    mean: float
    seconds: float

    def label(self) -> str:
        """``optimizer=adam, loss=mae``."""
        return label(self.params) or self.config_id


@dataclasses.dataclass(frozen=True)
class RaceSummary:
    """The race, as the report shows it.

    Attributes:
        configs: Still in the race first (best mean first), then the eliminated (last out first).
        rounds: ``(seeds, configurations tested, omnibus p-value, eliminated ids)`` per test.
        trials_run: Trials the race ran; ``full_trials`` what every configuration on ``max`` seeds takes.
        seconds_run: Their trial-seconds; ``full_seconds`` the same estimate for the full design
            (the mean trial's seconds times ``full_trials``).
        most_trials: The most trials the race can run in all, the ones run included (every
            configuration left on each further seed up to ``most_seeds``; ``trials_run`` once it
            is over); ``most_seeds``: the seeds a configuration left can come to.
        parting: A race over with several left: the leader's mean lead over the runner-up
            (on their shared seeds, in ``unit``), those seeds, and the seeds that would part
            them with 80% power (:meth:`~sweeper.race.RaceState.seeds_to_part`; ``None``: none would).
    """

    test: str
    alpha: float
    level: float
    first: int
    max: int
    done: bool
    why: str
    configs: tuple[RaceConfig, ...]
    rounds: tuple[tuple[int, int, float | None, tuple[str, ...]], ...]
    trials_run: int
    full_trials: int
    seconds_run: float
    full_seconds: float
    most_trials: int
    most_seeds: int
    parting: tuple[float, int, int | None] | None = None
    unit: str = ""

    @property
    def compute_fraction(self) -> float:
        """The race's trial-seconds over the full design's (NaN before any trial)."""
        return self.seconds_run / self.full_seconds if self.full_seconds > 0 else math.nan

    @property
    def alive(self) -> tuple[RaceConfig, ...]:
        """The configurations still in the race."""
        return tuple(c for c in self.configs if c.eliminated_after is None)

    def headline(self) -> str:
        """One line: where the race stands and what it cost."""
        state = f"over after {self.rounds[-1][0] if self.rounds else 0} seeds: {self.why}" if self.done else "running"
        return (f"Race ({self.test}, alpha {self.alpha:g} over {self.max - self.first + 1} looks, {self.level:.3g} "
                f"each): {state}; {len(self.alive)} of {len(self.configs)} configurations left. It ran "
                f"{self.trials_run} of the {self.full_trials} trials of every configuration on {self.max} seeds: "
                f"{self.seconds_run:.0f} of about {self.full_seconds:.0f} trial-seconds "
                f"({self.compute_fraction:.0%} of the compute)." + (
                    "" if self.done else f" It runs at most {self.most_trials} of them "
                    f"({self.most_trials / self.full_trials:.0%}), if no look eliminates another.") + (
                    f" {parting[:1].upper()}{parting[1:]}." if (parting := self.parting_line()) else ""))

    def parting_line(self) -> str:
        """What parting the leader from the runner-up would take (a race over with several
        left; empty otherwise), as a line of ``sweeper status`` (the report makes it a sentence)."""
        if self.parting is None:
            return ""
        lead, shared, needed = self.parting
        leader, runner_up = self.alive[:2]
        would = (f"parting them would take about {needed} seeds (80% power at the per-look level, from the paired "
                 "differences seen)" if needed else "at the difference seen, no number of seeds would part them")
        return (f"the leader, {leader.label()}, is {lead:.3g}{self.unit} ahead of the runner-up, {runner_up.label()}, "
                f"on average over {shared} shared seeds: {would}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "test": self.test, "alpha": self.alpha, "level_per_look": self.level,
            "seeds_first": self.first, "seeds_max": self.max, "done": self.done, "why": self.why,
            "configs": [{**dataclasses.asdict(c), "mean": json_number(c.mean), "p_value": json_number(c.p_value),
                         "seconds": json_number(c.seconds)} for c in self.configs],
            "rounds": [{"seeds": s, "tested": n, "p_value": json_number(p), "eliminated": list(e)}
                       for s, n, p, e in self.rounds],
            "trials_run": self.trials_run, "full_trials": self.full_trials, "seconds_run": self.seconds_run,
            "full_seconds": json_number(self.full_seconds), "compute_fraction": json_number(self.compute_fraction),
            "most_trials": self.most_trials, "most_seeds": self.most_seeds,
            "parting": None if self.parting is None else {
                "lead": json_number(self.parting[0]), "shared_seeds": self.parting[1], "seeds_needed": self.parting[2]},
        }


def summarise_race(spec: SweepSpec, state: RaceState, trials: "pd.DataFrame", keys: list[str],
                   metric: str) -> RaceSummary:
    """The report's view of ``state``, with the seconds and means read from ``trials``."""
    race = spec.race
    per_config: dict[str, list[Mapping[str, Any]]] = {}
    for row in trials.to_dict("records"):
        per_config.setdefault(config_id(params_of(row)), []).append(row)
    configs = []
    for cid, params in state.configs.items():
        rows = per_config.get(cid, [])
        values = [float(r[metric]) for r in rows if r["status"] == "ok" and math.isfinite(float(r[metric]))]
        seconds = [float(r["seconds"]) for r in rows if math.isfinite(float(r["seconds"]))]
        out = state.eliminated.get(cid)
        configs.append(RaceConfig(
            config_id=cid, params={k: params[k] for k in keys if k in params}, seeds=len(rows),
            eliminated_after=out.round if out else None,
            p_value=None if out is None or not math.isfinite(out.p_value) else out.p_value,
            reason=out.reason if out else "", mean=sum(values) / len(values) if values else math.nan,
            seconds=sum(seconds)))
    sign = 1.0 if spec.goal == "maximize" else -1.0

    def order(c: RaceConfig) -> tuple:
        return (c.eliminated_after is not None, -(c.eliminated_after or 0),
                -sign * c.mean if math.isfinite(c.mean) else math.inf, c.label())

    per_trial = state.seconds_run / state.trials_run if state.trials_run else math.nan
    full = state.full_trials(race.max)
    configs.sort(key=order)
    return RaceSummary(
        test=race.test, alpha=race.alpha, level=state.level, first=race.first, max=race.max, done=state.done,
        why=state.why, configs=tuple(configs),
        rounds=tuple((r.seeds, len(r.alive), r.p_value, r.eliminated) for r in state.rounds),
        trials_run=state.trials_run, full_trials=full, seconds_run=state.seconds_run,
        full_seconds=per_trial * full if math.isfinite(per_trial) else math.nan,
        most_trials=state.most_trials(race), most_seeds=state.most_seeds(race),
        parting=_parting(state, configs) if state.done else None, unit=metric_unit(metric))


def _parting(state: RaceState, configs: list[RaceConfig]) -> tuple[float, int, int | None] | None:
    """:attr:`RaceSummary.parting` of a race over with several left (``configs`` best first)."""
    alive = [c.config_id for c in configs if c.eliminated_after is None]
    if len(alive) < 2:
        return None
    diffs = state.paired(alive[0], alive[1])  # signed: ahead is positive, whatever the goal
    return (sum(diffs) / len(diffs), len(diffs), state.seeds_to_part(diffs)) if diffs else None
