"""A ledger's committed form: ``trials.csv`` and ``epochs.csv`` (and ``race.csv`` for a race),
read back with the ledger's dtypes. :meth:`~sweeper.ledger.store.Ledger.export_csv` writes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from sweeper.ledger.tables import LedgerError, added_later, arrow_table, pandas_dtype, to_pandas
from sweeper.records import EPOCH_SCHEMA, TRIAL_SCHEMA, Column

__all__ = ["CSV_NAMES", "RACE_CSV", "read_csv_export", "read_csv_table"]

CSV_NAMES = ("trials.csv", "epochs.csv")  # the committed form of a ledger
RACE_CSV = "race.csv"  # and of a race's eliminations, when the sweep was raced


def read_csv_export(directory: str | Path) -> tuple[Any, Any]:
    """Trials and epochs from a CSV export (see :meth:`~sweeper.ledger.store.Ledger.export_csv`),
    typed like the ledger.

    A missing ``epochs.csv`` reads as no epochs.

    Raises:
        LedgerError: ``trials.csv`` is missing or is not a ledger export.
    """
    folder = Path(directory)
    return (read_csv_table(folder / CSV_NAMES[0], TRIAL_SCHEMA, required=True),
            read_csv_table(folder / CSV_NAMES[1], EPOCH_SCHEMA, required=False))


def read_csv_table(path: Path, columns: Mapping[str, Column], *, required: bool) -> Any:
    """One table of a CSV export with the ledger's dtypes; a missing optional one is empty.

    Raises:
        LedgerError: a required file is missing, or the file is not a ledger export.
    """
    import pandas as pd

    if not path.is_file() and not required:
        return to_pandas(arrow_table([], columns), columns)
    try:
        # CSV writes "" and a null alike: a blank is "" in text columns (error, node) but
        # a missing value in parameter and number columns, as in the ledger.
        blank_is_text = [c for c, col in columns.items() if col.kind is str and not col.nullable]
        frame = pd.read_csv(path, dtype={c: "str" for c, col in columns.items() if col.kind is str},
                            keep_default_na=False,
                            na_values={c: [""] for c in columns if c not in blank_is_text})
        for name in added_later(columns, frame.columns):
            frame[name] = None
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"missing columns {', '.join(missing)}")
        return frame[list(columns)].astype({c: pandas_dtype(col) for c, col in columns.items()})
    except FileNotFoundError:
        raise LedgerError(f"{path}: no such ledger export") from None
    except (ValueError, TypeError, pd.errors.ParserError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise LedgerError(f"{path} is not a sweeper ledger export ({reason})") from None
