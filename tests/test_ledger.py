"""The ledger: idempotent, atomic records that survive readers and kill -9."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sweeper.ledger import _EPOCH_DTYPES, EPOCH_COLUMNS, TRIAL_COLUMNS, Ledger, LedgerError
from tests.conftest import ROOT


def row(tid: str, status: str = "ok", psnr: float = 25.0, **extra: object) -> dict:
    return {"trial_id": tid, "status": status, "val_psnr": psnr, "params_optimizer": "adam",
            "params_learning_rate": 0.001, **extra}


def epochs(tid: str, n: int = 2) -> list[dict]:
    return [{"trial_id": tid, "epoch": e, "train_loss": 0.1 / e, "val_psnr": 20.0 + e, "val_ssim": 0.5,
             "val_mae": 0.05} for e in range(1, n + 1)]


def test_record_and_read_back(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "s")
    assert ledger.record(row("a"), epochs("a")) is True
    assert ledger.record(row("b", "diverged", math.nan, error="loss became non-finite")) is True
    trials = Ledger(tmp_path / "s").trials()  # a fresh reader
    assert list(trials.columns) == list(TRIAL_COLUMNS)
    assert list(trials["trial_id"]) == ["a", "b"] and trials["finished_at"].str.len().min() > 0
    assert math.isnan(trials.loc[1, "val_psnr"]) and trials.loc[1, "error"] == "loss became non-finite"
    assert trials["best_epoch"].dtype == "int64" and trials["val_ssim"].dtype == "float64"
    assert list(ledger.epochs().columns) == list(EPOCH_COLUMNS) and len(ledger.epochs()) == 2
    assert ledger.status_counts() == {"diverged": 1, "ok": 1}


def test_recording_a_trial_twice_writes_nothing(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.record(row("a"), epochs("a"))
    before = ledger.trials_path.read_bytes()
    assert Ledger(tmp_path).record(row("a", psnr=99.0), epochs("a", 5)) is False
    assert ledger.trials_path.read_bytes() == before and len(Ledger(tmp_path).epochs()) == 2


def test_epoch_rows_of_an_unrecorded_trial_are_ignored_and_replaced(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.record(row("a"), epochs("a"))
    # as if a write of trial "b" was killed after its epochs but before its commit
    ledger._write(ledger._epochs + epochs("b", 3), _EPOCH_DTYPES, ledger.epochs_path)
    assert set(Ledger(tmp_path).epochs()["trial_id"]) == {"a"}
    Ledger(tmp_path).record(row("b"), epochs("b", 2))
    assert len(Ledger(tmp_path).epochs().query("trial_id == 'b'")) == 2


@pytest.mark.parametrize("bad,message", [
    ({"status": "ok"}, "trial_id is missing"),
    ({"trial_id": "x", "status": "done"}, "status 'done' is not one of"),
    ({"trial_id": "x", "status": "ok", "colour": 1}, "unknown columns ['colour']"),
])
def test_bad_rows_are_refused(tmp_path: Path, bad: dict, message: str) -> None:
    with pytest.raises(ValueError, match=__import__("re").escape(message)):
        Ledger(tmp_path).record(bad)


def test_empty_and_read_only_ledgers(tmp_path: Path) -> None:
    reader = Ledger(tmp_path / "nope", create=False)
    assert not (tmp_path / "nope").exists()
    assert len(reader.trials()) == 0 and list(reader.trials().columns) == list(TRIAL_COLUMNS)
    assert reader.done_ids() == set() and reader.status_counts() == {}


def test_a_corrupt_ledger_is_one_clear_line(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.record(row("a"))
    data = ledger.trials_path.read_bytes()
    ledger.trials_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(LedgerError) as info:
        Ledger(tmp_path).trials()
    message = str(info.value)
    assert str(ledger.trials_path) in message and "--resume" in message and "\n" not in message


def test_a_leftover_temp_file_is_ignored_and_cleaned(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.record(row("a"))
    (tmp_path / ".tmp-trials.parquet").write_bytes(b"half a file")
    fresh = Ledger(tmp_path)
    assert fresh.done_ids() == {"a"}
    fresh.record(row("b"))
    assert not (tmp_path / ".tmp-trials.parquet").exists() and fresh.done_ids() == {"a", "b"}


def test_export_csv(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ledger.record(row("a"))
    lines = ledger.export_csv(tmp_path / "trials.csv").read_text().splitlines()
    assert lines[0].split(",") == list(TRIAL_COLUMNS)
    assert len(lines) == 2 and lines[1].split(",")[0] == "a"


_WRITER = """
import sys
from sweeper.ledger import Ledger
ledger = Ledger(sys.argv[1])
for i in range(int(sys.argv[2])):
    ledger.record({"trial_id": f"t{i:04d}", "status": "ok", "val_psnr": float(i)},
                  [{"epoch": 1, "train_loss": 0.1, "val_psnr": float(i), "val_ssim": 0.5, "val_mae": 0.1}])
    print(i, flush=True)
"""


def _writer(sweep: Path, n: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _WRITER, str(sweep), str(n)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)


def test_a_concurrent_reader_never_sees_a_partial_file(tmp_path: Path) -> None:
    writer = _writer(tmp_path, 150)
    seen = []
    deadline = time.monotonic() + 120
    while writer.poll() is None and time.monotonic() < deadline:
        ids = sorted(Ledger(tmp_path, create=False).trials()["trial_id"])  # raises on a torn file
        assert ids == [f"t{i:04d}" for i in range(len(ids))]  # always a whole prefix
        seen.append(len(ids))
    assert writer.wait(timeout=60) == 0
    assert len(Ledger(tmp_path).trials()) == 150 and len(set(seen)) > 3


def test_kill_9_mid_writes_leaves_a_readable_prefix(tmp_path: Path) -> None:
    writer = _writer(tmp_path, 10_000)
    for _ in range(40):  # let it get well into its writes
        writer.stdout.readline()
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=30)
    ledger = Ledger(tmp_path)
    ids = sorted(ledger.trials()["trial_id"])
    assert len(ids) >= 40 and ids == [f"t{i:04d}" for i in range(len(ids))]
    assert set(ledger.epochs()["trial_id"]) == set(ids)
    assert ledger.record({"trial_id": "after", "status": "ok"}) is True  # and it can go on


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=12))
def test_any_sequence_of_records_keeps_each_id_once(tmp_path_factory: pytest.TempPathFactory, ids: list[str]) -> None:
    ledger = Ledger(tmp_path_factory.mktemp("h"))
    results = [ledger.record(row(i)) for i in ids]
    assert sorted(ledger.trials()["trial_id"]) == sorted(set(ids))
    assert sum(results) == len(set(ids))
