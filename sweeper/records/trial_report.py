"""What a running trial reports to Ray Tune (worker -> driver): :class:`TrialReport`.

The trainable writes ``report.to_dict()`` once per scored epoch, and once more when the trial
ends without one (a config error, a divergence); the driver reads ``TrialReport.from_result``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from model.metrics import VAL_METRICS
from sweeper.records.columns import STATUSES, Column
from sweeper.records.placement import Placement

__all__ = ["TrialReport"]

_FLOAT = Column(float)


@dataclass(frozen=True)
class TrialReport:
    """One report of a running trial to Ray Tune.

    A scored epoch has ``status="ok"`` and its metrics. A trial that ends without a scored epoch
    (``"error"``: a configuration error that fails the same way on every attempt;
    ``"diverged"``: a non-finite loss) reports once more with that status, its message and NaN
    metrics: Tune requires the metric in every report, and NaN is never mistaken for a score.

    Attributes:
        metrics: :data:`~model.metrics.VAL_METRICS` -> value.
        seconds: The trial's training wall time up to this epoch, as the trainer measured it,
            attempts a checkpoint carried over included (Tune's ``time_total_s`` counts only
            the last attempt); NaN in a report that is not a scored epoch.
        placement: Where the trial runs.
    """

    trial_id: str
    epoch: int
    status: str = "ok"
    error: str = ""
    train_loss: float = math.nan
    metrics: Mapping[str, float] = field(default_factory=dict)
    images_per_second: float = math.nan
    seconds: float = math.nan
    placement: Placement = field(default_factory=Placement)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"trial report: status {self.status!r} is not one of {', '.join(STATUSES)}")
        unknown = sorted(set(self.metrics) - set(VAL_METRICS))
        if unknown:
            raise ValueError(f"trial report: unknown metrics {unknown}; valid: {', '.join(VAL_METRICS)}")
        # Every metric present: one missing from the dict is NaN, as Tune needs each in every report.
        object.__setattr__(self, "metrics",
                           {m: _FLOAT.coerce(self.metrics.get(m, math.nan)) for m in VAL_METRICS})

    @property
    def scored(self) -> bool:
        """Whether this report is a scored epoch: every ``ok`` report is one (its metrics may
        still be NaN, when the restored images were)."""
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """The flat dict ``tune.report`` takes: the metrics at top level, where Tune's schedulers
        and searchers look them up by name."""
        return {
            "trial_id": self.trial_id, "epoch": self.epoch, "status": self.status, "error": self.error,
            "train_loss": self.train_loss, **self.metrics, "images_per_second": self.images_per_second,
            "seconds": self.seconds, **self.placement.to_dict(),
        }

    @classmethod
    def from_result(cls, result: Mapping[str, Any]) -> "TrialReport | None":
        """The report inside one of Ray Tune's results, which adds keys of its own (such as
        ``time_total_s`` and ``config``; those are left to the caller).

        Returns:
            ``None`` for a result that carries no report of ours (no ``status``).
        """
        if "status" not in result:
            return None
        known = {f.name for f in dataclasses.fields(cls)} - {"metrics", "placement"}
        given = {k: result[k] for k in known if k in result}
        return cls(**{"trial_id": "", "epoch": 0, **given, "placement": Placement.from_columns(result),
                      "metrics": {k: result[k] for k in VAL_METRICS if k in result}})
