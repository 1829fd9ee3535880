"""`sweeper run` and `sweeper status` argument handling, without starting Ray."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from sweeper.cli import app
from sweeper.dispatch.lock import driver_lock
from tests.conftest import ROOT, run_cli_light

runner = CliRunner()
SPEC = ROOT / "search_spaces" / "optim_loss.yaml"


def _status(sweep: Path) -> list[str]:
    """`sweeper status <sweep>`'s lines, through the CLI; it must succeed."""
    result = runner.invoke(app, ["status", str(sweep)])
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def _checkpoint(sweep: Path, params: dict, history: tuple[dict, ...], seconds: float) -> None:
    """A checkpoint of trial ``mae-rmsprop-s0`` after ``history``'s epochs, ``seconds`` in."""
    import numpy as np

    from model.checkpoint import TrainState, save_state

    state = TrainState(history=history, best_epoch=1, images=16, fit_seconds=1.0, seconds=seconds,
                       weights=[np.zeros(3, np.float32)], optimizer=[np.zeros(1, np.int64)])
    save_state(sweep / "checkpoints" / "mae-rmsprop-s0.npz", {"params": params}, state)


def test_dry_run_prints_the_trial_table_and_writes_nothing(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(SPEC), "--dry-run", "--results-dir", str(tmp_path / "r"),
                                 "--set", "parameters.seed.values=[0]"])
    assert result.exit_code == 0, result.output
    assert "optim_loss: 25 trials (25 to run)" in result.stdout
    assert "rmsprop" in result.stdout and "pending" in result.stdout
    assert not (tmp_path / "r").exists()
    one = runner.invoke(app, ["run", str(SPEC), "--dry-run", "--results-dir", str(tmp_path / "r"),
                              "--set", "parameters.seed.values=[0]", "--set", "parameters.optimizer.values=[adam]",
                              "--set", "parameters.loss.values=[mae]"])
    assert one.exit_code == 0 and "optim_loss: 1 trial (1 to run)" in one.stdout, one.output


def test_dry_run_of_bayes_counts_only_the_trials_its_space_holds(tmp_path: Path) -> None:
    lr_rho = SPEC.parent / "lr_rho.yaml"  # 40 points: 5 learning rates x 4 rhos x 2 seeds
    result = runner.invoke(app, ["run", str(lr_rho), "--dry-run", "--results-dir", str(tmp_path),
                                 "--set", "method=bayes", "--set", "run_cap=50"])
    assert result.exit_code == 0, result.output
    assert "lr_rho: bayes, 40 trials (all the space holds; run_cap is 50) proposed by Optuna TPE" in result.stdout
    result = runner.invoke(app, ["run", str(lr_rho), "--dry-run", "--results-dir", str(tmp_path),
                                 "--set", "method=bayes", "--set", "run_cap=13"])
    assert "lr_rho: bayes, 13 trials proposed by Optuna TPE at run time" in result.stdout


def test_dry_run_imports_neither_ray_nor_tensorflow(tmp_path: Path) -> None:
    proc = run_cli_light(["run", str(SPEC), "--dry-run", "--results-dir", str(tmp_path)], ("tensorflow", "ray", "wandb"))
    assert "optim_loss: 50 trials" in proc.stdout


