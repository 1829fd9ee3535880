"""The ledger's columns: their names, their types, and the plain values they hold.

:data:`TRIAL_SCHEMA`, :data:`EPOCH_SCHEMA` and :data:`RACE_SCHEMA` list each table's columns in
order, with types; the ledger's files and frames are built from them, and every row record
(:mod:`sweeper.records.rows`) is checked against them by :func:`coerce_columns`. Metric names
come from the registry (:data:`model.metrics.VAL_METRICS`); parameter names from
:data:`model.params.PARAMETER_NAMES`; a parameter's column is :func:`param_column`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from model.metrics import VAL_METRICS
from model.params import PARAMETER_NAMES, TrainParams

__all__ = [
    "Column",
    "EPOCH_SCHEMA",
    "PARAM_PREFIX",
    "RACE_SCHEMA",
    "STATUSES",
    "TRIAL_SCHEMA",
    "coerce_columns",
    "counted",
    "label",
    "refuse_unknown",
    "param_column",
    "params_of",
    "plain",
    "show",
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


def show(value: Any) -> str:
    """A parameter value as tables, labels and logs show it: floats in ``%g`` (``0.001``, not
    ``0.0010``) unless that would lose digits (``0.00123456789`` stays whole)."""
    if isinstance(value, float):
        short = f"{value:g}"
        # %g keeps 6 significant digits; two learning rates must never share a label.
        return short if not math.isfinite(value) or float(short) == value else repr(value)
    return str(value)


def label(params: Mapping[str, Any], keys: Iterable[str] | None = None) -> str:
    """``optimizer=adam, loss=mae``: ``keys`` of ``params`` (all of them by default), in that order."""
    return ", ".join(f"{k}={show(params[k])}" for k in (params if keys is None else keys))


def shown_apart(p: float, level: float) -> tuple[str, str]:
    """A p-value and the level it was tested at, each with the fewest significant digits (at
    least 2) that tell them apart: ``("0.0056", "0.00556")``, never ``p=0.0056, level 0.0056``
    for a p just above its level (a permutation p is often that close)."""
    for digits in range(2, 7):
        pair = f"{p:.{digits}g}", f"{level:.{digits}g}"
        if pair[0] != pair[1]:
            break
    return pair


def counted(n: int, noun: str) -> str:
    """``1 trial``, ``2 trials``: what the sweeper's lines say of a count."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


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
    # Nullable: null unless 16-bit convolutions were computed in float32 (ledgers before it: none were).
    "emulation": Column(str, nullable=True),
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
    # The trial's wall time up to this epoch, its earlier attempts included (the trainer's
    # clock; Tune's time_total_s restarts with each attempt). Nullable: ledgers before it lack it.
    "seconds": Column(float, nullable=True),
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
"""The ledger's ``race`` columns: one row per configuration a race eliminated, and one with an
empty ``config_id`` per look that eliminated none (never deleted)."""


def coerce_columns(columns: Mapping[str, Any], schema: Mapping[str, Column], what: str) -> dict[str, Any]:
    """Every column of ``schema`` from ``columns``, coerced (a missing one takes its neutral value).

    Args:
        columns: Column name -> value.
        schema: The table's columns (e.g. :data:`TRIAL_SCHEMA`).
        what: The record, for messages (``"ledger row"``).

    Raises:
        ValueError: a column ``schema`` lacks, or a value that is not of its column's kind.
    """
    refuse_unknown(columns, schema, what)
    out: dict[str, Any] = {}
    for name, column in schema.items():
        try:
            out[name] = column.coerce(columns.get(name))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{what}: column {name}: {err}") from None
    return out


def refuse_unknown(columns: Iterable[str], schema: Mapping[str, Column], what: str) -> None:
    """Refuse column names ``schema`` lacks, naming them and the valid ones.

    Raises:
        ValueError: ``<what>: unknown columns [...]; valid: ...``.
    """
    unknown = sorted(set(columns) - set(schema))
    if unknown:
        raise ValueError(f"{what}: unknown columns {unknown}; valid: {', '.join(schema)}")
