"""What a sweep will run, decided before anything starts: no Ray, nothing written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection

from sweeper.space import Trial, expand, pending, trial_count
from sweeper.spec import SweepSpec

__all__ = ["SweepPlan", "plan"]


@dataclass(frozen=True)
class SweepPlan:
    """The trials of a sweep against what its ledger holds.

    A grid or random sweep lists its trials up front; a bayes sweep's are proposed by Optuna
    while it runs, so only their number is known (``proposed``). Which of the two a plan is,
    and how many trials it runs, follow from that, so they cannot disagree.

    Attributes:
        trials: Every listed trial, in the sweep's order (empty when searched).
        todo: The listed trials the ledger lacks, in the same order.
        proposed: How many trials a searcher proposes at run time; ``None`` when listed.
    """

    trials: tuple[Trial, ...]
    todo: tuple[Trial, ...]
    proposed: int | None = None

    @property
    def searched(self) -> bool:
        """Trials are proposed at run time by a searcher, not listed."""
        return self.proposed is not None

    @property
    def planned(self) -> int:
        """How many trials the sweep runs in all."""
        return len(self.trials) if self.proposed is None else self.proposed

    def remaining(self, done: Collection[str]) -> int:
        """Planned trials not in ``done`` (the ids recorded so far): what is still to run."""
        if self.searched:
            return max(0, self.planned - len(done))
        return sum(t.id not in done for t in self.trials)


def plan(spec: SweepSpec, done: Collection[str]) -> SweepPlan:
    """List a sweep's trials (grid, random) or count them (bayes), against the recorded ids."""
    if spec.method == "bayes":
        return SweepPlan(trials=(), todo=(), proposed=trial_count(spec))
    trials = tuple(expand(spec))
    return SweepPlan(trials=trials, todo=tuple(pending(trials, set(done))))
