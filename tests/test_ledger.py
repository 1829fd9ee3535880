"""The ledger: idempotent, atomic records that survive readers, rival writers and kill -9."""

from __future__ import annotations

import math
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.files import TMP_SUFFIX
from sweeper.ledger import EPOCH_COLUMNS, TRIAL_COLUMNS, Ledger, LedgerError, count_statuses, read_csv_export
from sweeper.records import EpochRow, TrialRow
from tests.conftest import ROOT


def row(tid: str, status: str = "ok", psnr: float = 25.0, **extra: object) -> TrialRow:
    return TrialRow.from_columns({"trial_id": tid, "status": status, "val_psnr": psnr, "params_optimizer": "adam",
                                  "params_learning_rate": 0.001, "params_batch_size": 8, **extra})


def epochs(tid: str, n: int = 2) -> list[EpochRow]:
    return [EpochRow.from_columns({"trial_id": tid, "epoch": e, "train_loss": 0.1 / e, "val_psnr": 20.0 + e,
                                   "val_ssim": 0.5, "val_mae": 0.05}) for e in range(1, n + 1)]


def test_record_and_read_back(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "s")
    assert ledger.record(row("a"), epochs("a")) is True
    assert ledger.record(row("b", "diverged", math.nan, error="loss became non-finite")) is True
    trials = Ledger(tmp_path / "s").trials()  # a fresh reader
    assert list(trials.columns) == list(TRIAL_COLUMNS)
    assert list(trials["trial_id"]) == ["a", "b"] and trials["finished_at"].str.len().min() > 0
    assert pd.Timestamp(trials.loc[0, "finished_at"]).tzname() == "UTC"
    assert math.isnan(trials.loc[1, "val_psnr"]) and trials.loc[1, "error"] == "loss became non-finite"
    assert trials.loc[0, "error"] == "" and trials.loc[0, "params_optimizer"] == "adam"
    assert list(ledger.epochs().columns) == list(EPOCH_COLUMNS) and len(ledger.epochs()) == 2
    assert ledger.status_counts() == {"diverged": 1, "ok": 1} and ledger.done_ids() == {"a", "b"}
    assert count_statuses(trials) == {"diverged": 1, "ok": 1}  # status and report count a frame they read


def test_dtypes_are_fixed_empty_or_not(tmp_path: Path) -> None:
    empty = Ledger(tmp_path / "nope", create=False)
    assert not (tmp_path / "nope").exists()
    assert len(empty.trials()) == 0 and empty.done_ids() == set() and empty.status_counts() == {}
    assert count_statuses(empty.trials()) == {}
    ledger = Ledger(tmp_path / "s")
    ledger.record(row("a", params_seed=np.int64(3), params_rho=np.float32(0.5), best_epoch=2.0), epochs("a"))
    full = ledger.trials()
    assert dict(full.dtypes) == dict(empty.trials().dtypes)
    assert dict(ledger.epochs().dtypes) == dict(empty.epochs().dtypes)
    assert full["best_epoch"].dtype == "int64" and full["val_ssim"].dtype == "float64"
    assert full["params_seed"].dtype == "Int64" and full.loc[0, "params_seed"] == 3
    assert full["params_learning_rate"].dtype == "float64" and full["params_loss"].isna().all()
    assert full["params_epochs"].isna().all()  # a parameter the row lacks is unknown, not a default


@pytest.mark.parametrize("bad,message", [
    ({"status": "ok"}, "trial_id is missing"),
    ({"trial_id": "x", "status": "done"}, "status 'done' is not one of"),
    ({"trial_id": "x"}, "status None is not one of"),
    ({"trial_id": "x", "status": "ok", "colour": 1, "size": 2}, "unknown columns ['colour', 'size']"),
    ({"trial_id": "x", "status": "ok", "params_batch_size": 4.5}, "params_batch_size: expected a whole number"),
    ({"trial_id": "x", "status": "ok", "val_psnr": "high"}, "column val_psnr"),
])
def test_bad_rows_are_refused(tmp_path: Path, bad: dict, message: str) -> None:
    ledger = Ledger(tmp_path)
    with pytest.raises(ValueError, match=re.escape(message)):
        ledger.record(TrialRow.from_columns(bad))
    assert not ledger.trials_path.exists()


def test_bad_epoch_rows_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown columns \\['lr'\\]"):
        Ledger(tmp_path).record(row("a"), [EpochRow.from_columns({"epoch": 1, "lr": 0.1})])
    with pytest.raises(ValueError, match="trial_id 'b' is not the row's 'a'"):
        Ledger(tmp_path).record(row("a"), epochs("b"))