def test_dry_run_says_when_this_cpu_would_emulate_the_precision(tmp_path: Path, monkeypatch) -> None:
    """Planning a bf16 race on an AVX2-only CPU: the dry run names the slowdown once, on
    stderr, before anything runs; not for float32, a native CPU, or a cluster to join."""
    import model.runtime

    race = SPEC.parent / "optim_loss_race.yaml"  # mixed_bfloat16, gpu 1 with fallback cpu
    argv = ["run", str(race), "--dry-run", "--results-dir", str(tmp_path)]
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(model.runtime, "_cpu_flags", lambda: frozenset({"avx2", "fma"}))
    result = runner.invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "sweeper: warning: parameters.precision: mixed_bfloat16 on this CPU, which has no avx512_bf16 or amx_bf16 "
        "in /proc/cpuinfo: 16-bit convolutions compute in float32 here and round once (native hardware's "
        "arithmetic), at about float32's speed, not faster (bf16 0.92x, fp16 0.87x in benchmarks/README.md); use "
        "precision: auto (float32 on such a CPU) or a machine that has them (unless a GPU takes the trials)"]
    assert "its first round is the 50 trials above" in result.stdout
    for extra in (["--set", "parameters.precision.value=float32"], ["--address", "10.0.0.1:6379"]):
        quiet = runner.invoke(app, argv + extra)
        assert quiet.exit_code == 0 and quiet.stderr == "", (extra, quiet.output)
    monkeypatch.setattr(model.runtime, "_cpu_flags", lambda: frozenset({"avx2", "amx_bf16"}))
    assert runner.invoke(app, argv).stderr == ""


def test_a_bad_spec_prints_one_line_per_problem_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmethod: grid\nmetric: {name: val_psnr, goal: maximize}\n"
                   "parameters:\n  optimizer: {values: [adam, rmsprp]}\n  rho: {value: 1.5}\n")
    proc = subprocess.run([sys.executable, "-m", "sweeper.cli", "run", str(bad)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        f"sweeper: error: {bad}: parameters.optimizer.values[1]: unknown optimizer 'rmsprp' (did you mean "
        "'rmsprop'?); valid: adadelta, adagrad, adam, adamax, adamw, nadam, rmsprop, sgd",
        f"sweeper: error: {bad}: parameters.rho.value: 1.5 is out of range: rho must be in (0, 1), e.g. 0.9",
    ]


def test_missing_spec_file_is_named(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "nope.yaml" in result.stderr and "Traceback" not in result.stderr


def test_a_missing_named_dataset_is_named_by_its_path(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(SPEC), "--results-dir", str(tmp_path / "r"),
                                 "--data-dir", str(tmp_path / "d"), "--set", "sweeper.dataset.name=gopro"])
    assert result.exit_code == 1
    assert f"{tmp_path / 'd' / 'gopro'}: dataset not found" in result.stderr


def test_bad_wandb_mode_and_max_concurrent_are_refused(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(SPEC), "--results-dir", str(tmp_path), "--max-concurrent", "0"])
    assert result.exit_code == 2 and "--max-concurrent" in result.stderr
    result = runner.invoke(app, ["run", str(SPEC), "--results-dir", str(tmp_path), "--wandb-mode", "loud"])
    assert result.exit_code == 2 and "--wandb-mode" in result.stderr


def test_resume_refuses_a_results_folder_that_holds_no_such_sweep(tmp_path: Path) -> None:
    """A mistyped --results-dir with --resume must not start the sweep from scratch."""
    result = runner.invoke(app, ["run", str(SPEC), "--resume", "--results-dir", str(tmp_path / "typo")])
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"sweeper: error: --resume: {(tmp_path / 'typo' / 'optim_loss').resolve()} holds no sweep to resume; "
        "check --results-dir, or leave out --resume to start it"]
    assert not (tmp_path / "typo").exists()


def test_status_ranks_by_the_specs_metric_and_goal(tmp_path: Path) -> None:
    from tests.test_report import OPT_LOSS, make_sweep, opt_loss

    # val_mae, minimized: the best trial is the one with the lowest MAE (make_sweep's MAE is 1/PSNR,
    # so the highest PSNR), not simply the highest val_psnr column of any trial.
    sweep = make_sweep(tmp_path / "mae", OPT_LOSS, opt_loss([30.0, 31.0], [25.0, 26.0]), metric="val_mae",
                       goal="minimize")
    result = runner.invoke(app, ["status", str(sweep)])
    assert result.exit_code == 0, result.output
    assert "best val_mae 0.032 (loss=mae, optimizer=rmsprop, seed=1)" in result.stdout


