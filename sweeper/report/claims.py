"""The write-up's findings (:data:`CLAIMS`) checked against a sweep's ranking.

A claim names the configuration it says is best. :func:`judge` compares that configuration
with every other one by the Welch interval of the gap in the report metric: it is
``reproduced`` only when it beats each of them beyond the seed noise, ``not reproduced`` when
the winner beats it beyond the noise, and ``inconclusive`` in between. A sweep that does not
vary the claim's parameters, or has nothing to compare with, leaves it ``not tested``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from model.metrics import metric_unit
from sweeper.race import RaceState
from sweeper.records import counted, label
from sweeper.report.race import RaceConfig, RaceSummary, summarise_race
from sweeper.report.ranking import ConfigResult
from sweeper.report.stats import Interval, difference_interval
from sweeper.space import config_keys
from sweeper.spec import SweepSpec

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CLAIMS", "Claim", "OUTCOMES", "Verdict", "claimed_config", "judge", "judge_race", "race_verdicts"]

OUTCOMES = ("reproduced", "not reproduced", "inconclusive", "not tested")


@dataclasses.dataclass(frozen=True)
class Claim:
    """A finding of the write-up: the configuration ``params`` is the best one."""

    key: str
    text: str
    params: Mapping[str, Any]


CLAIMS: tuple[Claim, ...] = (
    Claim("rmsprop_mae", "RMSprop + MAE is the best optimizer x loss pair", {"optimizer": "rmsprop", "loss": "mae"}),
    Claim("lr_rho", "learning rate 0.001 with rho 0.9 is RMSprop's best setting", {"learning_rate": 0.001, "rho": 0.9}),
)


@dataclasses.dataclass(frozen=True)
class Verdict:
    """How a claim fares in this sweep.

    ``difference`` is the claim's configuration minus ``compared_with`` (the best other
    configuration; the runner-up when the claim's configuration ranks first), in metric units.
    """

    claim: Claim
    outcome: str
    reason: str
    rank: int | None = None
    of: int = 0
    compared_with: dict[str, Any] | None = None
    difference: Interval | None = None
    seeds_needed: int | None = None  # raced and undecided: seeds a decision would take (None: unknown)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "claim": self.claim.text, "params": dict(self.claim.params), "outcome": self.outcome,
            "reason": self.reason, "rank": self.rank, "of": self.of, "compared_with": self.compared_with,
            "difference": self.difference.to_dict() if self.difference else None,
            "seeds_needed": self.seeds_needed,
        }


def _same(a: Any, b: Any) -> bool:
    # 0.001 read back from a ledger may differ from the claim's 0.001 in its last bit.
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
    return a == b


def _fmt_gap(d: Interval, metric: str) -> str:
    text = f"{abs(d.mean):.3g}{metric_unit(metric)}"
    if d.known:
        text += f" (95% CI of the difference {d.low:+.3g} to {d.high:+.3g})"
    else:
        text += " (no interval: fewer than two ok seeds on a side)"
    return text


def judge(claim: Claim, ranking: Sequence[ConfigResult], keys: Sequence[str], metric: str, goal: str) -> Verdict:
    """The verdict on ``claim`` from a sweep's ``ranking``.

    Args:
        claim: The finding to check.
        ranking: The sweep's configurations, best first (see :func:`~sweeper.report.ranking.rank_configs`).
        keys: The parameters that define a configuration.
        metric: The ranking metric.
        goal: ``maximize`` or ``minimize``.

    Returns:
        The :class:`Verdict`, its outcome one of :data:`OUTCOMES`.
    """
    shown = label(claim.params)
    if not _varies(claim, keys):
        return Verdict(claim, "not tested", _unvaried(claim, "sweep"))
    mine = [c for c in ranking if all(_same(c.fixed.get(k), v) for k, v in claim.params.items())]
    if not mine:
        return Verdict(claim, "not tested", f"no configuration with {shown} is recorded in this sweep")
    scored = [c for c in ranking if c.n > 0]
    claim_cfg = mine[0]  # ranking order: the best of the claim's configurations
    others = [c for c in scored if c not in mine]
    if not others:
        return Verdict(claim, "not tested", f"no other configuration has an ok trial to compare {shown} with",
                       rank=claim_cfg.rank, of=len(ranking))
    if claim_cfg.n == 0:
        return Verdict(claim, "not reproduced", f"no {shown} trial finished ok ({claim_cfg.statuses})",
                       rank=claim_cfg.rank, of=len(ranking), compared_with=others[0].params)
    sign = 1.0 if goal == "maximize" else -1.0
    best_other = others[0]
    gap = difference_interval(claim_cfg.values, best_other.values)
    where = f"{shown} ranks {claim_cfg.rank} of {len(ranking)} by {metric}"
    common = dict(rank=claim_cfg.rank, of=len(ranking), compared_with=best_other.params, difference=gap)
    if sign * gap.mean > 0:  # the claim's configuration leads
        gaps = [difference_interval(claim_cfg.values, c.values) for c in others]
        if all(g.known and min(sign * g.low, sign * g.high) > 0 for g in gaps):
            return Verdict(claim, "reproduced", f"{where}; it leads the runner-up {best_other.label()} by "
                           f"{_fmt_gap(gap, metric)} and beats every other configuration beyond the seed noise",
                           **common)
        return Verdict(claim, "inconclusive", f"{where}, but its lead over {best_other.label()}, "
                       f"{_fmt_gap(gap, metric)}, or over another configuration, is inside the seed noise", **common)
    if gap.known and max(sign * gap.low, sign * gap.high) < 0:
        return Verdict(claim, "not reproduced", f"{where}; the winner {best_other.label()} is better by "
                       f"{_fmt_gap(gap, metric)}, beyond the seed noise", **common)
    return Verdict(claim, "inconclusive", f"{where}, {_fmt_gap(gap, metric)} behind the winner "
                   f"{best_other.label()}: inside the seed noise", **common)


def _varies(claim: Claim, keys: Iterable[str]) -> bool:
    """Whether a sweep whose configurations differ in ``keys`` compares what ``claim`` is about:
    a parameter held at one value (the claim's or not) has no rival values to beat."""
    return any(k in claim.params for k in keys)


def _unvaried(claim: Claim, what: str) -> str:
    return f"this {what} does not vary {' or '.join(claim.params)}"


def claimed_config(claim: Claim, race: RaceSummary, state: RaceState) -> RaceConfig | None:
    """The configuration of the race that ``claim`` names (``None``: the race has none, or does
    not vary the claim's parameters)."""
    if not _varies(claim, (k for c in race.configs for k in c.params)):
        return None
    return next((c for c in race.configs
                 if all(_same(state.configs[c.config_id].get(k), v) for k, v in claim.params.items())), None)


def judge_race(claim: Claim, race: RaceSummary, state: RaceState, metric: str) -> Verdict:
    """The verdict on ``claim`` from a race, which compared every configuration with every other
    at the race's error rate (``alpha`` over all its looks).

    ``reproduced`` when the race left the claim's configuration alone, every rival eliminated
    behind it; ``not reproduced`` when it eliminated the claim's configuration (a rival was
    better beyond the noise, or its trials failed); ``inconclusive`` when the race ended (at its
    maximum seeds or its budget) or is still running with the claim's configuration and
    rivals in it: then ``seeds_needed`` estimates, from the observed paired differences, the
    seeds a one-sided paired t test at the race's per-look level would need to separate it
    from its closest rival with 80% power.
    """
    shown = label(claim.params)
    claim_cfg = claimed_config(claim, race, state)
    if claim_cfg is None:
        varied = {k for c in race.configs for k in c.params}
        return Verdict(claim, "not tested", f"no configuration with {shown} is in this race"
                       if _varies(claim, varied) else _unvaried(claim, "race"))
    rank = race.configs.index(claim_cfg) + 1
    common: dict[str, Any] = dict(rank=rank, of=len(race.configs))
    if claim_cfg.eliminated_after is not None:
        out = state.eliminated[claim_cfg.config_id]
        winner = next((c for c in race.configs if c.config_id == out.best_config_id), None)
        return Verdict(claim, "not reproduced", f"the race eliminated {shown} after {out.round} seeds: {out.reason}"
                       + (f" (best then: {winner.label()})" if winner else ""),
                       compared_with=winner.params if winner else None, **common)
    rivals = [c for c in race.alive if c is not claim_cfg]
    if not rivals:
        last = max((c for c in race.configs if c.eliminated_after is not None),
                   key=lambda c: c.eliminated_after or 0, default=None)
        tail = f"; the last rival, {last.label()}, left after {last.eliminated_after} seeds" if last else ""
        return Verdict(claim, "reproduced", f"{shown} is the one configuration the race left: it eliminated every "
                       f"rival beyond the noise (alpha {race.alpha:g} over the whole race){tail}",
                       compared_with=last.params if last else None, **common)
    if not state.rounds:  # mid-way through the first round: nothing compared yet
        return Verdict(claim, "inconclusive",
                       f"the race is still running with {shown} and {counted(len(rivals), 'rival')} in it; no look yet: "
                       f"the first comes once every configuration has run {race.first} seeds "
                       f"({counted(len(state.pending), 'trial')} of that round to go)", **common)
    closest = rivals[0]  # alive configurations come best first: the leader, or the runner-up
    role = "the runner-up" if race.configs.index(closest) > race.configs.index(claim_cfg) else "the leader"
    diffs = state.paired(claim_cfg.config_id, closest.config_id)
    needed = state.seeds_to_part(diffs)
    mean = sum(diffs) / len(diffs) if diffs else math.nan
    where = f"the race ended ({race.why})" if race.done else "the race is still running"
    # Mid-round the verdict is the last look's; a round adds one seed (they count from 0), so
    # a claim ahead of the look has that round's seed recorded, waiting for the next look.
    waiting = (f" (its seed {state.seeds} is recorded since: it counts at the next look)"
               if claim_cfg.seeds > state.seeds and not race.done else "")
    why = (f"a decision would need about {needed} seeds (80% power at the per-look level, from the paired "
           "differences seen)" if needed else "at the difference seen, no number of seeds would decide it")
    return Verdict(claim, "inconclusive",
                   f"{where} with {shown} and {counted(len(rivals), 'rival')} still in it at its look after {state.seeds} "
                   f"seeds{waiting}; {role}, {closest.label()}: {shown} is {abs(mean):.3g}"
                   f"{metric_unit(metric)} {'behind' if mean < 0 else 'ahead of'} it on average over {len(diffs)} shared "
                   f"seeds; {why}",
                   compared_with=closest.params, seeds_needed=needed, **common)


def race_verdicts(spec: SweepSpec, state: RaceState, trials: "pd.DataFrame",
                  metric: str) -> tuple[RaceSummary, tuple[Verdict, ...]]:
    """A raced sweep's summary and its verdict on each of :data:`CLAIMS`, as the report,
    ``sweeper status`` and the race's W&B runs all give them."""
    race = summarise_race(spec, state, trials, config_keys(spec, trials), metric)
    return race, tuple(judge_race(claim, race, state, metric) for claim in CLAIMS)
