"""W&B tracking against real offline wandb (no mocks): runs written, read back, never failing."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model.errors import ConfigError
from sweeper.tracking import TrialTracker, read_run_summary, readback, register_sweep, resolve_mode, runs

ROOT = Path(__file__).resolve().parents[1]
FAKE_KEY = "sweeperfakekey" + "0123456789abcdefghijklmnop"  # 40 chars, a well-formed key
assert len(FAKE_KEY) == 40
PARAMS = {"optimizer": "rmsprop", "loss": "mae", "learning_rate": 0.001, "rho": 0.9, "seed": 0, "epochs": 3}
EPOCHS = [
    {"train_loss": 0.30, "val_psnr": 21.0, "val_ssim": 0.60, "val_mae": 0.080},
    {"train_loss": 0.20, "val_psnr": 23.5, "val_ssim": 0.70, "val_mae": 0.060},
    {"train_loss": 0.15, "val_psnr": 23.0, "val_ssim": 0.68, "val_mae": 0.065},
]


@pytest.fixture(autouse=True)
def wandb_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No credentials, no mode, quiet, and every wandb path inside the test's tmp dir."""
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_PROJECT",
                 "WANDB_BASE_URL", "WANDB_SWEEP_ID", "WANDB_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-default"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))  # never the user's ~/.netrc
    return tmp_path


