"""The ledger's rows (driver -> ledger -> report), each typed and checked at construction.

:class:`TrialRow` is a finished trial, :class:`EpochRow` one of its scored epochs and
:class:`Elimination` a configuration a race stopped running; each turns into the columns of
its table (:mod:`sweeper.records.columns`) and back.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from model.metrics import VAL_METRICS
from model.params import PARAMETER_NAMES
from sweeper.records.columns import (EPOCH_SCHEMA, PARAM_PREFIX, RACE_SCHEMA, STATUSES, TRIAL_SCHEMA, coerce_columns,
                                     param_column, params_of, refuse_unknown, shown_apart)
from sweeper.records.placement import Placement

__all__ = ["Elimination", "EpochRow", "TrialRow"]


@dataclass(frozen=True)
class TrialRow:
    """One finished trial as the ledger records it; validated and typed at construction.

    Attributes:
        params: parameter name -> value (every parameter of the trial; others are unknown).
        metrics: :data:`~model.metrics.VAL_METRICS` -> the best epoch's value (NaN if none).
        finished_at: ISO time in UTC; now, when not given.

    Raises:
        ValueError: no trial id, an unknown status, parameter or metric, or a mistyped value.
    """

    trial_id: str
    status: str
    params: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    best_epoch: int = 0
    epochs_run: int = 0
    seconds: float = math.nan
    images_per_second: float = math.nan
    placement: Placement = field(default_factory=Placement)
    attempts: int = 0
    error: str = ""
    finished_at: str = ""

    def __post_init__(self) -> None:
        if not self.trial_id:
            raise ValueError("ledger row: trial_id is missing")
        if self.status not in STATUSES:
            raise ValueError(f"ledger row: status {self.status!r} is not one of {', '.join(STATUSES)}")
        unknown = [param_column(k) for k in self.params if k not in PARAMETER_NAMES]
        unknown += [k for k in self.metrics if k not in VAL_METRICS]
        if unknown:
            raise ValueError(f"ledger row: unknown columns {sorted(unknown)}; valid: {', '.join(TRIAL_SCHEMA)}")
        clean = coerce_columns(self._flat(), TRIAL_SCHEMA, "ledger row")
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, clean.get(f.name))
        object.__setattr__(self, "params", params_of(clean))
        object.__setattr__(self, "metrics", {metric: clean[metric] for metric in VAL_METRICS})
        object.__setattr__(self, "placement", Placement.from_columns(clean))
        if not self.finished_at:
            object.__setattr__(self, "finished_at",
                               _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    def _flat(self) -> dict[str, Any]:
        nested = ("params", "metrics", "placement")
        fixed = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in nested}
        return {**fixed, **{param_column(k): v for k, v in self.params.items()}, **self.metrics,
                **self.placement.to_dict()}

    def columns(self) -> dict[str, Any]:
        """The row as :data:`TRIAL_SCHEMA` columns, in order (unknown parameters as ``None``)."""
        flat = self._flat()
        return {name: flat.get(name) for name in TRIAL_SCHEMA}

    @classmethod
    def from_columns(cls, columns: Mapping[str, Any]) -> "TrialRow":
        """A row from flat columns (``trial_id``, ``params_*``, ``val_*``, ...), as a ledger
        frame or a CSV export has them; missing columns take their neutral value.

        Raises:
            ValueError: as for construction, plus columns the ledger does not have.
        """
        refuse_unknown(columns, TRIAL_SCHEMA, "ledger row")
        placement = Placement.from_columns(columns)
        given = {k: v for k, v in columns.items()
                 if not k.startswith(PARAM_PREFIX) and k not in VAL_METRICS and k not in placement.to_dict()}
        return cls(
            trial_id=given.pop("trial_id", ""), status=given.pop("status", None),
            params={k.removeprefix(PARAM_PREFIX): v for k, v in columns.items() if k.startswith(PARAM_PREFIX)},
            metrics={k: v for k, v in columns.items() if k in VAL_METRICS}, placement=placement, **given,
        )


@dataclass(frozen=True)
class EpochRow:
    """One scored epoch of a trial; ``trial_id`` may be left empty: the ledger fills in its row's.

    Raises:
        ValueError: an unknown metric or a mistyped value.
    """

    epoch: int
    trial_id: str = ""
    train_loss: float = math.nan
    metrics: Mapping[str, float] = field(default_factory=dict)
    seconds: float | None = None  # the trial's wall time up to this epoch; None: not known

    def __post_init__(self) -> None:
        clean = coerce_columns({"trial_id": self.trial_id, "epoch": self.epoch, "train_loss": self.train_loss,
                                **self.metrics, "seconds": self.seconds}, EPOCH_SCHEMA, "epoch row")
        object.__setattr__(self, "trial_id", clean["trial_id"])
        object.__setattr__(self, "epoch", clean["epoch"])
        object.__setattr__(self, "train_loss", clean["train_loss"])
        object.__setattr__(self, "metrics", {metric: clean[metric] for metric in VAL_METRICS})
        object.__setattr__(self, "seconds", clean["seconds"])

    def columns(self) -> dict[str, Any]:
        """The row as :data:`EPOCH_SCHEMA` columns, in order."""
        return {"trial_id": self.trial_id, "epoch": self.epoch, "train_loss": self.train_loss, **self.metrics,
                "seconds": self.seconds}

    @classmethod
    def from_columns(cls, columns: Mapping[str, Any]) -> "EpochRow":
        """An epoch row from flat columns.

        Raises:
            ValueError: unknown columns, or as for construction.
        """
        refuse_unknown(columns, EPOCH_SCHEMA, "epoch row")
        return cls(epoch=columns.get("epoch"), trial_id=columns.get("trial_id", ""),
                   train_loss=columns.get("train_loss", math.nan),
                   metrics={k: v for k, v in columns.items() if k in VAL_METRICS}, seconds=columns.get("seconds"))


@dataclass(frozen=True)
class Elimination:
    """A configuration a race stopped running, and why (the ledger's ``race`` table); or,
    with an empty ``config_id``, a look that eliminated none (:meth:`none_at`), recorded so
    that no later replay re-decides it.

    Attributes:
        config_id: The configuration (:func:`sweeper.space.config_id`); ``""`` for a look
            that eliminated nothing.
        round: How many seeds the configurations had when the test eliminated it.
        p_value: The p-value of its comparison with the best (NaN when a trial failed); a
            look's omnibus p-value on a row of a look that eliminated nothing.
        best_config_id: The best configuration at that test (``""`` when a trial failed).
        test: ``friedman``, ``ttest-holm``, or ``failed`` (one of its trials did not finish ok).
        reason: One line for people.
    """

    config_id: str
    round: int
    p_value: float = math.nan
    best_config_id: str = ""
    test: str = ""
    reason: str = ""

    def __post_init__(self) -> None:
        clean = coerce_columns(dataclasses.asdict(self), RACE_SCHEMA, "race row")
        for name, value in clean.items():
            object.__setattr__(self, name, value)

    @classmethod
    def none_at(cls, seeds: int, p_value: float | None, best_config_id: str, test: str, level: float,
                ) -> "Elimination":
        """The row of a look after ``seeds`` seeds that eliminated no configuration."""
        shown = "no test" if p_value is None else "{}: omnibus p={}, level {}".format(test, *shown_apart(p_value, level))
        return cls("", seeds, math.nan if p_value is None else p_value, best_config_id, test,
                   reason=f"nothing eliminated after {seeds} seeds ({shown})")

    @property
    def eliminates(self) -> bool:
        """Whether the row eliminates a configuration (else it records a look that eliminated none)."""
        return self.config_id != ""

    @property
    def key(self) -> tuple[str, int]:
        """What makes the row one of its own in the race table: an elimination's configuration
        (a race eliminates a configuration once), a look's round (each look is recorded once)."""
        return (self.config_id, -1) if self.eliminates else ("", self.round)

    def columns(self) -> dict[str, Any]:
        """The row as :data:`RACE_SCHEMA` columns."""
        return dataclasses.asdict(self)
