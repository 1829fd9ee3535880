"""The ledger's files in a sweep folder: ``trials.parquet``, ``epochs.parquet`` and
``race.parquet``, read and written by :class:`Ledger`.

One writer at a time (the sweep driver; a second one waits on a lock and then sees the
first one's rows), any number of readers (``sweeper status``/``report`` while it runs).
Every write replaces a whole file atomically (temp file in the same folder, fsync,
``os.replace``), so a reader or a ``kill -9`` at any moment sees the old or the new file,
never a torn one. Epochs are written before trials: ``trials.parquet`` is the commit point,
and epoch rows of a trial it does not list are ignored. No Ray, no TensorFlow here.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sweeper.folder import TMP_SUFFIX, writable, write_atomic
from sweeper.ledger.export import CSV_NAMES, RACE_CSV, read_csv_export, read_csv_table
from sweeper.ledger.tables import LedgerError, arrow_schema, arrow_table, count_statuses, to_pandas, with_added_columns
from sweeper.records import EPOCH_SCHEMA, RACE_SCHEMA, TRIAL_SCHEMA, Column, Elimination, EpochRow, TrialRow

try:  # POSIX; elsewhere writers are not serialised (the driver is the only writer anyway)
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["Ledger"]

_LOCK_NAME = ".ledger.lock"


def _signature(path: Path) -> tuple[int, int, int] | None:
    # Each write is a new inode (os.replace), so (inode, mtime, size) changes on every write.
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class Ledger:
    """The record of one sweep's finished trials.

    Args:
        sweep_dir: The sweep folder (``<results>/<name>``).
        create: Make the folder if missing (readers pass ``False`` and see an empty ledger).
    """

    def __init__(self, sweep_dir: str | Path, *, create: bool = True) -> None:
        self.sweep_dir = Path(sweep_dir)
        if create:
            try:
                self.sweep_dir.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise writable(self.sweep_dir, err) from None
        self.trials_path = self.sweep_dir / "trials.parquet"
        self.epochs_path = self.sweep_dir / "epochs.parquet"
        self.race_path = self.sweep_dir / "race.parquet"
        # The writer's cache: the tables as last written or read, the recorded ids, and the
        # files' signatures then (another writer's commit shows as a changed signature).
        self._trials: pa.Table | None = None
        self._epochs: pa.Table | None = None
        self._ids: set[str] = set()
        self._seen: tuple[Any, Any] = (None, None)

    # ------------------------------------------------------------------ reading

    def _read_table(self, path: Path, columns: Mapping[str, Column]) -> pa.Table:
        try:
            # One open, one read: pyarrow given a path may open it several times (footer,
            # then pages), and a replace in between would pair one file's footer with
            # another's pages. The bytes of a single open are always one whole file.
            data = path.read_bytes()
        except FileNotFoundError:
            return arrow_table([], columns)
        except OSError as err:
            raise LedgerError(f"{path}: cannot be read ({err.strerror or err}); check its permissions") from None
        try:
            table = pq.read_table(io.BytesIO(data), page_checksum_verification=True)
        except Exception as err:  # pyarrow raises several types for torn or foreign files
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise LedgerError(
                f"{path} is unreadable ({reason}): `sweeper run SPEC --resume` sets it aside, recovers "
                "the trials found in the sweep's ray/ folder and re-runs the rest"
            ) from None
        table = with_added_columns(table, columns)
        missing = [c for c in columns if c not in table.column_names]
        try:
            if missing:
                raise ValueError(f"missing columns {', '.join(missing)}")
            return table.select(list(columns)).cast(arrow_schema(columns))
        except (ValueError, pa.ArrowException) as err:
            reason = str(err).strip().splitlines()[0]
            raise LedgerError(
                f"{path} is not a sweeper ledger ({reason}): `sweeper run SPEC --resume` sets it aside and "
                "rebuilds the ledger from the sweep's ray/ folder"
            ) from None

    def _export_only(self) -> bool:
        """No ledger written yet, but a CSV export in the folder (a committed reference run):
        readers see the export, and the first ``sweeper run`` imports it."""
        return not self.trials_path.exists() and (self.sweep_dir / CSV_NAMES[0]).is_file()

    def _read_export(self) -> tuple[Any, Any]:
        """The folder's CSV export: trials, and the epochs of those trials only."""
        trials, epochs = read_csv_export(self.sweep_dir)
        return trials, epochs[epochs["trial_id"].isin(set(trials["trial_id"]))]

    def trials(self) -> Any:
        """All recorded trials (from the CSV export while no ledger is written, see
        :meth:`import_csv_export`).

        Returns:
            A DataFrame with :data:`TRIAL_COLUMNS` and fixed dtypes (also when empty).

        Raises:
            LedgerError: ``trials.parquet`` is truncated or corrupt.
        """
        if self._export_only():
            return read_csv_export(self.sweep_dir)[0]
        return to_pandas(self._read_table(self.trials_path, TRIAL_SCHEMA), TRIAL_SCHEMA)

    def epochs(self) -> Any:
        """Per-epoch rows of the recorded trials (rows of unrecorded trials are left out).

        Raises:
            LedgerError: a ledger file is truncated or corrupt.
        """
        if self._export_only():
            return self._read_export()[1]
        # Trials first: every trial listed then had its epochs written before it, so the
        # epochs read next hold them all (the reverse order could miss a just-committed one).
        done = self._read_table(self.trials_path, TRIAL_SCHEMA)["trial_id"]
        epochs = self._read_table(self.epochs_path, EPOCH_SCHEMA)
        return to_pandas(epochs.filter(pc.is_in(epochs["trial_id"], value_set=done.combine_chunks())), EPOCH_SCHEMA)

    def snapshot(self) -> tuple[Any, Any]:
        """Trials and the epochs of exactly those trials: one consistent view while a sweep
        writes (epochs are read second and may hold a trial committed in between).

        Raises:
            LedgerError: a ledger file is unreadable.
        """
        trials = self.trials()
        epochs = self.epochs()
        return trials, epochs[epochs["trial_id"].isin(set(trials["trial_id"]))]

    def eliminations(self) -> Any:
        """The configurations a race eliminated, in the order it did, with a row (``config_id``
        empty) for each look that eliminated none (empty unless raced).

        Raises:
            LedgerError: ``race.parquet`` is unreadable.
        """
        if self._export_only():
            return read_csv_table(self.sweep_dir / RACE_CSV, RACE_SCHEMA, required=False)
        return to_pandas(self._read_table(self.race_path, RACE_SCHEMA), RACE_SCHEMA)

    def done_ids(self) -> set[str]:
        """Ids of every recorded trial, whatever its status."""
        if self._export_only():
            return set(self.trials()["trial_id"])
        return set(self._read_table(self.trials_path, TRIAL_SCHEMA)["trial_id"].to_pylist())

    def status_counts(self) -> dict[str, int]:
        """Recorded trials per status, e.g. ``{"diverged": 1, "ok": 7}``."""
        if self._export_only():
            return count_statuses(self.trials())
        status = self._read_table(self.trials_path, TRIAL_SCHEMA)["status"]
        counts = {str(s["values"]): int(s["counts"]) for s in pc.value_counts(status).to_pylist()}
        return dict(sorted(counts.items()))

    # ------------------------------------------------------------------ writing

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        # Serialises writers (a second `sweeper run` of the same sweep): each rewrites whole
        # files from its cache, so two at once would drop each other's rows.
        if fcntl is None:  # pragma: no cover
            yield
            return
        try:
            fd = os.open(self.sweep_dir / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise writable(self.sweep_dir / _LOCK_NAME, err) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # also releases the lock; the kernel does the same on kill -9

    def _refresh(self) -> None:
        """(Re)load the cache if the files changed since this object last saw them."""
        seen = (_signature(self.trials_path), _signature(self.epochs_path))
        if self._trials is not None and seen == self._seen:
            return
        self._trials = self._read_table(self.trials_path, TRIAL_SCHEMA).combine_chunks()
        self._epochs = self._read_table(self.epochs_path, EPOCH_SCHEMA).combine_chunks()
        self._ids = set(self._trials["trial_id"].to_pylist())
        self._seen = seen
        # Under the lock no write is under way, so any temp file is left from a killed one.
        for stale in self.sweep_dir.glob(f"*{TMP_SUFFIX}"):
            stale.unlink(missing_ok=True)

    def _write(self, table: pa.Table, path: Path) -> None:
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, write_page_checksum=True)  # lets readers detect bit rot
        write_atomic(path, sink.getvalue().to_pybytes(), durable=True)

    def record(self, row: TrialRow, epochs: Sequence[EpochRow] = ()) -> bool:
        """Append one finished trial and its epoch rows.

        Args:
            row: The trial.
            epochs: Its epoch rows (an empty ``trial_id`` means the row's). A repeated epoch
                keeps its last row.

        Returns:
            ``False`` (and writes nothing) when the trial id is already recorded: re-recording
            after a resume can never duplicate a trial.

        Raises:
            ValueError: an epoch row of another trial.
            LedgerError: an existing ledger file is unreadable (it is never overwritten).
            WriteError: the ledger cannot be written (a full disk, a read-only folder): the
                files are as they were before the call.
        """
        tid = row.trial_id
        by_epoch: dict[int, dict[str, Any]] = {}
        for e in epochs:
            if e.trial_id not in ("", tid):
                raise ValueError(f"epoch row: trial_id {e.trial_id!r} is not the row's {tid!r}")
            by_epoch[e.epoch] = {**e.columns(), "trial_id": tid}
        with self._lock():
            self._refresh()
            assert self._trials is not None and self._epochs is not None
            if tid in self._ids:
                return False
            # Stale rows of this trial (from a write cut short before its commit) are replaced.
            kept = self._epochs.filter(pc.not_equal(self._epochs["trial_id"], tid))
            new_epochs = pa.concat_tables([kept, arrow_table([by_epoch[k] for k in sorted(by_epoch)], EPOCH_SCHEMA)])
            new_trials = pa.concat_tables([self._trials, arrow_table([row.columns()], TRIAL_SCHEMA)])
            self._write(new_epochs, self.epochs_path)
            self._write(new_trials, self.trials_path)  # the commit point
            self._epochs, self._trials = new_epochs.combine_chunks(), new_trials.combine_chunks()
            self._ids.add(tid)
            self._seen = (_signature(self.trials_path), _signature(self.epochs_path))
        return True

    def record_eliminations(self, rows: Sequence[Elimination]) -> int:
        """Append the race rows not recorded yet: eliminations (one per configuration: a race
        never revives one, so a configuration's first elimination is the one kept) and looks
        that eliminated nothing (one per round).

        Returns:
            How many were new.
        """
        with self._lock():
            table = self._read_table(self.race_path, RACE_SCHEMA)
            known = {Elimination(c, r).key for c, r in zip(table["config_id"].to_pylist(), table["round"].to_pylist())}
            new = []
            for row in rows:
                if row.key not in known:
                    known.add(row.key)
                    new.append(row.columns())
            if new:
                self._write(pa.concat_tables([table, arrow_table(new, RACE_SCHEMA)]), self.race_path)
        return len(new)

    def import_csv_export(self) -> int:
        """Seed an empty ledger from the sweep folder's CSV export (a committed reference run),
        so that re-running its spec, or extending it (more seeds, more values), runs only the
        trials the export lacks.

        Returns:
            Trials imported: 0 when there is no export or the parquet ledger already exists
            (once written, it is the truth and the export is only a copy of it).

        Raises:
            LedgerError: ``trials.csv`` or ``epochs.csv`` is not a ledger export.
        """
        if not self._export_only():
            return 0
        trials, epochs = self._read_export()
        race = self.eliminations()
        with self._lock():
            if self.trials_path.exists():  # another writer got there first
                return 0
            for frame, columns, path in ((race, RACE_SCHEMA, self.race_path), (epochs, EPOCH_SCHEMA, self.epochs_path),
                                         (trials, TRIAL_SCHEMA, self.trials_path)):  # trials last: the commit
                self._write(pa.Table.from_pandas(frame, schema=arrow_schema(columns), preserve_index=False)
                            .replace_schema_metadata(None), path)
        return len(trials)

    def export_csv(self, directory: str | Path | None = None) -> tuple[Path, Path]:
        """Write ``trials.csv`` and ``epochs.csv`` (what a reference run commits; the parquet
        files stay the truth). :func:`read_csv_export` reads them back with the ledger's dtypes.

        Args:
            directory: Where to write them (default: the sweep folder).

        Returns:
            The two paths written.
        """
        target = Path(directory) if directory is not None else self.sweep_dir
        target.mkdir(parents=True, exist_ok=True)
        trials_csv, epochs_csv = target / CSV_NAMES[0], target / CSV_NAMES[1]
        race = self.eliminations()
        if len(race):
            write_atomic(target / RACE_CSV, race.to_csv(index=False))
        for frame, path in ((self.epochs(), epochs_csv), (self.trials(), trials_csv)):
            write_atomic(path, frame.to_csv(index=False))  # a reader never sees half a file
        return trials_csv, epochs_csv