def triplets(n: int = 2) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 256, size=(n, 16, 16, 3), dtype=np.uint8)
    return [(s // 2, np.clip(s.astype(float) / 255 * 0.9, 0, 1), s) for s in sharp]  # uint8, float, uint8


def run_trial(tracker: TrialTracker, status: str = "ok") -> dict[str, Any]:
    """What the Ray trainable does with a tracker; returns the summary it finished with."""
    tracker.start()
    for epoch, metrics in enumerate(EPOCHS, start=1):
        tracker.log_epoch(epoch, metrics)
    tracker.log_images(triplets(), caption_prefix="test: ")
    summary = {"best_epoch": 2, "best_val_psnr": 23.5, "final_val_psnr": 23.0, "final_val_ssim": 0.68,
               "final_val_mae": 0.065, "seconds": 1.25, "images_per_second": 40.0}
    tracker.finish(summary, status)
    return summary


def tracker_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "sweeper.tracking" and r.levelno == logging.WARNING]


# --------------------------------------------------------------------------- resolve_mode


def test_flag_beats_env_beats_key_beats_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_mode(None) == "offline"  # nothing configured
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    assert resolve_mode(None) == "online"  # a key is available
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert resolve_mode(None) == "offline"  # env beats the key
    assert resolve_mode("disabled") == "disabled"  # the flag beats env
    monkeypatch.setenv("WANDB_MODE", "dryrun")  # wandb's legacy spelling of offline
    assert resolve_mode(None) == "offline"


def test_a_netrc_entry_for_api_wandb_ai_counts_as_a_key(wandb_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    netrc = wandb_env / "netrc"
    netrc.write_text(f"machine api.wandb.ai\n  login user\n  password {FAKE_KEY}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert resolve_mode(None) == "online"


def test_a_malformed_key_means_offline_with_a_warning(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "tooshort")
    with caplog.at_level(logging.WARNING):
        assert resolve_mode(None) == "offline"
    (warning,) = tracker_warnings(caplog)
    assert "offline" in warning.getMessage() and "tooshort" not in warning.getMessage()


@pytest.mark.parametrize("flag", ["onlin", "", "sync", "shared"])
def test_a_bad_flag_names_the_option_and_the_valid_modes(flag: str) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_mode(flag)
    assert "--wandb-mode" in str(err.value) and "online, offline, disabled" in str(err.value)


def test_a_bad_env_mode_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "ofline")
    with pytest.raises(ConfigError, match=r"WANDB_MODE.*did you mean 'offline'.*--wandb-mode"):
        resolve_mode(None)


# --------------------------------------------------------------------------- a real offline run


def test_an_offline_run_is_written_and_reads_back(wandb_env: Path) -> None:
    wandb_dir = wandb_env / "sweep" / "wandb"
    tracker = TrialTracker("optim_loss", "0123abcd4567", PARAMS, wandb_dir, "offline")
    # No wall-clock bound here: how fast a run starts is the benchmarks' business (on a loaded CI
    # machine wandb.init took 48 s once; sweeper's init_timeout leaves room for that).
    tracker.start()
    for epoch, metrics in enumerate(EPOCHS, start=1):
        tracker.log_epoch(epoch, {**metrics, "lr_now": 0.001})  # extra keys are not logged
    tracker.log_images(triplets(), caption_prefix="test: ")
    tracker.finish({"best_val_psnr": 23.5, "final_val_psnr": 23.0, "seconds": 1.25, "images_per_second": 40.0}, "ok")

    assert tracker.ok
    assert tracker.run_dir is not None and tracker.run_dir.parent == wandb_dir  # not wandb/wandb
    assert tracker.run_dir.name.startswith("offline-run-") and tracker.run_dir.name.endswith("optim_loss-0123abcd4567")
    assert len(list((tracker.run_dir / "files" / "media" / "images").glob("*.png"))) == 2

    summary = read_run_summary(tracker.run_dir)
    assert summary["status"] == "ok"
    assert summary["best_val_psnr"] == 23.5 and summary["final_val_psnr"] == 23.0
    assert summary["seconds"] == 1.25 and summary["images_per_second"] == 40.0
    assert summary["val_psnr"] == 23.0 and summary["val_mae"] == 0.065  # the last epoch
    assert summary["_step"] == 3 and "lr_now" not in summary
    assert summary["samples"]["count"] == 2

    run = readback._inspect_run(tracker.run_dir)
    assert run["config"] == PARAMS  # exactly the trial params, nothing added
    assert (run["state"], run["exit_code"], run["project"], run["name"]) == ("finished", 0, "sweeper", "0123abcd4567")
    assert read_run_summary(next(tracker.run_dir.glob("*.wandb"))) == summary  # the .wandb file works too


def test_the_run_records_group_job_type_and_every_epoch(wandb_env: Path) -> None:
    tracker = TrialTracker("lr_rho", "t1", PARAMS, wandb_env / "wandb", "offline")
    run_trial(tracker)
    records = subprocess.run(
        [*readback._wandb_command(), "leet", "inspect", "--json", str(tracker.run_dir)],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.splitlines()
    parsed = [json.loads(line) for line in records]
    (run,) = [r["run"] for r in parsed if r.get("type") == "run"]
    assert (run["run_group"], run["job_type"], run["run_id"]) == ("lr_rho", "trial", "lr_rho-t1")
    history = [r["history"] for r in parsed if r.get("type") == "history"]
    assert [h["step"]["num"] for h in history] == [1, 2, 3]  # step = epoch; the images join epoch 3
    assert [h["item"]["val_psnr"] for h in history] == [e["val_psnr"] for e in EPOCHS]
    assert history[-1]["item"]["samples._type"] == "images/separated"


def test_non_finite_metrics_survive_the_summary(wandb_env: Path) -> None:
    tracker = TrialTracker("s", "diverged1", PARAMS, wandb_env / "wandb", "offline").start()
    tracker.log_epoch(1, {"train_loss": float("nan"), "val_psnr": 5.0})
    tracker.finish({"best_val_psnr": np.float32(5.0), "final_val_psnr": float("nan"), "x": float("-inf")}, "diverged")
    summary = read_run_summary(tracker.run_dir)
    assert summary["status"] == "diverged" and summary["best_val_psnr"] == 5.0
    assert np.isnan(summary["final_val_psnr"]) and np.isnan(summary["train_loss"]) and summary["x"] == -np.inf
    assert readback._inspect_run(tracker.run_dir)["exit_code"] == 0  # diverged is a result, not a crash


def test_two_trackers_in_one_process_make_two_runs(wandb_env: Path) -> None:
    wandb_dir = wandb_env / "wandb"
    first = TrialTracker("grid", "aaaa", {**PARAMS, "seed": 0}, wandb_dir, "offline").start()
    second = TrialTracker("grid", "bbbb", {**PARAMS, "seed": 1}, wandb_dir, "offline").start()
    # Interleaved, as two trials sharing a worker process would never be, but may as well hold.
    first.log_epoch(1, {"val_psnr": 10.0})
    second.log_epoch(1, {"val_psnr": 20.0})
    second.finish({"best_val_psnr": 20.0}, "ok")
    first.finish({"best_val_psnr": 10.0}, "error")
    assert first.ok and second.ok and first.run_dir != second.run_dir
    assert sorted(p.name.split("-")[-1] for p in wandb_dir.glob("offline-run-*")) == ["aaaa", "bbbb"]
    one, two = readback._inspect_run(first.run_dir), readback._inspect_run(second.run_dir)
    assert (one["config"]["seed"], one["summary"]["best_val_psnr"], one["exit_code"]) == (0, 10.0, 1)
    assert (two["config"]["seed"], two["summary"]["best_val_psnr"], two["exit_code"]) == (1, 20.0, 0)


def test_as_a_context_manager_an_exception_finishes_the_run_as_error(wandb_env: Path) -> None:
    with pytest.raises(ZeroDivisionError):
        with TrialTracker("s", "boom", PARAMS, wandb_env / "wandb", "offline") as tracker:
            tracker.log_epoch(1, {"val_psnr": 1.0})
            1 / 0
    run = readback._inspect_run(tracker.run_dir)
    assert run["summary"]["status"] == "error" and "ZeroDivisionError" in run["summary"]["error"]
    assert run["exit_code"] == 1


# --------------------------------------------------------------------------- never failing a trial


def failing_init(wandb_env: Path, case: str) -> TrialTracker:
    blocker = wandb_env / ("wandb" if case == "wandb dir is a file" else "a-file")
    blocker.write_text("not a directory")
    if case == "wandb dir is a file":  # wandb.init itself fails creating the run directory
        return TrialTracker("s", "t", PARAMS, blocker, "offline")
    if case == "wandb dir is under a file":
        return TrialTracker("s", "t", PARAMS, blocker / "wandb", "offline")
    return TrialTracker("s", "t", PARAMS, wandb_env / "runs", "bogus")  # forced past resolve_mode


@pytest.mark.parametrize("case", ["wandb dir is a file", "wandb dir is under a file", "wandb.init refuses the mode"])
def test_a_failing_init_warns_once_and_every_call_is_a_no_op(wandb_env: Path, case: str, caplog) -> None:
    tracker = failing_init(wandb_env, case)
    with caplog.at_level(logging.WARNING):
        run_trial(tracker)  # must not raise
        with tracker:  # nor as a context manager
            tracker.log_epoch(4, {"val_psnr": 1.0})
    assert not tracker.ok and tracker.run_dir is None
    (warning,) = tracker_warnings(caplog)
    assert "wandb.init failed" in warning.getMessage() and "trial t" in warning.getMessage()


def test_a_failure_mid_run_warns_once_then_stops_tracking(wandb_env: Path, caplog) -> None:
    tracker = TrialTracker("s", "midway", PARAMS, wandb_env / "wandb", "offline").start()
    with caplog.at_level(logging.WARNING):
        tracker.log_epoch(1, {"val_psnr": "not a number"})  # type: ignore[dict-item]
        tracker.log_epoch(2, {"val_psnr": 2.0})
        tracker.log_images([(np.zeros((4, 4, 3)), np.zeros((5, 4, 3)), object())])  # type: ignore[list-item]
        tracker.finish({"status_detail": "x"}, "ok")
    assert not tracker.ok
    (warning,) = tracker_warnings(caplog)
    assert "logging an epoch failed" in warning.getMessage()
    run = readback._inspect_run(tracker.run_dir)
    assert run["state"] == "finished" and "val_psnr" not in run["summary"]  # closed, nothing after the failure


def test_disabled_mode_writes_nothing_and_never_imports_wandb(wandb_env: Path) -> None:
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        import sweeper.tracking as t
        assert "wandb" not in sys.modules, "importing sweeper.tracking imported wandb"
        tracker = t.TrialTracker("s", "t", {{"a": 1}}, Path({str(wandb_env / "wandb")!r}), "disabled")
        with tracker:
            tracker.log_epoch(1, {{"val_psnr": 1.0}})
            tracker.log_images([])
        assert tracker.ok and tracker.run_dir is None
        assert t.register_sweep({{"method": "grid"}}, None, mode="disabled") is None
        assert "wandb" not in sys.modules, "a disabled tracker imported wandb"
    """)
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=60)
    assert not (wandb_env / "wandb").exists()


def test_register_sweep_offline_or_broken_is_none(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    spec = {"method": "grid", "metric": {"name": "val_psnr", "goal": "maximize"},
            "parameters": {"loss": {"values": ["mae", "mse"]}}}
    assert register_sweep(spec, None) is None  # no key: offline
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    assert register_sweep(spec, "p", mode="offline") is None
    with caplog.at_level(logging.WARNING):
        assert register_sweep(spec, "p", mode="sideways") is None  # never raises
    assert len(tracker_warnings(caplog)) == 1


def test_read_run_summary_of_a_missing_run_says_so(wandb_env: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no W&B run"):
        read_run_summary(wandb_env / "nothing-here")


def test_run_ids_are_deterministic_and_use_only_safe_characters() -> None:
    assert runs._run_id("optim loss/v2:#1", "ab12") == "optim-loss-v2-1-ab12"
    long_a, long_b = runs._run_id("x" * 100 + "a", "0123abcd4567"), runs._run_id("x" * 100 + "b", "0123abcd4567")
    assert long_a != long_b and len(long_a) <= 64 and long_a.endswith("-0123abcd4567")
    assert long_a == runs._run_id("x" * 100 + "a", "0123abcd4567")


# --------------------------------------------------------------------------- secrets


def test_the_api_key_is_written_nowhere(wandb_env: Path) -> None:
    """A real key in the environment from process start (as in a Ray worker), offline mode."""
    wandb_dir = wandb_env / "sweep" / "wandb"
    script = textwrap.dedent(f"""
        import logging, numpy as np
        from pathlib import Path
        from sweeper.tracking import TrialTracker, read_run_summary
        logging.basicConfig(level=logging.DEBUG)
        params = {PARAMS!r}
        ok = TrialTracker("s", "secret", params, Path({str(wandb_dir)!r}), "offline").start()
        ok.log_epoch(1, {{"val_psnr": 1.0}})
        ok.log_images([(np.zeros((4, 4, 3), np.uint8),) * 3])
        ok.finish({{"seconds": 1.0}}, "ok")
        print(read_run_summary(ok.run_dir))
        broken = TrialTracker("s", "broken", params, Path({str(wandb_dir)!r}), "bogus").start()
        broken.finish({{}}, "error")
    """)
    env = {**os.environ, "WANDB_API_KEY": FAKE_KEY, "WANDB_DEBUG": "true"}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    assert FAKE_KEY.encode() not in done.stdout + done.stderr  # nothing we or wandb logged
    files = [p for p in wandb_env.rglob("*") if p.is_file() and not p.is_symlink()]
    assert any(p.suffix == ".wandb" for p in files) and any(p.name == "debug-internal.log" for p in files)
    leaked = [str(p) for p in files if FAKE_KEY.encode() in p.read_bytes()]
    assert leaked == []
