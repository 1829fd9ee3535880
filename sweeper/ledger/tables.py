"""The ledger's tables typed alike whatever their source: arrow tables with the schema's
types, pandas frames with fixed dtypes (also when empty), and the columns a ledger from
before a parameter existed lacks."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import pyarrow as pa

from model.errors import UserError
from sweeper.records import EPOCH_SCHEMA, TRIAL_SCHEMA, Column

__all__ = [
    "EPOCH_COLUMNS", "LedgerError", "TRIAL_COLUMNS", "added_later", "arrow_schema", "arrow_table", "count_statuses",
    "pandas_dtype", "to_pandas", "with_added_columns",
]

TRIAL_COLUMNS: tuple[str, ...] = tuple(TRIAL_SCHEMA)
EPOCH_COLUMNS: tuple[str, ...] = tuple(EPOCH_SCHEMA)

_ARROW = {str: pa.string(), float: pa.float64(), int: pa.int64()}


class LedgerError(UserError):
    """A ledger file cannot be read (truncated, corrupt or not a ledger)."""


def pandas_dtype(column: Column) -> str:
    """The dtype ``column`` has in every frame the ledger returns, empty or not (nullable
    ints, a parameter a row lacks, are pandas' ``Int64``)."""
    if column.kind is int:
        return "Int64" if column.nullable else "int64"
    return "str" if column.kind is str else "float64"


def arrow_schema(columns: Mapping[str, Column]) -> pa.Schema:
    """The arrow schema of a table with ``columns``, in order."""
    return pa.schema([(name, _ARROW[col.kind]) for name, col in columns.items()])


def arrow_table(rows: Sequence[Mapping[str, Any]], columns: Mapping[str, Column]) -> pa.Table:
    """Rows (mappings of column -> value) as an arrow table with the ledger's types."""
    return pa.Table.from_pylist(list(rows), schema=arrow_schema(columns))


def to_pandas(table: pa.Table, columns: Mapping[str, Column]) -> Any:
    """``table`` as a DataFrame with the ledger's dtypes."""
    # One conversion for empty and full tables, so dtypes never depend on the row count.
    frame = table.to_pandas()
    return frame.astype({name: pandas_dtype(col) for name, col in columns.items()})


def count_statuses(trials: Any) -> dict[str, int]:
    """Trials per status of a trials frame, sorted by status, e.g. ``{"diverged": 1, "ok": 7}``."""
    return {str(k): int(v) for k, v in sorted(trials["status"].value_counts().items())}


def added_later(columns: Mapping[str, Column], present: Iterable[str]) -> list[str]:
    """Nullable columns a ledger written before they existed lacks: parameters (unknown, null:
    such a trial ran with the parameter's old behaviour, which its id records), and the like
    of an epoch's ``seconds`` (not recorded then)."""
    have = set(present)
    return [name for name, col in columns.items() if col.nullable and name not in have] if "trial_id" in have else []


def with_added_columns(table: pa.Table, columns: Mapping[str, Column]) -> pa.Table:
    """``table`` with the columns :func:`added_later` names appended, all null."""
    for name in added_later(columns, table.column_names):
        kind = _ARROW[columns[name].kind]
        table = table.append_column(pa.field(name, kind), pa.nulls(len(table), kind))
    return table