def test_status_says_when_a_grid_should_be_done(tmp_path: Path) -> None:
    from tests.test_report import OPT_LOSS, make_sweep

    # 2 of the 12 trials recorded, in 10 and 11 s: 10 to go at 10.5 s each
    sweep = make_sweep(tmp_path / "part", OPT_LOSS, {("mae", "adam"): [25.0, 26.0]})
    result = runner.invoke(app, ["status", str(sweep)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:3] == [
        "remaining: 10", "done after about 2 min of trial time (10 trials at the recorded mean of 10 s; "
        "checkpointed epochs counted)"]


def test_status_counts_a_long_grids_tuners_one_after_another(tmp_path: Path, monkeypatch) -> None:
    """A grid of more trials than a Tuner holds runs as consecutive Tuners (200 trials each in a
    run, 3 here), each waiting for all its trials before the next starts: status counts that."""
    import yaml

    from sweeper.dispatch import search
    from tests.test_report import OPT_LOSS, make_sweep

    sweep = make_sweep(tmp_path / "long", OPT_LOSS, {("mae", "adam"): [25.0, 26.0]})
    doc = yaml.safe_load((sweep / "spec.yaml").read_text())
    (sweep / "spec.yaml").write_text(yaml.safe_dump({**doc, "sweeper": {**doc.get("sweeper", {}), "max_concurrent": 4}}))
    # 10 to go at 10.5 s, 4 at a time: in one Tuner 3 x 10.5 s (4, 4, then 2)
    assert runner.invoke(app, ["status", str(sweep)]).stdout.splitlines()[2] == (
        "done in about 32 s (10 trials at the recorded mean of 10 s, 4 at a time; checkpointed epochs counted)")
    # in Tuners of 3, 3, 3 and 1, each a barrier: 4 x 10.5 s
    monkeypatch.setattr(search, "TRIALS_PER_TUNER", 3)
    assert runner.invoke(app, ["status", str(sweep)]).stdout.splitlines()[2] == (
        "done in about 42 s (10 trials at the recorded mean of 10 s, 4 at a time; checkpointed epochs counted)")
    assert [len(tuner) for tuner in search.in_tuners(list(range(10)))] == search.tuner_sizes(None, 10) == [3, 3, 3, 1]


def test_status_says_when_this_cpu_would_be_slower_than_the_recorded_pace(tmp_path: Path, monkeypatch) -> None:
    """The estimate is the recorded trials' pace; a CPU that emulates the spec's bf16 would not
    keep it, and status says so under the estimate (not when the sweep runs on a cluster)."""
    import model.runtime
    from tests.test_report import OPT_LOSS, make_sweep

    sweep = make_sweep(tmp_path / "bf16", OPT_LOSS, {("mae", "adam"): [25.0, 26.0]},
                       fixed={"precision": "mixed_bfloat16"})
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(model.runtime, "_cpu_flags", lambda: frozenset({"avx2", "fma"}))
    lines = runner.invoke(app, ["status", str(sweep)]).stdout.splitlines()
    assert lines[2].startswith("done after about 2 min of trial time") and lines[3] == (
        "that estimate is the recorded trials' pace; continued on this machine's CPU: parameters.precision: "
        "mixed_bfloat16 on this CPU, which has no avx512_bf16 or amx_bf16 in /proc/cpuinfo: 16-bit convolutions "
        "compute in float32 here and round once (native hardware's arithmetic), at about float32's speed, not "
        "faster (bf16 0.92x, fp16 0.87x in benchmarks/README.md); use precision: auto (float32 on such a CPU) or a "
        "machine that has them")
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert "this machine's CPU" not in runner.invoke(app, ["status", str(sweep)]).stdout
    monkeypatch.delenv("RAY_ADDRESS")
    monkeypatch.setattr(model.runtime, "_cpu_flags", lambda: frozenset({"avx512_bf16"}))
    assert "this machine's CPU" not in runner.invoke(app, ["status", str(sweep)]).stdout
    # reading the CPU's flags imports no TensorFlow, Ray, Keras or W&B
    assert run_cli_light(["status", str(sweep)]).stdout.splitlines()[2].startswith("done after about 2 min")


def test_status_estimates_from_the_trials_computed_as_this_cpu_computes_them(tmp_path: Path, monkeypatch) -> None:
    """A local sweep goes on at this CPU's pace: with trials recorded both ways, the estimate
    is the mean of those whose 16-bit arithmetic was this CPU's (the ledger's ``emulation``);
    on a cluster, whose CPUs are not this one, the mean of all."""
    import model.runtime
    from sweeper.ledger import Ledger
    from sweeper.records import EpochRow, Placement, TrialRow
    from tests.test_report import OPT_LOSS, make_sweep

    # two trials on native bf16 (10 and 11 s), then one with float32-accumulated convolutions (40 s)
    sweep = make_sweep(tmp_path / "mixed", OPT_LOSS, {("mae", "adam"): [25.0, 26.0]},
                       fixed={"precision": "mixed_bfloat16"})
    Ledger(sweep).record(
        TrialRow("mae-rmsprop-s0", "ok", params={"loss": "mae", "optimizer": "rmsprop", "seed": 0,
                                                  "precision": "mixed_bfloat16"},
                 metrics={"val_psnr": 25.0, "val_ssim": 0.6, "val_mae": 0.04}, seconds=40.0, epochs_run=2,
                 placement=Placement(accelerator="cpu", dtype_policy="mixed_bfloat16",
                                     emulation="float32-accumulate")),
        [EpochRow(e, train_loss=0.1, metrics={"val_psnr": 24.0 + e, "val_ssim": 0.5, "val_mae": 0.05}) for e in (1, 2)])
    monkeypatch.delenv("RAY_ADDRESS", raising=False)

    def estimate(flags: frozenset[str]) -> list[str]:
        monkeypatch.setattr(model.runtime, "_cpu_flags", lambda: flags)
        return _status(sweep)[1:4]

    # 9 to go: at 40 s on this AVX2-only CPU (no warning under it: the pace is this CPU's) ...
    emulating = estimate(frozenset({"avx2", "fma"}))
    assert emulating[:2] == [
        "remaining: 9", "done after about 6 min of trial time (9 trials at 40 s, the mean of the 1 recorded with "
        "16-bit convolutions accumulated in float32 as on this CPU; checkpointed epochs counted)"]
    assert "this machine's CPU" not in emulating[2]
    # ... at 10.5 s on a CPU with native bf16 ...
    assert estimate(frozenset({"avx512_bf16"}))[1] == (
        "done after about 2 min of trial time (9 trials at 10 s, the mean of the 2 recorded with native 16-bit "
        "arithmetic as on this CPU; checkpointed epochs counted)")
    # ... and at all three's 20.3 s on a cluster
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert estimate(frozenset({"avx2"}))[1] == (
        "done after about 3 min of trial time (9 trials at the recorded mean of 20 s; checkpointed epochs counted)")

    # A float32 trial (20 s) computes alike on both CPUs, so it counts on both, beside each one's
    # 16-bit trials: each trial is judged by its own dtype policy, not the spec's as a whole
    Ledger(sweep).record(
        TrialRow("mae-nadam-s0", "ok", params={"loss": "mae", "optimizer": "nadam", "seed": 0, "precision": "float32"},
                 metrics={"val_psnr": 25.0, "val_ssim": 0.6, "val_mae": 0.04}, seconds=20.0, epochs_run=2,
                 placement=Placement(accelerator="cpu", dtype_policy="float32")),
        [EpochRow(e, train_loss=0.1, metrics={"val_psnr": 24.0 + e, "val_ssim": 0.5, "val_mae": 0.05}) for e in (1, 2)])
    assert estimate(frozenset({"avx2"}))[1] == (
        "done after about 3 min of trial time (8 trials at the recorded mean of 20 s; checkpointed epochs counted)")
    monkeypatch.delenv("RAY_ADDRESS")
    assert estimate(frozenset({"avx2", "fma"}))[1] == (
        "done after about 4 min of trial time (8 trials at 30 s, the mean of the 2 recorded with float32 or 16-bit "
        "convolutions accumulated in float32 as on this CPU; checkpointed epochs counted)")
    assert estimate(frozenset({"avx512_bf16"}))[1] == (
        "done after about 2 min of trial time (8 trials at 14 s, the mean of the 3 recorded with float32 or native "
        "16-bit arithmetic as on this CPU; checkpointed epochs counted)")


def test_status_paces_a_trial_at_its_median_epoch_when_every_epochs_time_is_known(tmp_path: Path, monkeypatch) -> None:
    """Seen on lr_rho_race: two trials whose epochs took 50-60 s, but 170-245 s while a test
    suite shared the cores, paced out at 54-55 min a trial, not 45. An epoch's wall clock is in
    the ledger (and each checkpoint's history): a trial counts at its median epoch times its
    epochs; one without those clocks (an older ledger) at its recorded seconds."""
    from sweeper.ledger import Ledger
    from sweeper.records import EpochRow, TrialRow
    from tests.test_report import OPT_LOSS, make_sweep

    # adam's 2 trials: 10 and 11 s, no epoch clocks (the old ledger); 3 epochs each
    sweep = make_sweep(tmp_path / "clock", OPT_LOSS, {("mae", "adam"): [25.0, 26.0]}, fixed={"epochs": 3})
    monkeypatch.delenv("RAY_ADDRESS", raising=False)

    assert _status(sweep)[2] == ("done after about 2 min of trial time (10 trials at the recorded mean of 10 s; "
                                 "checkpointed epochs counted)")
    # rmsprop's trial: epochs of 4, 40 and 5 s (49 s recorded), so 3 x 5 = 15 s at its median epoch;
    # (10 + 11 + 15) / 3 = 12 s for each of the 9 left
    Ledger(sweep).record(
        TrialRow("mae-rmsprop-s0", "ok", params={"loss": "mae", "optimizer": "rmsprop", "seed": 0, "epochs": 3},
                 metrics={"val_psnr": 25.0, "val_ssim": 0.6, "val_mae": 0.04}, seconds=49.0, epochs_run=3),
        [EpochRow(e, train_loss=0.1, metrics={"val_psnr": 24.0 + e}, seconds=clock)
         for e, clock in ((1, 4.0), (2, 44.0), (3, 49.0))])
    assert _status(sweep)[2] == ("done after about 2 min of trial time (9 trials at the recorded mean of 12 s, 1 of them "
                                 "at its median epoch; checkpointed epochs counted)")
    # a trial whose epoch rows skip one (3 run, 2 rows) counts at its recorded 64 s: its rows'
    # gaps are not its epochs. (10 + 11 + 15 + 64) / 4 = 25 s for each of the 8 left
    Ledger(sweep).record(
        TrialRow("mae-sgd-s0", "ok", params={"loss": "mae", "optimizer": "sgd", "seed": 0, "epochs": 3},
                 metrics={"val_psnr": 25.0, "val_ssim": 0.6, "val_mae": 0.04}, seconds=64.0, epochs_run=3),
        [EpochRow(e, train_loss=0.1, metrics={"val_psnr": 24.0 + e}, seconds=clock) for e, clock in ((1, 4.0), (3, 9.0))])
    assert _status(sweep)[2] == ("done after about 3 min of trial time (8 trials at the recorded mean of 25 s, 1 of them "
                                 "at its median epoch; checkpointed epochs counted)")
    # On a sweep with no trial recorded, a checkpoint's epochs: 100, 10 and 10 s of 4 (a resumed
    # trial's first epoch carries its start-up) -> 40 s a trial at the median, not 160; 12 to go,
    # the started one with a quarter left: 10 + 11 x 40 = 450 s
    fresh = make_sweep(tmp_path / "fresh", OPT_LOSS, {}, fixed={"epochs": 4}, record=False)
    _checkpoint(fresh, {"loss": "mae", "optimizer": "rmsprop", "seed": 0, "epochs": 4},
                tuple({"epoch": e, "val_psnr": 22.0, "seconds": clock} for e, clock in ((1, 100.0), (2, 110.0), (3, 120.0))),
                seconds=120.0)
    with driver_lock(fresh):  # written just now, a driver holding the sweep: it runs, its last 3 epochs set the pace
        lines = _status(fresh)
    assert lines[3] == (
        "done after about 8 min of trial time (12 trials at 40 s, the pace now of the 1 running trial, the median "
        "of its last 3 epochs; checkpointed epochs counted)"), lines
    assert _status(fresh)[2] == (  # no driver: the same pace, the trial's as it was cut short
        "done after about 8 min of trial time (12 trials at 40 s, the pace of the 1 trial cut short just now, the "
        "median of its last 3 epochs; checkpointed epochs counted)")
    _age(fresh / "checkpoints" / "mae-rmsprop-s0.npz", 3600.0)  # cut short an hour ago: all its epochs count
    assert _status(fresh)[2] == (
        "done after about 8 min of trial time (12 trials at 40 s, the pace so far of the 1 checkpointed trial, "
        "each at its median epoch; checkpointed epochs counted)")


def _age(path: Path, seconds: float) -> None:
    """Make ``path`` look written ``seconds`` ago."""
    import os
    import time

    then = time.time() - seconds
    os.utime(path, (then, then))


def test_status_paces_by_the_trials_running_here_over_those_recorded_elsewhere(tmp_path: Path, monkeypatch) -> None:
    """Seen on lr_rho_race (2026-12-06): resumed on a new host whose epochs took 78 s, `sweeper
    status` said "the next look in about 67 min" from trials recorded on the last host (46-58 s
    an epoch); it came 1.7 h later. A trial running here sets the pace by its last 3 epochs
    (not its first ones, which may have run elsewhere); once it stops, the recorded ones again."""
    from tests.test_report import OPT_LOSS, make_sweep

    # 2 trials of 8 epochs recorded at 10 s each, 10 to go; rmsprop + mae seed 0 runs: epochs
    # of 5 s twice (on the last host), then of 100 s twice (here)
    sweep = make_sweep(tmp_path / "moved", OPT_LOSS, {("mae", "adam"): [25.0, 26.0]}, fixed={"epochs": 8})
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    params = {"loss": "mae", "optimizer": "rmsprop", "seed": 0, "epochs": 8}
    history = tuple({"epoch": e, "val_psnr": 22.0, "seconds": clock} for e, clock in ((1, 5.0), (2, 10.0)))
    _checkpoint(sweep, params, history, seconds=10.0)  # 2 epochs: too few to tell a pace now
    assert _status(sweep)[2] == ("done after about 2 min of trial time (10 trials at the recorded mean of 10 s; "
                                 "checkpointed epochs counted)")
    history += tuple({"epoch": e, "val_psnr": 22.0, "seconds": clock} for e, clock in ((3, 110.0), (4, 210.0)))
    _checkpoint(sweep, params, history, seconds=210.0)
    # 800 s a trial (the median of 5, 100, 100 s, times 8): half of it for the started one, 9 more
    # whole: 400 + 9 x 800 = 7600 s
    with driver_lock(sweep):
        lines = _status(sweep)
    assert lines[3] == (
        "done after about 2.1 h of trial time (10 trials at 13 min, the pace now of the 1 running trial, the median "
        "of its last 3 epochs; checkpointed epochs counted)"), lines
    _age(sweep / "checkpoints" / "mae-rmsprop-s0.npz", 301.0)  # no epoch for 3 x 100 s: not running
    assert _status(sweep)[2].startswith("done after about 2 min of trial time (10 trials at the recorded mean of 10 s")


def test_status_paces_by_the_last_trials_recorded_when_the_hosts_speed_drifts(tmp_path: Path, monkeypatch) -> None:
    """Seen on lr_rho_race: 18 trials recorded on one host took 47-49 min each for a day, then
    38-43 min, and "the next look in about 8.1 h" was the mean of all 18 (49 min), long by a
    quarter. The last 6 recorded, by when they finished (not the ledger's order), set the pace."""
    from sweeper.ledger import Ledger
    from sweeper.records import TrialRow
    from tests.test_report import OPT_LOSS, make_sweep

    sweep = make_sweep(tmp_path / "drift", OPT_LOSS, {}, record=False)  # 6 configurations x 2 seeds
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    configs = [(loss, opt) for loss in OPT_LOSS["loss"] for opt in OPT_LOSS["optimizer"]]

    def record(trials: list[tuple[str, int, float, str]]) -> None:
        for (loss, opt), seed, seconds, finished in trials:
            Ledger(sweep).record(TrialRow(
                f"{loss}-{opt}-s{seed}", "ok", params={"loss": loss, "optimizer": opt, "seed": seed},
                metrics={"val_psnr": 25.0, "val_ssim": 0.6, "val_mae": 0.04}, seconds=seconds, epochs_run=2,
                finished_at=f"2026-12-06T0{finished}:00:00+00:00"), [])

    # 6 trials of 10 s that finished from 03:00 on, recorded first ...
    record([(config, 0, 10.0, str(3 + i)) for i, config in enumerate(configs)])
    assert _status(sweep)[2] == ("done after about 60 s of trial time (6 trials at the recorded mean of 10 s; "
                                 "checkpointed epochs counted)")
    # ... then 2 of 100 s that had finished before them (01:00, 02:00): a ledger imported from
    # another run's CSV lands in any order. The mean of all 8 would be 32.5 s (2 min for the 4 left);
    # the last 6 to finish are the 10 s ones
    record([(configs[0], 1, 100.0, "1"), (configs[1], 1, 100.0, "2")])
    assert _status(sweep)[2] == ("done after about 40 s of trial time (4 trials at 10 s, the mean of the last 6 "
                                 "recorded; checkpointed epochs counted)")
    # one more, slow and the latest (09:00): it is among the last 6, the 03:00 one is not
    # (5 x 10 + 100) / 6 = 25 s for the 3 left
    record([(configs[2], 1, 100.0, "9")])
    assert _status(sweep)[2] == ("done after about 75 s of trial time (3 trials at 25 s, the mean of the last 6 "
                                 "recorded; checkpointed epochs counted)")


def test_status_on_a_cpu_unlike_every_recorded_trials_takes_the_pace_of_its_own_checkpoints(
        tmp_path: Path, monkeypatch) -> None:
    """Seen on lr_rho_race: its first trials, emulated bf16 on an AVX2-only CPU, took 3.2 h each;
    on a CPU with native bf16 its next ones checkpointed an epoch every 39 s (29 min a trial),
    and `sweeper status` still said "60.3 h". When no recorded trial was computed as this CPU
    computes them, the epochs this node has checkpointed set the pace."""
    import model.runtime
    from sweeper.records import Placement
    from tests.test_report import OPT_LOSS, make_sweep

    # 2 trials of 2 epochs with float32-accumulated bf16 (10 and 11 s), 10 to go
    sweep = make_sweep(tmp_path / "moved", OPT_LOSS, {("mae", "adam"): [25.0, 26.0]},
                       fixed={"precision": "mixed_bfloat16", "epochs": 2},
                       placement=Placement(accelerator="cpu", dtype_policy="mixed_bfloat16",
                                           emulation="float32-accumulate"))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(model.runtime, "_cpu_flags", lambda: frozenset({"avx512_bf16", "amx_bf16"}))

    # nothing run here yet: the recorded trials' pace is all there is
    assert _status(sweep)[2] == ("done after about 2 min of trial time (10 trials at the recorded mean of 10 s; "
                                 "checkpointed epochs counted)")
    # one epoch of 2 in 150 s here: 300 s a trial; 300 x 1/2 + 9 x 300 = 2850 s
    # (a checkpoint from before epoch clocks: its record has none, so its total sets the pace)
    _checkpoint(sweep, {"loss": "mae", "optimizer": "rmsprop", "seed": 0, "precision": "mixed_bfloat16", "epochs": 2},
                ({"epoch": 1, "val_psnr": 22.0},), seconds=150.0)
    assert _status(sweep)[2] == ("done after about 48 min of trial time (10 trials at 5 min, the pace so far of the 1 "
                                 "checkpointed trial; checkpointed epochs counted)")
    # on a cluster the recorded trials count, whatever this CPU is
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert _status(sweep)[2] == ("done after about 2 min of trial time (10 trials at the recorded mean of 10 s; "
                                 "checkpointed epochs counted)")


def test_status_without_sweeps_says_how_to_start_one(tmp_path: Path) -> None:
    result = runner.invoke(app, ["status", "--results-dir", str(tmp_path)])
    assert result.exit_code == 1 and "sweeper run search_spaces/optim_loss.yaml" in result.stderr


def test_the_paper_scale_races_validate_by_dry_run(tmp_path: Path) -> None:
    """The write-up's scale, for GPU clusters: 128x128 patches, hours per trial, pinned to T4s."""
    from sweeper.spec import load

    for name, configs in (("optim_loss_paper", 25), ("lr_rho_paper", 20)):
        path = SPEC.parent / f"{name}.yaml"
        result = runner.invoke(app, ["run", str(path), "--dry-run", "--results-dir", str(tmp_path)])
        assert result.exit_code == 0, result.output
        assert f"its first round is the {3 * configs} trials above (3 seeds each)" in result.stdout
        assert f"up to 10 seeds ({10 * configs} trials at the most)" in result.stdout
        spec = load(path)
        assert spec.param("patch_size").value >= 128 and spec.param("epochs").value * spec.param(
            "steps_per_epoch").value * spec.param("batch_size").value >= 500_000
        assert (spec.resources.accelerator_type, spec.resources.fallback, spec.race.max) == ("T4", "none", 10)


def test_fallback_none_without_a_t4_refuses_before_making_any_data(tmp_path: Path) -> None:
    """Checked before anything expensive or lasting: no dataset made, no trial, one line."""
    data = tmp_path / "data"
    result = runner.invoke(app, ["run", str(SPEC), "--results-dir", str(tmp_path / "r"), "--data-dir", str(data),
                                 "--set", "sweeper.resources.fallback=none", "--set", "parameters.seed.values=[0]"])
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("sweeper: error:")]
    assert len(errors) == 1 and "the cluster has no T4 GPU and fallback is 'none'" in errors[0]
    assert "sweeper.resources.fallback: cpu" in errors[0]
    assert not (data / "synthetic").exists()  # the built-in data is made only once the trials can run


def test_the_resume_command_repeats_every_option_that_names_the_sweep(tmp_path: Path) -> None:
    """What a lost driver's one line tells the user to run: the same sweep, data, cluster and
    overrides, quoted for a shell."""
    from sweeper.dispatch import RunOptions, resume_command

    options = RunOptions(results_dir=tmp_path / "my results", address="127.0.0.1:6390", max_concurrent=2)
    assert resume_command(SPEC, ["epochs=3", "parameters.seed.values=[0, 1]"], options, allow_huge=True) == (
        f"sweeper run {SPEC} --results-dir '{tmp_path / 'my results'}' --address 127.0.0.1:6390 --max-concurrent 2 "
        "--set epochs=3 --set 'parameters.seed.values=[0, 1]' --yes")
    assert resume_command(SPEC, [], RunOptions()) == f"sweeper run {SPEC}"
