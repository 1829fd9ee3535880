"""The report of one sweep as data: what ``sweeper report`` shows, in every format.

Built by :func:`sweeper.report.build.build_report`, turned into text by
:mod:`sweeper.report.render`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from model.metrics import VAL_METRICS
from sweeper.report.claims import Verdict
from sweeper.report.display import json_number
from sweeper.report.race import RaceSummary
from sweeper.report.ranking import ConfigResult

__all__ = ["Report"]


@dataclasses.dataclass(frozen=True)
class Report:
    """Everything ``sweeper report`` shows, computed from one read of the ledger."""

    sweep: str
    sweep_dir: Path
    metric: str
    goal: str
    recorded: int
    planned: int | None
    status_counts: dict[str, int]
    keys: tuple[str, ...]  # the parameters that define a configuration
    ranking: tuple[ConfigResult, ...]
    verdicts: tuple[Verdict, ...]
    failures: tuple[dict[str, Any], ...]
    importance: dict[str, float]
    importance_note: str
    figures: dict[str, Path]  # title -> PNG
    baseline: dict[str, Any] | None = None  # the blurred input scored as if it were the output
    race: RaceSummary | None = None  # a raced sweep's race
    emulated: int = 0  # trials whose 16-bit convolutions were computed in float32 (ledger column emulation)

    @property
    def partial(self) -> bool:
        """Fewer trials recorded than the spec plans (still running, or interrupted)."""
        return self.planned is not None and self.recorded < self.planned

    def headline(self) -> str:
        """One line: the sweep, what is recorded and whether it is complete."""
        counts = ", ".join(f"{k} {v}" for k, v in self.status_counts.items()) or "none"
        line = f"{self.sweep}: {self.recorded}" + (f"/{self.planned}" if self.planned else "") + f" trials ({counts})"
        if self.partial:
            line += (f"; PARTIAL: {self.planned - self.recorded} trials not recorded yet (the sweep is still "
                     "running or was interrupted; `sweeper run SPEC` resumes it)")
        if self.emulated:
            # Named against the recorded trials: after PARTIAL's clause "of them" read as the missing ones.
            which = (f"all {self.recorded} recorded trials" if self.emulated == self.recorded
                     else f"{self.emulated} of the {self.recorded} recorded trials")
            line += (f"; {which} ran on a CPU without native 16-bit arithmetic, their 16-bit "
                     "convolutions computed in float32 and rounded once (the ledger's emulation column)")
        return line

    def to_dict(self) -> dict[str, Any]:
        """The JSON document: ``{"ranking": [...], "verdict": {...}, ...}``."""
        return {
            "sweep": self.sweep, "metric": self.metric, "goal": self.goal, "recorded": self.recorded,
            "planned": self.planned, "partial": self.partial, "status_counts": self.status_counts,
            "config_params": list(self.keys),
            "ranking": [
                {"rank": c.rank, "params": c.params, "n": c.n, "seconds": json_number(c.seconds),
                 "statuses": c.statuses, "trial_ids": list(c.trial_ids),
                 **{m: c.metrics[m].to_dict() for m in VAL_METRICS}}
                for c in self.ranking
            ],
            "verdict": {v.claim.key: v.to_dict() for v in self.verdicts},
            "failures": list(self.failures),
            "importance": self.importance,
            "importance_note": self.importance_note,
            "figures": {k: p.name for k, p in self.figures.items()},
            "baseline": self.baseline,
            "race": self.race.to_dict() if self.race else None,
            "emulated": self.emulated,
        }