def test_recording_a_trial_twice_writes_nothing(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.record(row("a"), epochs("a"))
    before = ledger.trials_path.read_bytes(), ledger.epochs_path.read_bytes()
    assert ledger.record(row("a", psnr=99.0), epochs("a", 5)) is False
    assert Ledger(tmp_path).record(row("a", psnr=99.0), epochs("a", 5)) is False  # also after a restart
    assert (ledger.trials_path.read_bytes(), ledger.epochs_path.read_bytes()) == before


def test_epochs_dedupe_by_epoch_keeping_the_newest(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    retried = epochs("a", 2) + [EpochRow(epoch=1, train_loss=9.0, metrics={"val_psnr": 30.0})]  # epoch 1 re-reported
    ledger.record(row("a"), retried)
    got = ledger.epochs()
    assert list(got["epoch"]) == [1, 2] and got.loc[0, "train_loss"] == 9.0


def test_epoch_rows_of_an_unrecorded_trial_are_ignored_and_replaced(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.record(row("a"), epochs("a"))
    # as if a write of trial "b" was killed after its epochs but before its commit
    torn = pd.concat([pd.read_parquet(ledger.epochs_path), pd.DataFrame(epochs("b", 3))], ignore_index=True)
    torn.to_parquet(ledger.epochs_path, index=False)
    assert set(Ledger(tmp_path).epochs()["trial_id"]) == {"a"}
    Ledger(tmp_path).record(row("b"), epochs("b", 2))
    raw = pd.read_parquet(ledger.epochs_path)
    assert sorted(raw.loc[raw["trial_id"] == "b", "epoch"]) == [1, 2]  # the stale epoch 3 is gone
    assert len(Ledger(tmp_path).epochs()) == 4


def test_two_writer_objects_never_drop_each_others_rows(tmp_path: Path) -> None:
    first, second = Ledger(tmp_path), Ledger(tmp_path)
    first.record(row("a"), epochs("a"))
    second.record(row("b"), epochs("b"))
    first.record(row("c"), epochs("c"))  # its cache is stale: it must reload, not overwrite "b"
    assert second.record(row("c")) is False
    assert Ledger(tmp_path).done_ids() == {"a", "b", "c"} and len(Ledger(tmp_path).epochs()) == 6


@pytest.mark.parametrize("name,damage", [
    ("trials.parquet", lambda data: data[: len(data) // 2]),
    ("epochs.parquet", lambda data: b"not parquet at all"),
    ("epochs.parquet", lambda data: b""),
])
def test_a_corrupt_ledger_is_one_clear_line_and_never_overwritten(tmp_path: Path, name: str, damage) -> None:
    ledger = Ledger(tmp_path)
    ledger.record(row("a"), epochs("a"))
    path = tmp_path / name
    path.write_bytes(damage(path.read_bytes()))
    broken = path.read_bytes()
    for call in (lambda: Ledger(tmp_path).epochs(), lambda: Ledger(tmp_path).record(row("b"))):
        with pytest.raises(LedgerError) as info:
            call()
        message = str(info.value)
        assert message.startswith(f"{path} is unreadable") and "--resume" in message and "\n" not in message
    assert path.read_bytes() == broken  # the writer refused rather than rebuild from nothing


def test_a_parquet_file_that_is_not_a_ledger_is_named(tmp_path: Path) -> None:
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "trials.parquet")
    with pytest.raises(LedgerError, match=r"trials.parquet is not a sweeper ledger \(missing columns trial_id"):
        Ledger(tmp_path).done_ids()


def test_a_leftover_temp_file_is_ignored_and_cleaned(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.record(row("a"))
    (tmp_path / f"trials.parquet{TMP_SUFFIX}").write_bytes(b"half a file")
    fresh = Ledger(tmp_path)
    assert fresh.done_ids() == {"a"}
    fresh.record(row("b"))
    assert not (tmp_path / f"trials.parquet{TMP_SUFFIX}").exists() and fresh.done_ids() == {"a", "b"}


def test_csv_export_round_trips_with_the_ledger_dtypes(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.record(row("a"), epochs("a"))
    ledger.record(row("b", "error", math.nan, error='boom, "quoted"\nsecond line'))
    trials_csv, epochs_csv = ledger.export_csv()
    lines = trials_csv.read_text().splitlines()
    assert lines[0].split(",") == list(TRIAL_COLUMNS) and lines[1].split(",")[0] == "a"
    trials, eps = read_csv_export(tmp_path)
    pd.testing.assert_frame_equal(trials, ledger.trials())
    pd.testing.assert_frame_equal(eps, ledger.epochs())
    assert trials.loc[1, "error"].endswith("second line") and trials.loc[1, "node"] == ""
    assert pd.isna(trials.loc[1, "params_loss"]) and pd.isna(trials.loc[1, "params_seed"])


def test_a_committed_csv_export_seeds_an_empty_ledger_once(tmp_path: Path) -> None:
    """A reference run ships as CSV only; resuming or extending it must not re-run its trials."""
    original = Ledger(tmp_path / "ref")
    original.record(row("a"), epochs("a", 3))
    original.record(row("b", "diverged", math.nan, error="loss became NaN at epoch 2"), epochs("b", 1))
    original.export_csv()
    expected_trials, expected_epochs = original.trials(), original.epochs()
    for name in ("trials.parquet", "epochs.parquet"):
        (tmp_path / "ref" / name).unlink()

    seeded = Ledger(tmp_path / "ref")
    # Before the first write, readers (status, report, --dry-run) see the export.
    assert seeded.done_ids() == {"a", "b"} and seeded.status_counts() == {"diverged": 1, "ok": 1}
    pd.testing.assert_frame_equal(seeded.trials(), expected_trials)
    pd.testing.assert_frame_equal(seeded.epochs(), expected_epochs)
    assert seeded.import_csv_export() == 2
    pd.testing.assert_frame_equal(seeded.trials(), expected_trials)
    pd.testing.assert_frame_equal(seeded.epochs(), expected_epochs)
    assert seeded.record(row("a")) is False  # imported ids count as recorded
    assert seeded.record(row("c"), epochs("c")) is True
    # Once the parquet ledger exists it is the truth: a stale export is never imported again.
    assert Ledger(tmp_path / "ref").import_csv_export() == 0
    assert sorted(Ledger(tmp_path / "ref").done_ids()) == ["a", "b", "c"]
    assert Ledger(tmp_path / "empty").import_csv_export() == 0


def test_a_broken_csv_export_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    (tmp_path / "trials.csv").write_text("trial_id,status\na,ok\n")
    with pytest.raises(LedgerError, match=r"trials.csv is not a sweeper ledger export \(missing columns"):
        Ledger(tmp_path).import_csv_export()
    assert not (tmp_path / "trials.parquet").exists()


def test_a_foreign_csv_is_named_as_not_a_ledger_export(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="no such ledger export"):
        read_csv_export(tmp_path)
    (tmp_path / "trials.csv").write_text("x,y\n1,2\n")
    with pytest.raises(LedgerError, match=r"trials.csv is not a sweeper ledger export \(missing columns trial_id"):
        read_csv_export(tmp_path)


# A writer process: records t<prefix>0000, t<prefix>0001, ... with one epoch each (val_psnr = i
# in both, so a reader can check every row is whole), printing each index once it is committed.
# With a stop file it ends early once that file exists, so a reader can keep it writing for as
# long as the reader needs, however slow the machine.
_WRITER = """
import sys
from pathlib import Path
from sweeper.ledger import Ledger
from sweeper.records import EpochRow, TrialRow
ledger = Ledger(sys.argv[1])
prefix = sys.argv[3] if len(sys.argv) > 3 else ""
stop = Path(sys.argv[4]) if len(sys.argv) > 4 else None
for i in range(int(sys.argv[2])):
    if stop is not None and stop.exists():
        break
    ledger.record(TrialRow(f"t{prefix}{i:04d}", "ok", params={"seed": i}, metrics={"val_psnr": float(i)}),
                  [EpochRow(1, train_loss=0.1, metrics={"val_psnr": float(i), "val_ssim": 0.5, "val_mae": 0.1})])
    print(i, flush=True)
"""


def _writer(sweep: Path, n: int, prefix: str = "", stop: Path | None = None) -> subprocess.Popen:
    extra = [str(stop)] if stop is not None else []
    return subprocess.Popen([sys.executable, "-c", _WRITER, str(sweep), str(n), prefix, *extra], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)


def _assert_whole_prefix(trials: pd.DataFrame, epochs: pd.DataFrame) -> list[str]:
    ids = sorted(trials["trial_id"])
    assert ids == [f"t{i:04d}" for i in range(len(ids))]
    assert all(trials["val_psnr"] == trials["params_seed"].astype(float))  # each row complete
    assert all(epochs["val_psnr"] == epochs["trial_id"].str[1:].astype(int).astype(float))
    return ids


def test_a_concurrent_reader_never_sees_a_partial_file(tmp_path: Path) -> None:
    writer = _writer(tmp_path, 200)
    seen = []
    deadline = time.monotonic() + 120
    while writer.poll() is None and time.monotonic() < deadline:
        reader = Ledger(tmp_path, create=False)
        trials = reader.trials()  # raises LedgerError on a torn file
        epochs = reader.epochs()
        ids = _assert_whole_prefix(trials, epochs)
        # epochs() reads trials.parquet after our trials() did: it holds at least those trials
        assert len(epochs) >= len(ids) and epochs["trial_id"].is_unique
        seen.append(len(ids))
    assert writer.wait(timeout=60) == 0
    assert len(Ledger(tmp_path).trials()) == 200 and len(set(seen)) > 3


def test_kill_9_mid_writes_leaves_a_readable_prefix(tmp_path: Path) -> None:
    rng = random.Random(0)
    for _ in range(3):  # each round resumes the last one's ledger and is killed at another moment
        writer = _writer(tmp_path, 10_000)
        writer.stdout.readline()  # started and committing
        time.sleep(rng.uniform(0.05, 0.4))
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)
        ledger = Ledger(tmp_path)
        ids = _assert_whole_prefix(ledger.trials(), ledger.epochs())
        assert set(ledger.epochs()["trial_id"]) == set(ids)
    assert len(ids) > 5
    assert ledger.record(TrialRow("after", "ok")) is True  # and it can go on


def test_two_writer_processes_keep_every_row(tmp_path: Path) -> None:
    writers = [_writer(tmp_path, 40, prefix) for prefix in ("a", "b")]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    assert Ledger(tmp_path).done_ids() == {f"t{p}{i:04d}" for p in "ab" for i in range(40)}


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.sampled_from(["ok", "error", "diverged"]),
                          st.integers(0, 3)), max_size=12))
def test_any_sequence_of_records_keeps_each_id_once(tmp_path_factory: pytest.TempPathFactory,
                                                    calls: list[tuple[str, str, int]]) -> None:
    path = tmp_path_factory.mktemp("h")
    ledger = Ledger(path)
    results = [ledger.record(row(tid, status), epochs(tid, n)) for tid, status, n in calls]
    firsts = {tid: n for tid, _, n in reversed(calls)}  # the first record of an id is the one kept
    reread = Ledger(path)
    assert sorted(reread.trials()["trial_id"]) == sorted(firsts)
    assert sum(results) == len(firsts)
    assert reread.epochs().groupby("trial_id").size().to_dict() == {t: n for t, n in firsts.items() if n}


def test_a_ledger_written_before_a_parameter_existed_reads_it_as_unknown(tmp_path: Path) -> None:
    """precision came later: a trials.parquet and a trials.csv without its column still load."""
    ledger = Ledger(tmp_path / "old")
    ledger.record(row("a"), epochs("a"))
    old = pd.read_parquet(ledger.trials_path).drop(columns=["params_precision"])
    old.to_parquet(ledger.trials_path, index=False)
    trials = Ledger(tmp_path / "old").trials()
    assert list(trials.columns) == list(TRIAL_COLUMNS) and trials["params_precision"].isna().all()
    ledger.export_csv(tmp_path / "csv")
    csv = tmp_path / "csv" / "trials.csv"
    pd.read_csv(csv).drop(columns=["params_precision"]).to_csv(csv, index=False)
    trials_csv, _ = read_csv_export(tmp_path / "csv")
    assert trials_csv["params_precision"].isna().all() and trials_csv.loc[0, "trial_id"] == "a"


def test_epoch_seconds_are_kept_and_a_ledger_from_before_them_reads_them_as_unknown(tmp_path: Path) -> None:
    """An epoch's wall clock (``seconds``) came later: recorded, exported and read back; a
    ledger and a CSV export without the column load with it unknown."""
    ledger = Ledger(tmp_path / "new")
    ledger.record(row("a"), [EpochRow(e, train_loss=0.1, metrics={"val_psnr": 20.0 + e}, seconds=60.0 * e + 5)
                             for e in (1, 2)])
    assert list(ledger.epochs()["seconds"]) == [65.0, 125.0]
    ledger.export_csv(tmp_path / "csv")
    assert list(read_csv_export(tmp_path / "csv")[1]["seconds"]) == [65.0, 125.0]

    old = Ledger(tmp_path / "old")
    old.record(row("a"), epochs("a"))
    pd.read_parquet(old.epochs_path).drop(columns=["seconds"]).to_parquet(old.epochs_path, index=False)
    read = Ledger(tmp_path / "old").epochs()
    assert list(read.columns) == list(EPOCH_COLUMNS) and read["seconds"].isna().all() and len(read) == 2
    old.export_csv(tmp_path / "oldcsv")
    csv = tmp_path / "oldcsv" / "epochs.csv"
    pd.read_csv(csv).drop(columns=["seconds"]).to_csv(csv, index=False)
    assert read_csv_export(tmp_path / "oldcsv")[1]["seconds"].isna().all()
