"""The records handed from one stage to the next, each defined once for writer and reader.

- :class:`TrialReport`: what a running trial reports to Ray Tune (worker -> driver), once
  per scored epoch and once more when it ends without one (a config error, a divergence).
  The trainable writes ``report.to_dict()``; the driver reads ``TrialReport.from_result``.
- :class:`TrialRow` and :class:`EpochRow`: a finished trial and its epochs as the ledger keeps
  them (driver -> ledger -> report). :data:`TRIAL_SCHEMA` and :data:`EPOCH_SCHEMA` are their
  columns, in order, with types; the ledger's files and frames are built from them.

Metric names come from the registry (:data:`model.metrics.VAL_METRICS`); parameter names
from :data:`model.params.PARAMETER_NAMES`; a parameter's column is :func:`param_column`.
No pandas, pyarrow, Ray or TensorFlow here: the trainable imports this in every worker.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Mapping

from model.metrics import VAL_METRICS
from model.params import PARAMETER_NAMES, TrainParams

__all__ = [
    "Column",
    "EPOCH_SCHEMA",
    "Elimination",
    "RACE_SCHEMA",
    "EpochRow",
    "PARAM_PREFIX",
    "Placement",
    "STATUSES",
    "TRIAL_SCHEMA",
    "TrialReport",
    "TrialRow",
    "param_column",
    "params_of",
    "plain",
]

STATUSES = ("ok", "error", "diverged")
"""How a trial ended: trained to the end, raised (after its retries), or its loss went NaN/inf."""

PARAM_PREFIX = "params_"
# pandas' missing-value scalars, recognised by type name so this module need not import pandas.
_NA_TYPES = ("NAType", "NaTType")


def param_column(name: str) -> str:
    """The ledger column of parameter ``name``: ``params_<name>`` (Optuna's spelling)."""
    return PARAM_PREFIX + name


def params_of(columns: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters in a flat ledger row (``params_*`` columns), as plain Python values,
    leaving out those the row does not know (null)."""
    out = {}
    for column, value in columns.items():
        if column.startswith(PARAM_PREFIX) and (value := plain(value)) is not None:
            out[column.removeprefix(PARAM_PREFIX)] = value
    return out


def plain(value: Any) -> Any:
    """A value from Ray, Optuna, numpy or pandas as the plain Python value it stands for.

    numpy scalars become ``int``/``float``/``bool``/``str`` (so they hash, compare and serialise
    like the numbers they equal; ``json`` would fall back to ``repr()``, which differs across
    numpy versions); NaN and pandas' NA become ``None``. Anything else is returned as it is.
    """
    if value is None or isinstance(value, bool):
        return value
    if type(value).__name__ in _NA_TYPES:
        return None
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()  # numpy scalar (including numpy.bool_) -> Python
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return None if math.isnan(number) else number
    if isinstance(value, str):
        return str(value)
    return value


# ---------------------------------------------------------------------------------------------
# Columns


def _whole(value: Any) -> int:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError(f"expected a whole number, got {value!r}")


@dataclass(frozen=True)
class Column:
    """One ledger column: its Python type and whether a row may leave it unknown (null).

    Parameter columns are nullable: a parameter a row does not carry is unknown, not a default.
    Other columns take a neutral value when missing: NaN, 0 or ``""``.
    """

    kind: type  # str, float or int
    nullable: bool = False

    def coerce(self, value: Any) -> Any:
        """``value`` as this column stores it.

        Raises:
            ValueError: a value that is not of the column's kind (e.g. 4.5 for a whole number).
        """
        value = plain(value)
        if value is None:
            return None if self.nullable else {str: "", float: math.nan, int: 0}[self.kind]
        if self.kind is int:
            return _whole(value)
        if self.kind is float:
            return float(value)
        return str(value)


_FLOAT = Column(float)
_PARAM_TYPES = {f.name: type(f.default) for f in dataclasses.fields(TrainParams)}
_PARAM_SCHEMA = {param_column(name): Column(_PARAM_TYPES[name], nullable=True) for name in PARAMETER_NAMES}

TRIAL_SCHEMA: dict[str, Column] = {
    "trial_id": Column(str),
    **_PARAM_SCHEMA,
    "status": Column(str),
    **{metric: Column(float) for metric in VAL_METRICS},  # the best epoch's, by the spec's metric
    "best_epoch": Column(int),
    "epochs_run": Column(int),
    "seconds": Column(float),
    "images_per_second": Column(float),
    "accelerator": Column(str),
    "gpu_ids": Column(str),
    "node": Column(str),
    # Nullable: ledgers from before precision: auto lack it (their trials ran their params_precision).
    "dtype_policy": Column(str, nullable=True),
    "attempts": Column(int),
    "error": Column(str),
    "finished_at": Column(str),
}
"""The ledger's ``trials`` columns, in order: one row per finished trial."""

EPOCH_SCHEMA: dict[str, Column] = {
    "trial_id": Column(str),
    "epoch": Column(int),
    "train_loss": Column(float),
    **{metric: Column(float) for metric in VAL_METRICS},
}
"""The ledger's ``epochs`` columns, in order: one row per scored epoch of a finished trial."""

RACE_SCHEMA: dict[str, Column] = {
    "config_id": Column(str),
    "round": Column(int),
    "p_value": Column(float),
    "best_config_id": Column(str),
    "test": Column(str),
    "reason": Column(str),
}
"""The ledger's ``race`` columns: one row per configuration a race eliminated (never deleted)."""


def _coerce(columns: Mapping[str, Any], schema: Mapping[str, Column], what: str) -> dict[str, Any]:
    """Every column of ``schema`` from ``columns``, coerced; unknown columns are refused."""
    unknown = sorted(set(columns) - set(schema))
    if unknown:
        raise ValueError(f"{what}: unknown columns {unknown}; valid: {', '.join(schema)}")
    out: dict[str, Any] = {}
    for name, column in schema.items():
        try:
            out[name] = column.coerce(columns.get(name))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{what}: column {name}: {err}") from None
    return out


def _metrics(source: Mapping[str, Any]) -> dict[str, float]:
    return {metric: source.get(metric, math.nan) for metric in VAL_METRICS}


# ---------------------------------------------------------------------------------------------
# Ledger rows


@dataclass(frozen=True)
class Placement:
    """Where a trial ran: reported by the worker, kept in the ledger.

    Attributes:
        accelerator: ``"cpu"``, or the GPU type the trial was pinned to (e.g. ``"T4"``; ``"GPU"``
            when the spec names no type).
        gpu_ids: The GPU ids Ray assigned, comma-separated.
        node: The Ray node id.
        dtype_policy: The Keras dtype policy the trial trained under (what ``precision: auto``
            became on that node).
    """

    accelerator: str = ""
    gpu_ids: str = ""
    node: str = ""
    dtype_policy: str = ""

    def to_dict(self) -> dict[str, str | None]:
        """The fields as flat columns (an unknown dtype policy as ``None``: its column is nullable)."""
        return {**dataclasses.asdict(self), "dtype_policy": self.dtype_policy or None}

    @classmethod
    def from_columns(cls, columns: Mapping[str, Any]) -> "Placement":
        """The placement in a flat mapping (a ledger row, a Tune result); missing fields are empty."""
        return cls(**{f.name: str(plain(columns[f.name])) for f in dataclasses.fields(cls)
                      if plain(columns.get(f.name)) is not None})


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
        clean = _coerce(self._flat(), TRIAL_SCHEMA, "ledger row")
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
        unknown = sorted(set(columns) - set(TRIAL_SCHEMA))
        if unknown:
            raise ValueError(f"ledger row: unknown columns {unknown}; valid: {', '.join(TRIAL_SCHEMA)}")
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

    def __post_init__(self) -> None:
        clean = _coerce({"trial_id": self.trial_id, "epoch": self.epoch, "train_loss": self.train_loss,
                         **self.metrics}, EPOCH_SCHEMA, "epoch row")
        object.__setattr__(self, "trial_id", clean["trial_id"])
        object.__setattr__(self, "epoch", clean["epoch"])
        object.__setattr__(self, "train_loss", clean["train_loss"])
        object.__setattr__(self, "metrics", {metric: clean[metric] for metric in VAL_METRICS})

    def columns(self) -> dict[str, Any]:
        """The row as :data:`EPOCH_SCHEMA` columns, in order."""
        return {"trial_id": self.trial_id, "epoch": self.epoch, "train_loss": self.train_loss, **self.metrics}

    @classmethod
    def from_columns(cls, columns: Mapping[str, Any]) -> "EpochRow":
        """An epoch row from flat columns.

        Raises:
            ValueError: unknown columns, or as for construction.
        """
        unknown = sorted(set(columns) - set(EPOCH_SCHEMA))
        if unknown:
            raise ValueError(f"epoch row: unknown columns {unknown}; valid: {', '.join(EPOCH_SCHEMA)}")
        return cls(epoch=columns.get("epoch"), trial_id=columns.get("trial_id", ""),
                   train_loss=columns.get("train_loss", math.nan),
                   metrics={k: v for k, v in columns.items() if k in VAL_METRICS})


# ---------------------------------------------------------------------------------------------
# Reports


@dataclass(frozen=True)
class TrialReport:
    """One report of a running trial to Ray Tune.

    A scored epoch has ``status="ok"`` and its metrics. A trial that ends without a scored epoch
    (``"error"``: a configuration error that fails the same way on every attempt;
    ``"diverged"``: a non-finite loss) reports once more with that status, its message and NaN
    metrics: Tune requires the metric in every report, and NaN is never mistaken for a score.

    Attributes:
        metrics: :data:`~model.metrics.VAL_METRICS` -> value.
        placement: Where the trial runs.
    """

    trial_id: str
    epoch: int
    status: str = "ok"
    error: str = ""
    train_loss: float = math.nan
    metrics: Mapping[str, float] = field(default_factory=dict)
    images_per_second: float = math.nan
    placement: Placement = field(default_factory=Placement)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"trial report: status {self.status!r} is not one of {', '.join(STATUSES)}")
        unknown = sorted(set(self.metrics) - set(VAL_METRICS))
        if unknown:
            raise ValueError(f"trial report: unknown metrics {unknown}; valid: {', '.join(VAL_METRICS)}")
        object.__setattr__(self, "metrics", {m: _FLOAT.coerce(v) for m, v in _metrics(self.metrics).items()})

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
            **self.placement.to_dict(),
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


# ---------------------------------------------------------------------------------------------
# Races


@dataclass(frozen=True)
class Elimination:
    """A configuration a race stopped running, and why (the ledger's ``race`` table).

    Attributes:
        config_id: The configuration (:func:`sweeper.space.config_id`).
        round: How many seeds the configurations had when the test eliminated it.
        p_value: The p-value of its comparison with the best (NaN when a trial failed).
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
        clean = _coerce(dataclasses.asdict(self), RACE_SCHEMA, "race row")
        for name, value in clean.items():
            object.__setattr__(self, name, value)

    def columns(self) -> dict[str, Any]:
        """The row as :data:`RACE_SCHEMA` columns."""
        return dataclasses.asdict(self)

