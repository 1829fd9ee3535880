"""Sweeps on a real local Ray: ledger rows, retries, divergence, W&B runs, T4 pinning, resume."""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from model.errors import UserError
from model.files import TMP_SUFFIX
from sweeper.dispatch import RunOptions, console, pin_resources, plan, run, search
from sweeper.spec import Resources, loads
from tests.conftest import ROOT

# Every Ray connection in tests stays on loopback (read by Ray at import time).
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def spec_text(name: str, data: Path, parameters: str, extra: str = "") -> str:
    """A tiny sweep over the test dataset; ``parameters`` is the YAML body of `parameters:`."""
    return f"""
name: {name}
method: grid
metric: {{name: val_psnr, goal: maximize}}
parameters:
{parameters}
  epochs: {{value: 2}}
  steps_per_epoch: {{value: 2}}
  batch_size: {{value: 2}}
  patch_size: {{value: 16}}
{extra}
sweeper:
  dataset: {{dir: {data.dir}, name: {data.name}}}
  resources: {{cpu: 1, gpu: 1, accelerator_type: T4, fallback: cpu}}
  max_concurrent: 2
  max_failures: 1
"""


# ------------------------------------------------------------------ resource pinning (pure)


def test_t4_cluster_pins_every_trial_to_the_t4() -> None:
    res, warning = pin_resources(Resources(), {"CPU": 8, "GPU": 2, "accelerator_type:T4": 1})
    assert res == {"cpu": 1.0, "gpu": 1.0, "accelerator_type:T4": 0.001} and warning is None


def test_no_t4_falls_back_to_cpu_with_one_warning() -> None:
    res, warning = pin_resources(Resources(), {"CPU": 2})
    assert res == {"cpu": 1.0}
    assert "no T4 GPU" in warning and "fallback: cpu" in warning


def test_other_gpu_without_t4_is_not_used_for_a_t4_sweep() -> None:
    res, warning = pin_resources(Resources(), {"CPU": 2, "GPU": 1, "accelerator_type:A100": 1})
    assert res == {"cpu": 1.0} and warning


def test_fallback_none_refuses_listing_the_cluster() -> None:
    from model.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        pin_resources(Resources(fallback="none"), {"CPU": 2.0, "memory": 1e9, "node:127.0.0.1": 1})
    msg = str(info.value)
    assert "fallback is 'none'" in msg and "CPU=2" in msg and "node:" not in msg


def test_gpu_zero_means_cpu_without_warning() -> None:
    assert pin_resources(Resources(gpu=0), {"CPU": 2, "GPU": 1}) == ({"cpu": 1.0}, None)


@pytest.mark.parametrize(("precisions", "flags", "named"), [
    (["mixed_bfloat16"], {"avx2", "fma"}, ["mixed_bfloat16 on this CPU", "no avx512_bf16 or amx_bf16"]),
    (["float32", "mixed_float16", "auto"], {"avx512_bf16"}, ["mixed_float16 on this CPU", "avx512_fp16 or amx_fp16"]),
    (["mixed_float16", "mixed_bfloat16"], set(), ["mixed_bfloat16 and mixed_float16 on this CPU"]),
    (["mixed_bfloat16"], {"amx_bf16"}, None),
    (["mixed_float16"], {"avx512_fp16"}, None),
    (["float32", "auto"], set(), None),  # auto picks float32 on such a CPU: never emulated
])
def test_a_16_bit_precision_this_cpu_emulates_is_named_before_trials_run(precisions, flags, named) -> None:
    from sweeper.dispatch.cluster import emulated_precision_warning

    warning = emulated_precision_warning(precisions, flags)
    if named is None:
        assert warning is None
    else:
        assert warning.startswith("parameters.precision: ") and "\n" not in warning
        assert all(part in warning for part in named) and "precision: auto" in warning


def _instant_trial(psnr: Callable[[dict], float]) -> Callable[[dict, Any], None]:
    """A trainable that reports one epoch straight away, scored ``psnr(params)``: for tests of
    the dispatch (real Ray, Tune and ledger), not of training. Made here rather than defined
    at module level, so Ray pickles it (and ``psnr``) by value for the workers."""

    def instant_trial(config: dict, context: Any) -> None:
        from ray import tune

        from sweeper.records import TrialReport
        from sweeper.space import config_trial

        params, tid = config_trial(config)
        tune.report(TrialReport(trial_id=tid, epoch=1, train_loss=0.1, metrics={
            "val_psnr": psnr(params), "val_ssim": 0.5, "val_mae": 0.05}).to_dict())

    return instant_trial


# ------------------------------------------------------------------ one real sweep


@pytest.fixture(scope="module")
def small_sweep(t4_ray, tiny_data, tmp_path_factory):
    """sgd x {mae, perceptual} x lr {0.001, 1e12}: one ok, one diverged, two errors."""
    results = tmp_path_factory.mktemp("results")
    os.environ["SWEEPER_VGG_WEIGHTS"] = str(results / "no-such-vgg16.h5")  # workers inherit it
    spec = loads(spec_text("small", tiny_data, """
  optimizer: {value: sgd}
  loss: {values: [mae, perceptual]}
  learning_rate: {values: [0.001, 1000000000000.0]}
  precision: {value: auto}
""").replace("max_concurrent: 2", "max_concurrent: 3"))
    # --max-concurrent 2 over the spec's 3: spec.yaml must say what the sweep ran with
    summary = run(spec, RunOptions(results_dir=results, wandb_mode="offline", progress=False, max_concurrent=2))
    return spec, summary, results / "small"


def test_every_trial_is_recorded_with_its_status(small_sweep) -> None:
    from sweeper.ledger import Ledger

    spec, summary, sweep_dir = small_sweep
    trials = Ledger(sweep_dir).trials().set_index(["params_loss", "params_learning_rate"])
    assert summary.dispatched == 4 and len(trials) == 4
    ok = trials.loc[("mae", 0.001)]
    assert ok["status"] == "ok" and math.isfinite(ok["val_psnr"]) and ok["epochs_run"] == 2
    assert 1 <= ok["best_epoch"] <= 2 and ok["images_per_second"] > 0
    assert trials.loc[("mae", 1e12)]["status"] == "diverged"
    assert "non-finite" in trials.loc[("mae", 1e12)]["error"]
    for lr in (0.001, 1e12):
        err = trials.loc[("perceptual", lr)]
        assert err["status"] == "error"
        assert err["error"].startswith("model.errors.ConfigError: ")  # named like a raised one
        assert "no-such-vgg16.h5" in err["error"]  # the ConfigError's own message
        # a config error fails the same way every time: not retried (the OOM and worker-kill
        # tests below check that other failures are)
        assert err["attempts"] == 1 and spec.max_failures == 1


def test_trials_are_pinned_to_the_fake_t4(small_sweep) -> None:
    from sweeper.ledger import Ledger

    spec, summary, sweep_dir = small_sweep
    assert summary.resources == {"cpu": 1.0, "gpu": 1.0, "accelerator_type:T4": 0.001}
    done = Ledger(sweep_dir).trials().query("status != 'error'")
    assert set(done["accelerator"]) == {"T4"}
    assert all(ids in {"0", "1"} for ids in done["gpu_ids"])
    # precision: auto, decided in the worker: a fake T4 is no GPU TensorFlow can see, so the CPU's
    # answer (bf16 only where /proc/cpuinfo names native bf16), recorded beside the asked "auto".
    flags = Path("/proc/cpuinfo").read_text()
    cpu = "mixed_bfloat16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "float32"
    trials = Ledger(sweep_dir).trials()
    assert set(trials["params_precision"]) == {"auto"} and set(trials["dtype_policy"]) == {cpu}
    assert trials["emulation"].isna().all()  # auto never picks a precision this CPU emulates


def test_a_worker_says_how_its_16_bit_convolutions_were_computed(t4_ray) -> None:
    """In a real Ray worker (this machine's CPU), a bf16 trial's placement records whether its
    convolutions accumulate in float32 for want of native bf16 (the ledger's ``emulation``);
    a float32 trial's never does."""
    import ray

    from sweeper import trainable

    @ray.remote(num_cpus=1)
    def placed(precision: str) -> dict:
        return trainable._placement(None, precision).to_dict()

    flags = Path("/proc/cpuinfo").read_text()
    native = "avx512_bf16" in flags or "amx_bf16" in flags
    bf16, f32 = ray.get([placed.remote("mixed_bfloat16"), placed.remote("float32")], timeout=120)
    assert bf16["dtype_policy"] == "mixed_bfloat16" and bf16["accelerator"] == "cpu"
    assert bf16["emulation"] == (None if native else "float32-accumulate")
    assert f32["dtype_policy"] == "float32" and f32["emulation"] is None


def test_epochs_and_spec_are_written(small_sweep) -> None:
    from sweeper.folder import read_spec
    from sweeper.ledger import Ledger

    spec, _, sweep_dir = small_sweep
    ledger = Ledger(sweep_dir)
    ok_id = ledger.trials().query("status == 'ok'")["trial_id"].item()
    epochs = ledger.epochs().query("trial_id == @ok_id")
    assert list(epochs["epoch"]) == [1, 2]
    # each epoch's wall clock, cumulative: rising, and the last is the trial's
    clock = list(epochs["seconds"])
    assert 0 < clock[0] < clock[1] == ledger.trials().set_index("trial_id").loc[ok_id, "seconds"]
    resolved = (sweep_dir / "spec.yaml").read_text()
    assert "tensorflow" in resolved and "accelerator_type:T4" in resolved
    # the spec it ran with: --max-concurrent's 2, not the spec's 3 (what `sweeper status` paces by)
    assert spec.max_concurrent == 3 and read_spec(sweep_dir).max_concurrent == 2
    assert (sweep_dir / "samples" / f"{ok_id}.png").is_file()
    import optuna  # the run itself left the Optuna mirror, before any report or dashboard

    study = optuna.load_study(study_name="small", storage=f"sqlite:///{sweep_dir / 'optuna.db'}")
    assert len(study.trials) == 4


def test_report_and_optuna_mirror_of_a_real_sweep(small_sweep) -> None:
    import optuna

    from sweeper.report import report
    from sweeper.study import mirror_to_optuna

    _, _, sweep_dir = small_sweep
    result = report(sweep_dir)
    assert result.recorded == result.planned == 4 and result.status_counts == {"diverged": 1, "error": 2, "ok": 1}
    assert result.ranking[0].params == {"learning_rate": 0.001, "loss": "mae"} and result.ranking[0].n == 1
    assert sorted(f["status"] for f in result.failures) == ["diverged", "error", "error"]
    assert "Samples: the best and the worst trial" in result.figures  # from the trial's samples/ strip
    assert (sweep_dir / "trials.csv").is_file() and (sweep_dir / "report.html").is_file()
    url, name = mirror_to_optuna(sweep_dir)
    states = sorted(t.state.name for t in optuna.load_study(study_name=name, storage=url).get_trials())
    assert states == ["COMPLETE", "FAIL", "FAIL", "FAIL"]


def test_each_trial_has_an_offline_wandb_run(small_sweep) -> None:
    from sweeper.ledger import Ledger
    from sweeper.tracking import read_run_summary

    _, _, sweep_dir = small_sweep
    ok_id = Ledger(sweep_dir).trials().query("status == 'ok'")["trial_id"].item()
    run_dirs = [d for d in (sweep_dir / "wandb").rglob("offline-run-*") if d.is_dir() and ok_id in d.name]
    assert len(run_dirs) == 1
    summary = read_run_summary(run_dirs[0])
    assert summary["status"] == "ok"
    assert summary["best_val_psnr"] == pytest.approx(
        Ledger(sweep_dir).trials().query("trial_id == @ok_id")["val_psnr"].item())


def test_rerunning_the_same_spec_runs_nothing_again(small_sweep, tmp_path) -> None:
    from sweeper.ledger import Ledger

    spec, _, sweep_dir = small_sweep
    again = run(spec, RunOptions(results_dir=sweep_dir.parent, wandb_mode="offline", progress=False))
    assert again.dispatched == 0 and again.already_done == 4
    assert len(Ledger(sweep_dir).trials()) == 4


def test_a_sweep_shipped_as_a_csv_export_resumes_without_rerunning(small_sweep, tmp_path, caplog) -> None:
    """results/<sweep>/ in the repository holds only trials.csv / epochs.csv."""
    from sweeper.ledger import Ledger

    spec, _, sweep_dir = small_sweep
    shipped = tmp_path / "small"
    shipped.mkdir()
    Ledger(sweep_dir).export_csv(shipped)
    with caplog.at_level(logging.INFO, logger="sweeper"):
        again = run(spec, RunOptions(results_dir=tmp_path, wandb_mode="offline", progress=False))
    assert again.dispatched == 0 and again.already_done == 4 and again.remaining == 0
    assert sorted(Ledger(shipped).done_ids()) == sorted(Ledger(sweep_dir).done_ids())
    assert f"4 trials taken into the ledger from {shipped / 'trials.csv'}" in caplog.messages


def test_bayes_runs_optuna_tpe_into_an_rdb_study(t4_ray, tiny_data, tmp_path) -> None:
    import optuna

    spec = loads(spec_text("bayes", tiny_data, """
  optimizer: {value: rmsprop}
  loss: {value: mae}
  learning_rate: {distribution: log_uniform_values, min: 0.0001, max: 0.01}
  rho: {distribution: uniform, min: 0.8, max: 0.99}
""").replace("method: grid", "method: bayes\nrun_cap: 3"))
    summary = run(spec, RunOptions(results_dir=tmp_path, wandb_mode="disabled", progress=False))
    assert summary.status_counts == {"ok": 3}
    study = optuna.load_study(study_name="bayes", storage=f"sqlite:///{tmp_path / 'bayes' / 'optuna.db'}")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 3
    assert all(0.0001 <= t.params["learning_rate"] <= 0.01 and 0.8 <= t.params["rho"] <= 0.99 for t in complete)


def test_tpe_never_trains_a_trial_twice_and_stops_when_the_space_is_spent(
        t4_ray, tiny_data, tmp_path, monkeypatch) -> None:
    """TPE re-proposes points of a discrete space; each must be trained once, then the search ends."""
    from sweeper import trainable
    from sweeper.ledger import Ledger
    from sweeper.space import finite_ids

    monkeypatch.setattr(trainable, "run_trial", _instant_trial(lambda p: 20.0 + 1000 * p["learning_rate"] + p["rho"]))
    text = spec_text("tpe_small", tiny_data, """
  learning_rate: {values: [0.0001, 0.001, 0.01]}
  rho: {values: [0.8, 0.9]}
""").replace("method: grid", "method: bayes\nrun_cap: 3").replace("epochs: {value: 2}", "epochs: {value: 1}")
    options = RunOptions(results_dir=tmp_path, wandb_mode="disabled", progress=False)
    first = run(loads(text), options)
    assert first.planned == 3 and first.dispatched == 3 and first.remaining == 0 and not first.warnings
    # Resumed with a larger run_cap: TPE, reloading its study, must not retrain the first three.
    spec = loads(text.replace("run_cap: 3", "run_cap: 10"))
    summary = run(spec, options)
    # 6 points, run_cap 10: the 3 others, each once, and no trial left "remaining".
    assert summary.planned == 6 and summary.already_done == 3 and summary.dispatched == 3 and summary.remaining == 0
    assert "run_cap is 10 but the space holds 6 distinct trials; each runs once" in summary.warnings[-1]
    trials = Ledger(tmp_path / "tpe_small").trials()
    assert set(trials["trial_id"]) == finite_ids(spec) and len(trials) == 6
    tune_trials = list((tmp_path / "tpe_small" / "ray").glob("run-*/*/result.json"))
    assert len(tune_trials) == 6  # no Tune trial, in either run, was spent on a repeat
    again = run(spec, options)
    assert again.dispatched == 0 and again.already_done == 6


def test_watchdog_warns_once_per_stall_and_not_while_results_arrive(tmp_path, monkeypatch, caplog) -> None:
    """Real files, a real thread: quiet while a result.json keeps changing, one warning per stall."""
    monkeypatch.setattr(console, "STALL_S", 1.0)
    monkeypatch.setattr(console, "STALL_FACTOR", 1.0)
    monkeypatch.setattr(console, "WATCH_POLL_S", 0.05)
    caplog.set_level(logging.WARNING, logger="sweeper")
    result = tmp_path / "run-001" / "trial_a" / "result.json"
    result.parent.mkdir(parents=True)

    def report_for(seconds: float) -> None:
        end = time.time() + seconds
        while time.time() < end:
            result.write_text(f"{time.time()}\n")
            time.sleep(0.05)

    with console.watchdog(tmp_path / "run-001") as watch:
        report_for(1.5)
        assert watch.warnings == 0, caplog.messages
        time.sleep(2.0)  # a stall
        assert watch.warnings == 1
        report_for(0.5)
        # The 2 s stall now counts as the longest gap seen (it may have been a slow epoch), so
        # a second warning needs a longer one: a hang, which lasts for ever, always gets one.
        time.sleep(3.5)
    assert watch.warnings == 2 and not watch.is_alive()
    warned = [r for r in caplog.records if r.name.startswith("sweeper")]
    assert len(warned) == 2 and all(r.levelno == logging.WARNING for r in warned)
    assert all(r.getMessage().startswith("no trial has reported for ") for r in warned)
    assert "Ray may be stuck. Ctrl-C and run the same command again" in warned[0].getMessage()


def test_watchdog_tells_trials_waiting_for_resources_from_a_stall(tmp_path, monkeypatch, caplog) -> None:
    """Seen on the reference races: a sweep joined to another's cluster, its trial waiting 40
    minutes for a core, warned "no trial has reported for 900 s ...; Ray may be stuck". While
    the driver's note has none running and some waiting, the watchdog says they wait, once,
    and counts the silence from when they start."""
    from sweeper.dispatch.lock import driver_lock, note_trials

    monkeypatch.setattr(console, "STALL_S", 1.0)
    monkeypatch.setattr(console, "STALL_FACTOR", 1.0)
    monkeypatch.setattr(console, "WATCH_POLL_S", 0.05)
    caplog.set_level(logging.WARNING, logger="sweeper")
    result = tmp_path / "ray" / "run-001" / "trial_a" / "result.json"
    result.parent.mkdir(parents=True)
    with driver_lock(tmp_path), console.watchdog(tmp_path / "ray" / "run-001", tmp_path) as watch:
        note_trials(tmp_path, 0, 1)
        time.sleep(2.5)  # waiting for a core, longer than a stall
        assert watch.waits == 1 and watch.warnings == 0, caplog.messages
        note_trials(tmp_path, 1, 0)  # it starts: the silence counts from now
        time.sleep(0.5)
        assert watch.warnings == 0, caplog.messages
        time.sleep(1.5)  # and then it hangs
    assert watch.waits == 1 and watch.warnings == 1 and not watch.is_alive()
    waited, stuck = [r.getMessage() for r in caplog.records if r.name.startswith("sweeper")]
    assert re.fullmatch(r"1 trial waiting to start since 20\S+: the cluster's resources are taken \(by another "
                        r"sweep on it\?\); they start when it frees them", waited), waited
    assert stuck.startswith("no trial has reported for ") and "Ray may be stuck" in stuck


def test_a_stalled_sweep_is_reported_and_still_finishes(t4_ray, tiny_data, tmp_path, monkeypatch, caplog) -> None:
    from sweeper import trainable

    def slow_trial(config, context):  # defined here: Ray pickles it by value for the workers
        import time

        from ray import tune

        from sweeper.records import TrialReport

        time.sleep(4)  # silent, as a stuck trial is
        tune.report(TrialReport(trial_id=config["trial_id"], epoch=1, train_loss=0.1,
                                metrics={"val_psnr": 21.0, "val_ssim": 0.5, "val_mae": 0.05}).to_dict())

    monkeypatch.setattr(trainable, "run_trial", slow_trial)
    monkeypatch.setattr(console, "STALL_S", 1.0)
    monkeypatch.setattr(console, "WATCH_POLL_S", 0.2)
    caplog.set_level(logging.WARNING, logger="sweeper")
    spec = loads(spec_text("stall", tiny_data, "  learning_rate: {value: 0.001}\n").replace(
        "epochs: {value: 2}", "epochs: {value: 1}"))
    summary = run(spec, RunOptions(results_dir=tmp_path, wandb_mode="disabled", progress=False))
    assert summary.status_counts == {"ok": 1}
    err = "\n".join(caplog.messages)
    assert "no trial has reported for " in err and str(tmp_path / "stall" / "ray" / "run-001") in err


def test_status_says_when_a_sweeps_trials_wait_for_cores_another_sweep_holds(t4_ray, tiny_data, tmp_path,
                                                                             monkeypatch, caplog) -> None:
    """Seen on the reference races: optim_loss_race, joined to lr_rho_longer's cluster with
    `--max-concurrent 1` while that one's two trials held both cores, was paced by `sweeper
    status` as if its trial ran ("the next look in about 2.5 h"). The driver notes its trials
    running and waiting to start; status says so, and counts the time from when they start."""
    import threading

    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    from sweeper import trainable
    from sweeper.ledger import Ledger
    from sweeper.records import TrialRow
    from sweeper.space import expand
    from sweeper.status import sweep_status, summary

    monkeypatch.setattr(trainable, "run_trial", _instant_trial(lambda p: 21.0))
    monkeypatch.setattr(summary, "_STARTS_WITHIN", 2.0)
    monkeypatch.setattr(console, "STALL_S", 1.0)  # the watchdog, too, knows they wait (not a stall)
    monkeypatch.setattr(console, "WATCH_POLL_S", 0.1)
    caplog.set_level(logging.WARNING, logger="sweeper")
    spec = loads(spec_text("held", tiny_data, "  learning_rate: {values: [0.001, 0.01]}\n").replace(
        "epochs: {value: 2}", "epochs: {value: 1}"))
    first, second = expand(spec)
    Ledger(tmp_path / "held").record(TrialRow(first.id, "ok", params=dict(first.params), seconds=30.0, epochs_run=1,
                                              metrics={"val_psnr": 21.0, "val_ssim": 0.5, "val_mae": 0.05}))
    other = placement_group([{"CPU": 2}])  # another sweep's trials, holding both cores
    ray.get(other.ready(), timeout=60)
    done: dict[str, Any] = {}
    driver = threading.Thread(target=lambda: done.setdefault("summary", run(spec, RunOptions(
        results_dir=tmp_path, wandb_mode="disabled", progress=False, max_concurrent=1))))
    driver.start()
    try:
        deadline, lines = time.time() + 90, []
        while time.time() < deadline and not (lines and lines[1].endswith("(by another sweep on it?)")):
            time.sleep(0.5)
            lines = sweep_status(tmp_path / "held", tmp_path).splitlines()
        assert lines[1].startswith(f"running now: pid {os.getpid()} "), lines
        assert "1 trial at a time; 0 running, 1 waiting to start since 20" in lines[1], lines
        assert lines[1].endswith(": the cluster's resources are taken (by another sweep on it?)"), lines
        # its 1 trial to go at the recorded 30 s, from when it starts, not from now
        assert lines[3] == ("done about 30 s after its trials start (1 trial at the recorded mean of 30 s, 1 at a "
                            "time; checkpointed epochs counted)"), lines
        time.sleep(0.5)  # the watchdog's next look
        said = [m for m in caplog.messages if "waiting to start" in m or "may be stuck" in m]
        assert len(said) == 1 and said[0].startswith("1 trial waiting to start since 20"), caplog.messages
    finally:
        remove_placement_group(other)
        driver.join(timeout=180)
    assert done["summary"].dispatched == 1 and done["summary"].status_counts == {"ok": 2}  # the ledger's
    assert Ledger(tmp_path / "held").trials()["trial_id"].tolist() == [first.id, second.id]
    after = sweep_status(tmp_path / "held", tmp_path).splitlines()
    assert after[0] == "held: 2/2 trials recorded (ok 2)" and not after[1].startswith("running now"), after


def test_a_sweep_that_started_its_cluster_keeps_it_up_while_a_sweep_joined_to_it_runs(t4_ray, tiny_data, tmp_path,
                                                                                     monkeypatch, caplog) -> None:
    """The reference runs share one machine: lr_rho_longer started its own Ray, optim_loss_race
    joined it with `--address`. When the first ends, Ray shuts its cluster down, and the
    second's trial with it. Done, the driver that started the cluster (this test process, on
    t4_ray) keeps it up while another driver runs on it, and says so."""
    import datetime

    import ray

    from sweeper import trainable
    from sweeper.ledger import Ledger

    joined_spec = _write_spec(tmp_path / "joined.yaml", spec_text("joined", tiny_data, """
  optimizer: {values: [adam, rmsprop]}
  loss: {value: mae}
""").replace("max_concurrent: 2", "max_concurrent: 1").replace("steps_per_epoch: {value: 2}",
                                                               "steps_per_epoch: {value: 100}"))
    joined = subprocess.Popen(
        [sys.executable, "-m", "sweeper.cli", "run", str(joined_spec), "--results-dir", str(tmp_path / "r"),
         "--address", ray.get_runtime_context().gcs_address],
        cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_file(tmp_path / "r" / "joined" / "ray", joined)  # joined, its first Tuner started
        monkeypatch.setattr(trainable, "run_trial", _instant_trial(lambda p: 21.0))
        caplog.set_level(logging.WARNING, logger="sweeper")
        spec = loads(spec_text("first", tiny_data, "  learning_rate: {value: 0.001}\n").replace(
            "epochs: {value: 2}", "epochs: {value: 1}"))
        summary = run(spec, RunOptions(results_dir=tmp_path, wandb_mode="disabled", progress=False))
        returned = datetime.datetime.now(datetime.timezone.utc)
        _, err = joined.communicate(timeout=300)
    finally:
        if joined.poll() is None:
            joined.kill()
    assert joined.returncode == 0, err[-3000:]
    assert summary.status_counts == {"ok": 1}
    others = Ledger(tmp_path / "r" / "joined").trials()
    assert sorted(others["status"]) == ["ok", "ok"]
    # this driver returned only once the joined one had recorded its last trial
    assert max(datetime.datetime.fromisoformat(t) for t in others["finished_at"]) <= returned
    waits = [m for m in caplog.messages if m.startswith("this sweep is done")]
    assert len(waits) == 1 and re.fullmatch(
        r"this sweep is done, but its Ray cluster goes down when it exits, and another driver is still on it "
        r"\(pid \d+ on 127\.0\.0\.1\): keeping it up until it ends \(Ctrl-C stops now\)", waits[0]), caplog.messages


def test_ctrl_c_while_a_done_sweep_keeps_its_cluster_up_ends_it_as_done(t4_ray, tiny_data, tmp_path, monkeypatch,
                                                                       caplog) -> None:
    """A done sweep keeping its cluster up for a joined driver: `sweeper status` says why its
    driver runs on, and Ctrl-C then ends the wait with the sweep done, not "interrupted ...
    resume" (all its trials are in the ledger; a resume would run nothing)."""
    import threading

    import ray

    from sweeper import trainable
    from sweeper.status import sweep_status

    # Another driver on this cluster (a sweep joined with --address is one): a real Ray job.
    other = subprocess.Popen([sys.executable, "-c", "import ray, sys, time; ray.init(address=sys.argv[1]); "
                              "print('joined', flush=True); time.sleep(300)", ray.get_runtime_context().gcs_address],
                             cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    seen: dict[str, Any] = {}

    class _StatusThenCtrlC(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("this sweep is done"):
                threading.Thread(target=self._look_then_stop, daemon=True).start()

        def _look_then_stop(self) -> None:
            deadline = time.time() + 30
            while time.time() < deadline and "its trials are done" not in seen.get("status", ""):
                time.sleep(0.2)
                seen["status"] = sweep_status(tmp_path / "done", tmp_path)
            os.kill(os.getpid(), signal.SIGINT)

    handler = _StatusThenCtrlC()
    logging.getLogger("sweeper").addHandler(handler)
    try:
        assert other.stdout.readline().strip() == "joined"
        monkeypatch.setattr(trainable, "run_trial", _instant_trial(lambda p: 21.0))
        caplog.set_level(logging.WARNING, logger="sweeper")
        spec = loads(spec_text("done", tiny_data, "  learning_rate: {value: 0.001}\n").replace(
            "epochs: {value: 2}", "epochs: {value: 1}"))
        summary = run(spec, RunOptions(results_dir=tmp_path, wandb_mode="disabled", progress=False))
    finally:
        logging.getLogger("sweeper").removeHandler(handler)
        other.kill()
        other.wait()
    assert summary.status_counts == {"ok": 1} and summary.remaining == 0 and not summary.interrupted
    running = seen["status"].splitlines()[1]
    assert re.fullmatch(rf"running now: pid {os.getpid()} on \S+ since \S+, 2 trials at a time; its trials are done: "
                        r"it keeps its Ray cluster up for the driver still on it \(pid \d+ on 127\.0\.0\.1; Ctrl-C "
                        r"stops it\)", running), seen["status"]
    stopped = [m for m in caplog.messages if m.startswith("stop")]  # not "stopping ...: running trials are dropped"
    assert len(stopped) == 1 and re.fullmatch(
        rf"stopped waiting: the Ray cluster goes down now, and with it the trials of the driver still on it "
        rf"\(pid {other.pid} on 127\.0\.0\.1\); each resumes with the command that started it", stopped[0]), stopped


def test_distinct_search_tells_repeats_to_optuna_as_pruned(tiny_data, tmp_path) -> None:
    """The searcher wrapper on a real OptunaSearch and study, driven as Tune drives it."""
    import optuna

    from sweeper.space import config_trial, finite_ids

    spec = loads(spec_text("tpe_unit", tiny_data, """
  learning_rate: {values: [0.0001, 0.001]}
  rho: {values: [0.8, 0.9]}
""").replace("method: grid", "method: bayes\nrun_cap: 4"))
    space = sorted(finite_ids(spec))
    sweep = plan(spec, ())
    searcher, _ = search.search_and_scheduler(spec, sweep, tmp_path, done=[space[0]])  # one trial already recorded
    assert searcher.set_search_properties(None, None, search.param_space(spec, sweep, []))
    proposed = []
    for n in range(4):
        config = searcher.suggest(f"t{n}")
        if not isinstance(config, dict):
            break
        fixed = {"epochs": 2, "steps_per_epoch": 2, "batch_size": 2, "patch_size": 16}  # spec_text's values
        proposed.append(config_trial({**fixed, **config})[1])
        searcher.on_trial_complete(f"t{n}", result={"val_psnr": 20.0 + n})
    assert config == "FINISHED"  # the three new points, then nothing left to propose
    assert sorted(proposed) == space[1:]
    study = optuna.load_study(study_name="tpe_unit", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 3
    assert states.count(optuna.trial.TrialState.PRUNED) == searcher.repeats == len(states) - 3


def test_random_runs_its_pre_drawn_trials_and_resumes_to_nothing(t4_ray, tiny_data, tmp_path) -> None:
    from sweeper.ledger import Ledger
    from sweeper.space import expand

    text = spec_text("rand", tiny_data, """
  optimizer: {values: [adam, rmsprop, sgd]}
  learning_rate: {distribution: log_uniform_values, min: 0.0001, max: 0.01}
""").replace("method: grid", "method: random\nrun_cap: 2").replace("epochs: {value: 2}", "epochs: {value: 1}")
    spec = loads(text)
    summary = run(spec, RunOptions(results_dir=tmp_path, wandb_mode="disabled", progress=False))
    trials = Ledger(tmp_path / "rand").trials()
    assert summary.dispatched == 2 and sorted(trials["trial_id"]) == sorted(t.id for t in expand(spec))
    assert run(loads(text), RunOptions(results_dir=tmp_path, wandb_mode="disabled", progress=False)).dispatched == 0


def test_a_run_on_this_cpu_names_an_emulated_precision_once(t4_ray, tiny_data, tmp_path, monkeypatch) -> None:
    """CPU trials on a private local Ray train here, so the driver reads this CPU's flags
    (made AVX2-only for the test) and warns once before the trials run; not when a GPU trains."""
    import model.runtime
    from sweeper import trainable

    monkeypatch.setattr(trainable, "run_trial", _instant_trial(lambda p: 20.0))
    monkeypatch.setattr(model.runtime, "_cpu_flags", lambda: frozenset({"avx2", "fma"}))
    text = spec_text("emulated", tiny_data, "  precision: {values: [float32, mixed_bfloat16]}\n")
    options = RunOptions(results_dir=tmp_path, wandb_mode="disabled", progress=False)
    on_cpu = run(loads(text.replace("gpu: 1, accelerator_type: T4, fallback: cpu", "gpu: 0")), options)
    assert on_cpu.dispatched == 2 and on_cpu.status_counts == {"ok": 2}
    assert [w for w in on_cpu.warnings if "precision" in w] == [
        "parameters.precision: mixed_bfloat16 on this CPU, which has no avx512_bf16 or amx_bf16 in /proc/cpuinfo: "
        "16-bit convolutions compute in float32 here and round once (native hardware's arithmetic), at about "
        "float32's speed, not faster (bf16 0.92x, fp16 0.87x in benchmarks/README.md); "
        "use precision: auto (float32 on such a CPU) or a machine that has them"]
    on_t4 = run(loads(text.replace("name: emulated", "name: emulated_t4")), options)
    assert on_t4.dispatched == 2 and on_t4.resources.get("gpu") == 1.0 and not on_t4.warnings


def test_a_long_grid_runs_as_consecutive_tuners_each_trial_once(t4_ray, tiny_data, tmp_path, monkeypatch) -> None:
    """Ray Tune keeps every trial of a Tuner in the driver, so long grids run in batches.

    What is under test is the dispatch (real Ray, real Tune, real ledger), not training: the
    trainable reports one epoch straight away, so three Tuners do not pay for TensorFlow.
    """
    from sweeper import trainable
    from sweeper.ledger import Ledger
    from sweeper.space import expand

    monkeypatch.setattr(trainable, "run_trial", _instant_trial(lambda p: 20.0 + 1000 * p["learning_rate"]))
    monkeypatch.setattr(search, "TRIALS_PER_TUNER", 2)
    spec = loads(spec_text("batched", tiny_data, """
  learning_rate: {values: [0.0001, 0.0002, 0.0003, 0.0004, 0.0005]}
""").replace("epochs: {value: 2}", "epochs: {value: 1}"))
    summary = run(spec, RunOptions(results_dir=tmp_path, wandb_mode="disabled", progress=False))
    assert summary.dispatched == 5 and summary.status_counts == {"ok": 5} and summary.remaining == 0
    trials = Ledger(tmp_path / "batched").trials()
    assert sorted(trials["trial_id"]) == sorted(t.id for t in expand(spec))
    assert trials.set_index("params_learning_rate")["val_psnr"].round(6).to_dict() == {
        0.0001: 20.1, 0.0002: 20.2, 0.0003: 20.3, 0.0004: 20.4, 0.0005: 20.5}
    runs = sorted((tmp_path / "batched" / "ray").glob("run-*"))
    assert [r.name for r in runs] == ["run-001", "run-002", "run-003"]
    per_run = [{d.name.split("_")[0] for d in r.iterdir() if (d / "result.json").is_file()} for r in runs]
    assert [len(ids) for ids in per_run] == [2, 2, 1]
    assert set().union(*per_run) == set(trials["trial_id"])


def test_bayes_and_asha_sweeps_stay_in_one_tuner(monkeypatch) -> None:
    from sweeper.spec import load

    monkeypatch.setattr(search, "TRIALS_PER_TUNER", 2)
    grid = load(ROOT / "search_spaces" / "lr_rho.yaml")
    sweep = plan(grid, set())
    todo = sweep.todo
    assert [len(b) for b in search.batches(grid, sweep)] == [2] * 20
    asha = load(ROOT / "search_spaces" / "lr_rho.yaml", ("early_terminate={type: hyperband, min_iter: 1}",))
    assert [len(b) for b in search.batches(asha, plan(asha, set()))] == [40]
    # ASHA meets the trials in a parameter-blind order (by id), not the grid's sorted one.
    (asha_batch,) = search.batches(asha, plan(asha, set()))
    assert [t.id for t in asha_batch] == sorted(t.id for t in todo) != [t.id for t in todo]
    bayes = load(ROOT / "search_spaces" / "lr_rho_bayes.yaml")
    assert [len(b) for b in search.batches(bayes, plan(bayes, set()))] == [0]
    # status counts the Tuners (each waits for all its trials) as the run splits them
    assert search.tuner_sizes(grid, 40) == [2] * 20 and search.tuner_sizes(grid, 5) == [2, 2, 1]
    assert search.tuner_sizes(asha, 40) == [40] and search.tuner_sizes(bayes, 30) == [30]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_outside_a_tuner_sets_the_stop_flag_and_does_not_kill_the_driver(signum, caplog) -> None:
    """Between two Tuners Ray's SIGUSR1 handler is not installed; the driver must survive.
    SIGTERM stops as Ctrl-C does (not ray.init's sys.exit); a second one stops at once."""
    stop = console.StopFlag()
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)
    before = [signal.getsignal(s) for s in handled]
    with caplog.at_level(logging.WARNING, logger="sweeper"), console.graceful_stop(stop):
        os.kill(os.getpid(), signum)
        time.sleep(0.2)  # signal handlers run between bytecodes of the main thread
        assert stop.is_set()
        name = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
        assert [r.getMessage().split(":")[0] for r in caplog.records] == [f"stopping after {name}"]
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signum)
            time.sleep(0.2)
    # whatever handled the signals before (pytest's, or an earlier Tune fit's) is back
    assert [signal.getsignal(s) for s in handled] == before


# ------------------------------------------------------------------ CLI subprocesses


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "WANDB_MODE": "disabled", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", **extra}
    env.pop("RAY_ADDRESS", None)
    return env


def _write_spec(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_two_node_cluster_every_trial_lands_on_the_t4_node(tiny_data, tmp_path) -> None:
    """A CPU-only head plus a node with 2 fake GPUs and the T4 resource; `sweeper run --address`."""
    import ray
    from ray.cluster_utils import Cluster

    from sweeper.ledger import Ledger

    ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 0})
    t4 = cluster.add_node(num_cpus=2, num_gpus=2, resources={"accelerator_type:T4": 1})
    try:
        cluster.wait_for_nodes()
        spec = _write_spec(tmp_path / "two.yaml", spec_text("two", tiny_data, """
  optimizer: {values: [adam, rmsprop]}
  loss: {value: mae}
""").replace("epochs: {value: 2}", "epochs: {value: 1}"))
        proc = subprocess.run(
            [sys.executable, "-m", "sweeper.cli", "run", str(spec), "--results-dir", str(tmp_path / "r"),
             "--address", cluster.address],
            cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        trials = Ledger(tmp_path / "r" / "two").trials()
        assert len(trials) == 2 and set(trials["status"]) == {"ok"}
        assert set(trials["node"]) == {t4.node_id}
        assert set(trials["accelerator"]) == {"T4"}
    finally:
        cluster.shutdown()


def _three_trial_sweep(name: str, tiny_data, tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """A 3-trial grid run one trial at a time: (spec path, results dir, the `sweeper run` command)."""
    spec_path = _write_spec(tmp_path / f"{name}.yaml", spec_text(name, tiny_data, """
  optimizer: {values: [adam, rmsprop, sgd]}
  loss: {value: mae}
""").replace("max_concurrent: 2", "max_concurrent: 1"))
    results = tmp_path / "r"
    return spec_path, results, [sys.executable, "-m", "sweeper.cli", "run", str(spec_path), "--results-dir", str(results)]


def _start_three_trial_driver(name: str, tiny_data, tmp_path: Path, *, capture: bool = False):
    """`sweeper run` of the 3-trial grid as a subprocess in its own session, like a shell job.
    Returns (spec path, results dir, command, process)."""
    spec_path, results, cmd = _three_trial_sweep(name, tiny_data, tmp_path)
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    driver = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=out, stderr=out, text=True, start_new_session=True)
    return spec_path, results, cmd, driver


def _wait_for_file(marker: Path, driver: subprocess.Popen) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not marker.exists() and driver.poll() is None:
        time.sleep(0.05)
    assert driver.poll() is None, "the sweep finished before it could be interrupted"


def _rerun_finishes_every_trial(cmd: list[str], sweep_dir: Path, spec_path: Path) -> Any:
    """Run ``cmd`` again (the resume) and check it succeeds with every trial of the spec in the
    ledger exactly once; returns the ledger's trials."""
    from sweeper.ledger import Ledger
    from sweeper.space import expand

    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = Ledger(sweep_dir).trials()
    assert sorted(trials["trial_id"]) == sorted(t.id for t in expand(loads(spec_path.read_text())))
    return trials


def _reap(driver: subprocess.Popen) -> None:
    """Hygiene: kill whatever of that Ray outlived its driver, in the driver's session."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(driver.pid, signal.SIGKILL)


@pytest.mark.parametrize("moment", ["before_the_first_trial_ends", "mid_sweep"])
def test_kill_9_of_the_driver_then_resume_runs_every_trial_exactly_once(tiny_data, tmp_path, moment) -> None:
    from sweeper.ledger import Ledger

    spec_path, results, cmd, driver = _start_three_trial_driver("kill", tiny_data, tmp_path)
    # Before: Ray Tune has started (its run folder exists) but no trial is in the ledger yet.
    # Mid-sweep: the first trial has just been committed to the ledger.
    _wait_for_file(results / "kill" / ("ray" if moment == "before_the_first_trial_ends" else "trials.parquet"), driver)
    os.kill(driver.pid, signal.SIGKILL)  # the driver only; Ray's own processes share its fate
    driver.wait(timeout=60)
    time.sleep(2)
    _reap(driver)
    first = set(Ledger(results / "kill").trials()["trial_id"])
    assert (1 <= len(first) < 3) if moment == "mid_sweep" else not first

    _rerun_finishes_every_trial([*cmd, "--resume"], results / "kill", spec_path)
    second_run = {p.name.split("_")[0] for p in (results / "kill" / "ray").glob("run-002/*") if p.is_dir()}
    assert not (second_run & first), "a trial already in the ledger was dispatched again"


@pytest.mark.parametrize("how", ["ctrl_c_to_the_job", "sigint_to_sweeper_run", "sigterm_to_sweeper_run"])
def test_ctrl_c_stops_cleanly_says_how_to_resume_and_loses_nothing(tiny_data, tmp_path, how) -> None:
    """A terminal's Ctrl-C reaches the whole job; ``kill -INT``/``kill -TERM`` of the
    ``sweeper run`` pid (``timeout``, a process manager) reaches it alone: all stop the same way."""
    from sweeper.ledger import Ledger

    spec_path, results, cmd, driver = _start_three_trial_driver("intr", tiny_data, tmp_path, capture=True)
    _wait_for_file(results / "intr" / "trials.parquet", driver)
    signum = signal.SIGTERM if how == "sigterm_to_sweeper_run" else signal.SIGINT
    (os.killpg if how == "ctrl_c_to_the_job" else os.kill)(driver.pid, signum)
    out, err = driver.communicate(timeout=180)
    _reap(driver)
    assert driver.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "Tuner.restore" not in err
    name = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
    # once: the one signal is passed on to the driver once, whoever it reached
    stops = [line for line in err.splitlines() if line.startswith("sweeper: warning: stopping after")]
    assert [line.split(":")[2] for line in stops] == [f" stopping after {name}"], err[-3000:]
    assert f"resume with `sweeper run {spec_path} --results-dir {results}`" in err  # every option given
    first = Ledger(results / "intr").trials()
    assert 1 <= len(first) < 3 and set(first["status"]) == {"ok"}  # no stopped trial recorded as a result
    assert f"interrupted: {len(first)} of 3 trials in the ledger (ok {len(first)})" in err
    assert (first["epochs_run"] == 2).all()

    if how == "ctrl_c_to_the_job":  # the resume is the same whichever way the stop came
        assert set(_rerun_finishes_every_trial(cmd, results / "intr", spec_path)["status"]) == {"ok"}


def test_a_trial_cut_short_resumes_from_its_checkpoint_on_the_rerun(tiny_data, tmp_path) -> None:
    """kill -9 of `sweeper run` and all its Ray (as a session's end does) while the first trial,
    really training, is held after epoch 1. The rerun goes on after that epoch instead of
    training it again: the trial's first report is the checkpoint's replay (the first attempt's
    own timings), the ledger has each epoch once, its seconds count both attempts, and no
    checkpoint is left."""
    from sweeper.dispatch.results import result_lines
    from sweeper.ledger import Ledger
    from sweeper.space import expand

    spec_path, results, cmd = _three_trial_sweep("resume", tiny_data, tmp_path)
    grid = expand(loads(spec_path.read_text()))  # the order the grid runs them in
    ids = [t.id for t in grid]
    hold = tmp_path / "hold"
    hold.write_text(ids[0])
    sweep = results / "resume"
    status = [sys.executable, "-m", "sweeper.cli", "status", str(sweep)]
    env = _env(PYTHONPATH=os.pathsep.join([str(ROOT / "tests" / "held_epoch"), str(ROOT)]),
               SWEEPER_TEST_HOLD_EPOCH=str(hold))
    driver = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        _wait_for_a_report(driver, sweep, ids[0])
        assert driver.poll() is None, driver.communicate()[1][-3000:]
        assert (sweep / "checkpoints" / f"{ids[0]}.npz").is_file()
        shown = subprocess.run(status, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
        assert (f"in progress or cut short (checkpointed): optimizer={grid[0].params['optimizer']} at epoch 1/2"
                in shown.stdout.splitlines()), shown.stdout + shown.stderr
        # `sweeper run` (it holds the sweep's lock) is named, with the concurrency it runs at
        assert shown.stdout.splitlines()[1].startswith(f"running now: pid {driver.pid} on "), shown.stdout
        assert shown.stdout.splitlines()[1].endswith(", 1 trial at a time"), shown.stdout
    finally:
        _reap(driver)  # the driver, its raylet and the held trial's worker, all at once
    driver.wait(timeout=60)
    first = result_lines(next(sweep.glob(f"ray/run-001/{ids[0]}_*/result.json")))
    assert [r["epoch"] for r in first] == [1]
    hold.unlink()

    trials = _rerun_finishes_every_trial(cmd, sweep, spec_path)
    second = result_lines(next(sweep.glob(f"ray/run-002/{ids[0]}_*/result.json")))
    assert [r["epoch"] for r in second] == [1, 2]
    replayed = ("images_per_second", "seconds", "val_psnr", "train_loss")
    assert {k: second[0][k] for k in replayed} == {k: first[0][k] for k in replayed}  # not trained again
    row = trials.set_index("trial_id").loc[ids[0]]
    assert row["status"] == "ok" and row["epochs_run"] == 2
    assert row["seconds"] == second[-1]["seconds"] > first[0]["seconds"]
    epochs = Ledger(sweep).epochs()
    mine = epochs[epochs["trial_id"] == ids[0]].sort_values("epoch")
    assert list(mine["epoch"]) == [1, 2]
    # epoch 1's clock is the first attempt's (replayed from the checkpoint), epoch 2's the rerun's
    assert list(mine["seconds"]) == [first[0]["seconds"], second[-1]["seconds"]]
    assert not list((sweep / "checkpoints").glob("*.npz"))
    shown = subprocess.run(status, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and "in progress" not in shown.stdout, shown.stdout + shown.stderr
    assert "running now" not in shown.stdout, shown.stdout


def _quick_trial_env(epoch_s: float, **extra: str) -> dict[str, str]:
    """`sweeper run`'s environment with trials that sleep ``epoch_s`` an epoch instead of training
    (tests/quick_trial/sitecustomize.py), and a GCS that declares a silent node dead after 1.5 s
    of missed health checks instead of 15 s."""
    return _env(PYTHONPATH=os.pathsep.join([str(ROOT / "tests" / "quick_trial"), str(ROOT)]),
                SWEEPER_TEST_EPOCH_S=str(epoch_s), RAY_health_check_period_ms="500",
                RAY_health_check_failure_threshold="3", **extra)


def _hold_the_last_trial(name: str, tiny_data, tmp_path: Path):
    """`sweeper run` of the 3-trial grid on CPU with quick trials (own session, output captured),
    returned once the last trial is held mid-trial after its first epoch. Returns (spec path,
    results dir, command, trial ids in grid order, the hold file, the sweep folder, process)."""
    from sweeper.space import expand

    spec_path, results, cmd = _three_trial_sweep(name, tiny_data, tmp_path)
    # CPU trials: no fallback warning, so the error is the only line on stderr
    spec_path.write_text(spec_path.read_text().replace("gpu: 1, accelerator_type: T4, fallback: cpu", "gpu: 0"))
    ids = [t.id for t in expand(loads(spec_path.read_text()))]  # the order the grid runs them in
    hold = tmp_path / "hold"
    hold.write_text(ids[-1])
    sweep = results / name
    driver = subprocess.Popen(cmd, cwd=ROOT, env=_quick_trial_env(0.5, SWEEPER_TEST_HOLD=str(hold)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for_a_report(driver, sweep, ids[-1])
    return spec_path, results, cmd, ids, hold, sweep, driver


def _wait_for_a_report(driver: subprocess.Popen, sweep: Path, tid: str) -> None:
    """Until trial ``tid`` has reported an epoch in the sweep's first Ray run, or the driver ended."""
    deadline = time.monotonic() + 300  # a hang guard
    while (time.monotonic() < deadline and driver.poll() is None
           and not any(p.stat().st_size for p in sweep.glob(f"ray/run-001/{tid}_*/result.json"))):
        time.sleep(0.05)


def _release_and_rerun(cmd: list[str], ids: list[str], hold: Path, sweep: Path) -> None:
    """Let held trials go and run ``cmd`` again: every trial is in the ledger exactly once and
    only the held one (absent from the ledger) ran again."""
    from sweeper.ledger import Ledger

    hold.unlink()
    again = subprocess.run(cmd, cwd=ROOT, env=_quick_trial_env(0.5), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    trials = Ledger(sweep).trials()
    assert sorted(trials["trial_id"]) == sorted(ids)  # every trial, exactly once
    second_run = {p.name.split("_")[0] for p in (sweep / "ray").glob("run-002/*") if p.is_dir()}
    assert second_run == {ids[-1]}  # only the trial the ledger lacked ran again


def test_a_killed_driver_is_blamed_even_when_its_raylet_looked_dead_first() -> None:
    """The kernel sends Ray's parent-death signal to the raylet before a killed driver becomes
    waitable: for a moment the raylet is gone and the driver looks alive (CI saw kill -9 of the
    driver reported as the raylet's death). A signal this process did not send names the driver;
    the SIGKILL the supervisor sends to a driver that outlived its node does not."""
    from sweeper.dispatch.cluster import DriverNode
    from sweeper.dispatch.supervisor import _Watch

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a raylet that has died (its pid reaped)
    driver = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        watch = _Watch()
        watch.node = DriverNode(ip="127.0.0.1", raylet_pid=gone.pid)
        watch.check(driver)
        assert watch.dead == "the Ray node at 127.0.0.1 died (raylet gone)"  # what the window shows
        assert watch.killed_from_outside(-signal.SIGKILL) and watch.killed_from_outside(-signal.SIGTERM)
        assert not watch.killed_from_outside(1)  # Ray's core ends a driver whose raylet died: exit 1
        assert not watch.killed_from_outside(-signal.SIGABRT)
        watch.end(driver)  # the supervisor's own kill after GRACE_S
        assert driver.wait(timeout=30) == -signal.SIGKILL and not watch.killed_from_outside(driver.returncode)
    finally:
        driver.kill()
        driver.wait()


@pytest.mark.parametrize("victim", ["raylet", "driver"])
def test_the_drivers_own_node_dying_is_one_line_and_the_rerun_runs_each_trial_once(victim, tiny_data,
                                                                                  tmp_path) -> None:
    """kill -9 of the raylet of the local Ray `sweeper run` started, or of the driver process
    itself, while the last of three trials is held mid-trial. Ray ends a driver whose raylet
    died (exit 1 from its C++ core at its next use of the dead node, which no Python handler
    sees); the command's own process says what died in one line, exits 75 and leaves the
    ledger as it was; the same command then runs the rest, each trial once."""
    import psutil

    from sweeper.dispatch import EXIT_DRIVER_LOST
    from sweeper.ledger import Ledger

    spec_path, results, cmd, ids, hold, sweep, driver = _hold_the_last_trial(f"lost{victim}", tiny_data, tmp_path)
    try:
        family = psutil.Process(driver.pid).children(recursive=True)
        if victim == "raylet":
            victims = [p for p in family if p.name() == "raylet"]  # the driver's own node
            what = "the Ray node at 127.0.0.1 died (raylet gone)"
        else:
            victims = [p for p in family if "sweeper.dispatch" in " ".join(p.cmdline())]
            what = f"the sweep's driver (pid {victims[0].pid if victims else '?'}) was killed by SIGKILL"
        assert len(victims) == 1 and driver.poll() is None, family  # its last trial held
        victims[0].kill()
        out, err = driver.communicate(timeout=300)
    finally:
        _reap(driver)
    first = Ledger(sweep).trials()
    assert driver.returncode == EXIT_DRIVER_LOST, err[-3000:]
    assert "Traceback" not in err and "Traceback" not in out
    assert sorted(first["trial_id"]) == sorted(ids[:-1]) and set(first["status"]) == {"ok"}  # the held one is not
    assert err.strip().splitlines() == [
        f"sweeper: error: {what}; 2 of 3 trials are in the ledger (ok 2), "
        f"nothing recorded is lost; resume with `sweeper run {spec_path} --results-dir {results}`; "
        f"Ray's account: {sweep / 'driver.log'}"]
    _release_and_rerun(cmd, ids, hold, sweep)


@pytest.mark.parametrize(("passed_on", "said"), [
    ((), "stopped at once by a stop signal sent to the driver itself"),
    # one SIGTERM that lands inside ray.init, whose own handler exits at once
    ((signal.SIGTERM,), "stopped at once by SIGTERM while its Ray started"),
    ((signal.SIGINT, signal.SIGINT), "stopped at once by a second Ctrl-C"),
    ((signal.SIGINT, signal.SIGTERM), "stopped at once by a second SIGTERM"),
])
def test_a_driver_stopped_at_once_is_said_to_be_stopped_by_what_stopped_it(passed_on, said) -> None:
    from sweeper.dispatch.supervisor import _stopped_at_once

    assert _stopped_at_once(passed_on) == said


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_while_the_driver_starts_is_neither_lost_nor_a_lost_driver(tiny_data, tmp_path, signum) -> None:
    """SIGINT or SIGTERM to ``sweeper run`` the moment its driver process exists (its Python
    still starting): the driver takes it once it can (it was held, not lost, and not a crash)
    and stops before any trial starts: exit 130, the warning and the resume command."""
    import psutil

    from sweeper.dispatch import EXIT_INTERRUPTED

    spec_path, results, cmd, driver = _start_three_trial_driver("early", tiny_data, tmp_path, capture=True)
    try:
        deadline = time.monotonic() + 120
        while not psutil.Process(driver.pid).children() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(driver.pid, signum)
        out, err = driver.communicate(timeout=120)
    finally:
        _reap(driver)
    assert driver.returncode == EXIT_INTERRUPTED, err[-3000:]
    assert "Traceback" not in err and "Traceback" not in out
    name = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
    assert err.strip().splitlines() == [
        f"sweeper: warning: stopping after {name}: running trials are dropped (they re-run on resume), finished "
        f"ones are in the ledger; {name} again stops at once",
        f"sweeper: interrupted: 0 of 3 trials in the ledger (none); resume with `sweeper run {spec_path} "
        f"--results-dir {results}`"]
    assert not (results / "early" / "ray").exists()  # no Tuner started


def test_a_second_ctrl_c_stops_at_once_in_one_line_that_says_how_to_resume(tiny_data, tmp_path) -> None:
    """Ctrl-C while the last trial is held mid-trial (so the graceful stop is still waiting on
    it), then Ctrl-C again: exit 130 at once, the graceful stop's warning then one line with
    the ledger's count and the resume command, no traceback; the rerun runs the held trial only."""
    from sweeper.dispatch import EXIT_INTERRUPTED
    from sweeper.ledger import Ledger

    spec_path, results, cmd, ids, hold, sweep, driver = _hold_the_last_trial("twice", tiny_data, tmp_path)
    try:
        assert driver.poll() is None, "the sweep ended before its last trial was held"
        os.killpg(driver.pid, signal.SIGINT)  # as a shell's Ctrl-C: the whole foreground job
        time.sleep(1.0)
        os.killpg(driver.pid, signal.SIGINT)
        out, err = driver.communicate(timeout=300)
    finally:
        _reap(driver)
    assert driver.returncode == EXIT_INTERRUPTED, err[-3000:]
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.strip().splitlines()
    assert lines[0].startswith("sweeper: warning: stopping after Ctrl-C"), lines
    assert lines[-1] == (
        "sweeper: error: stopped at once by a second Ctrl-C; 2 of 3 trials are in the ledger (ok 2), nothing "
        f"recorded is lost; resume with `sweeper run {spec_path} --results-dir {results}`"), lines
    assert sorted(Ledger(sweep).trials()["trial_id"]) == sorted(ids[:-1])
    _release_and_rerun(cmd, ids, hold, sweep)


def test_a_corrupt_ledger_is_set_aside_and_rebuilt_from_ray_or_rerun(t4_ray, tiny_data, tmp_path, caplog) -> None:
    import shutil

    from sweeper.ledger import Ledger, LedgerError

    spec = loads(spec_text("corrupt", tiny_data, """
  optimizer: {values: [adam, sgd]}
  loss: {value: mae}
"""))
    options = RunOptions(results_dir=tmp_path, wandb_mode="disabled", progress=False)
    run(spec, options)
    sweep_dir = tmp_path / "corrupt"
    before = Ledger(sweep_dir).trials().set_index("trial_id")
    trials_file = sweep_dir / "trials.parquet"
    trials_file.write_bytes(trials_file.read_bytes()[:-30])  # torn: a crash, a full disk, bit rot
    with pytest.raises(LedgerError, match="sets it aside"):
        Ledger(sweep_dir).trials()

    with caplog.at_level(logging.WARNING, logger="sweeper"):
        again = run(spec, options)  # every trial finished in ray/: recovered, none re-run
    assert (again.recovered, again.dispatched) == (2, 0)
    assert any("unreadable, moved to trials.parquet.unreadable-" in m for m in caplog.messages)
    assert len(list(sweep_dir.glob("trials.parquet.unreadable-*"))) == 1  # kept, never deleted
    after = Ledger(sweep_dir).trials().set_index("trial_id")
    assert sorted(after.index) == sorted(before.index)
    assert after["val_psnr"].to_dict() == pytest.approx(before["val_psnr"].to_dict())
    assert len(Ledger(sweep_dir).epochs()) == 4

    (sweep_dir / "epochs.parquet").write_bytes(b"PAR1 not really")
    shutil.rmtree(sweep_dir / "ray")  # nothing to recover from: the trials run again
    third = run(spec, options)
    assert (third.recovered, third.dispatched) == (0, 2)
    assert sorted(Ledger(sweep_dir).trials()["trial_id"]) == sorted(before.index)


def _is_trial(proc: Any) -> bool:
    """Whether ``proc`` is a Ray worker running a trial (Tune titles it ray::ImplicitFunc)."""
    import psutil

    try:
        return "ImplicitFunc" in " ".join(proc.cmdline())
    except psutil.Error:
        return False


def _kill_once_seen(find: Callable[[], Any], victim: Callable[[Any], Any], settle_s: float, guard_s: float,
                    killed: list[int]) -> None:
    """Poll ``find`` until it returns a process, wait ``settle_s`` (into the trial), then kill -9
    ``victim(found)`` and append its pid to ``killed``; give up after ``guard_s`` (a hang guard)."""
    import psutil

    deadline = time.monotonic() + guard_s
    while time.monotonic() < deadline:
        try:
            found = find()
        except psutil.Error:
            found = None
        if found is not None:
            time.sleep(settle_s)
            target = victim(found)
            try:
                target.kill()
            except psutil.Error:
                continue
            killed.append(target.pid)
            return
        time.sleep(0.1)


def test_a_worker_killed_mid_trial_is_retried_and_the_sweep_finishes(t4_ray, tiny_data, tmp_path) -> None:
    import threading

    import psutil

    from sweeper.ledger import Ledger

    spec = loads(spec_text("workerkill", tiny_data, """
  optimizer: {value: adam}
  loss: {values: [mae, mse]}
""").replace("max_concurrent: 2", "max_concurrent: 1"))
    # Ray's workers are this process's grandchildren (via the raylet); a trial's is titled
    # ray::ImplicitFunc. Kill -9 it mid-trial, as a dying node or the OOM killer would. Not one
    # an earlier test's sweep left on the shared cluster, still exiting under its old title:
    # killing that one would leave this sweep's trials alone (CI saw attempts [1, 1]).
    before = {p.pid for p in psutil.Process().children(recursive=True) if _is_trial(p)}

    def first_trial_worker() -> psutil.Process | None:
        return next((p for p in psutil.Process().children(recursive=True)
                     if p.pid not in before and _is_trial(p)), None)

    killed: list[int] = []
    killer = threading.Thread(target=_kill_once_seen, args=(first_trial_worker, lambda p: p, 1.0, 120, killed),
                              daemon=True)
    killer.start()
    summary = run(spec, RunOptions(results_dir=tmp_path, wandb_mode="disabled", progress=False))
    killer.join(timeout=5)
    assert killed, "no trial worker was seen to kill"
    trials = Ledger(tmp_path / "workerkill").trials()
    assert summary.dispatched == 2 and len(trials) == 2
    assert set(trials["status"]) == {"ok"}, trials[["status", "error"]]
    assert sorted(trials["attempts"]) == [1, 2]  # the killed trial ran again, once
    assert (trials["epochs_run"] == 2).all()


_FAKE_KEY = "sweeperfakekey" + "0123456789abcdefghijklmnop"  # 40 chars, a well-formed W&B key


@pytest.fixture(scope="module")
def cli_sweep(tiny_data, tmp_path_factory):
    """`sweeper run`, `report` and `status` as subprocesses on a 2-trial grid, one trial of which
    runs out of memory, with a W&B API key in the environment and W&B offline. One sweep serves
    the out-of-memory and the secrets tests: each subprocess sweep costs a Ray start and
    TensorFlow imports in fresh workers. Returns (results dir, [run, report, status] processes)."""
    tmp = tmp_path_factory.mktemp("cli_sweep")
    spec_path = _write_spec(tmp / "oom.yaml", spec_text("oom", tiny_data, """
  optimizer: {value: adam}
  loss: {values: [mae, oom]}
"""))
    results = tmp / "r"
    # tests/fault_oom/sitecustomize.py registers the `oom` loss in the driver and every worker.
    env = _env(WANDB_API_KEY=_FAKE_KEY, WANDB_MODE="offline",
               PYTHONPATH=os.pathsep.join([str(ROOT / "tests" / "fault_oom"), str(ROOT)]))
    procs = [
        subprocess.run([sys.executable, "-m", "sweeper.cli", *args, "--results-dir", str(results)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        for args in (["run", str(spec_path)], ["report"], ["status"])
    ]
    return results, procs


def test_a_wandb_api_key_never_reaches_what_the_sweeper_writes(cli_sweep) -> None:
    results, procs = cli_sweep
    for proc in procs:
        assert proc.returncode == 0, proc.stderr[-3000:]
    written = [p for p in (results / "oom").rglob("*") if p.is_file()]
    assert any(p.name == "report.html" for p in written) and any(p.suffix == ".wandb" for p in written)
    leaks = [str(p) for p in written if _FAKE_KEY.encode() in p.read_bytes()]
    assert not leaks, leaks  # ledger, spec.yaml, reports, Ray's and W&B's files alike
    assert not any(_FAKE_KEY in text for proc in procs for text in (proc.stdout, proc.stderr))


def test_a_trial_out_of_memory_is_recorded_with_its_message_and_others_finish(cli_sweep) -> None:
    from sweeper.ledger import Ledger

    results, (run_proc, _, _) = cli_sweep
    assert run_proc.returncode == 0, run_proc.stderr[-3000:]
    trials = Ledger(results / "oom").trials().set_index("params_loss")
    assert trials.loc["mae", "status"] == "ok"
    oom = trials.loc["oom"]
    assert oom["status"] == "error" and oom["attempts"] == 2  # retried once (max_failures: 1), then recorded
    assert "out of memory training batch_size=2 x 16x16 patches" in oom["error"]
    assert "lower batch_size or patch_size" in oom["error"] and "OOM when allocating" in oom["error"]


def test_the_local_ray_the_sweeper_starts_listens_on_loopback_only() -> None:
    code = """
import json, psutil
from sweeper.dispatch import connect
connect(None)
me = psutil.Process()
ips = sorted({c.laddr.ip for p in [me, *me.children(recursive=True)]
              for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN})
print(json.dumps(ips))
"""
    env = _env()
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")  # what a user's shell has: the sweeper sets it
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=180, start_new_session=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import ipaddress
    import json

    ips = json.loads(proc.stdout.strip().splitlines()[-1])
    addresses = [ipaddress.ip_address(ip) for ip in ips]
    # GCS, raylet, object manager, agents: none on 0.0.0.0 or the machine's routable address.
    assert addresses and all((getattr(a, "ipv4_mapped", None) or a).is_loopback for a in addresses), ips


def test_status_reads_progress_from_the_ledger(small_sweep) -> None:
    from typer.testing import CliRunner

    from sweeper.cli import app

    _, _, sweep_dir = small_sweep
    result = CliRunner().invoke(app, ["status", str(sweep_dir)])
    assert result.exit_code == 0, result.output
    assert "small: 4/4 trials recorded (diverged 1, error 2, ok 1)" in result.stdout
    assert "remaining: 0" in result.stdout and "best val_psnr" in result.stdout


def test_hyperband_maps_to_asha_and_bayes_to_optuna_tpe(tmp_path) -> None:
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from sweeper.spec import load

    spec = load(ROOT / "search_spaces" / "lr_rho_bayes.yaml", ("epochs=4",))
    searcher, scheduler = search.search_and_scheduler(spec, plan(spec, ()), tmp_path)
    assert isinstance(scheduler, ASHAScheduler) and isinstance(searcher.inner, OptunaSearch)
    assert scheduler._time_attr == "epoch" and scheduler._max_t == 4
    assert scheduler._reduction_factor == spec.early_terminate.eta
    assert min(milestone for milestone, _ in scheduler._brackets[0]._rungs) == spec.early_terminate.min_iter
    grid_spec = load(ROOT / "search_spaces" / "lr_rho.yaml")
    grid, none = search.search_and_scheduler(grid_spec, plan(grid_spec, ()), tmp_path)
    assert grid is None and none is None
    # Worker processes are reused between trials except where a scheduler stops trials early.
    assert search.reuse_actors(none) is True and search.reuse_actors(scheduler) is False
    # A bayes sweep's study that is not one (another file under its name) is a one-line error.
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "optuna.db").write_bytes(b"\x00" * 100)
    with pytest.raises(UserError, match=r"other/optuna.db: not an Optuna study this Optuna can read \("):
        search.search_and_scheduler(spec, plan(spec, ()), tmp_path / "other")


# ------------------------------------------------------------------ one driver per sweep


def test_the_driver_lock_names_its_holder_and_a_dead_holders_lock_is_taken_over(tmp_path) -> None:
    import json

    from sweeper.dispatch.lock import LOCK_NAME, DriverLock, holder

    held = DriverLock(tmp_path)
    held.acquire()
    code = ("import sys\nfrom pathlib import Path\nfrom sweeper.dispatch.lock import DriverLock, SweepBusy\n"
            "try:\n    DriverLock(Path(sys.argv[1])).acquire(); print('acquired')\n"
            "except SweepBusy as err:\n    print(err)\n")
    busy = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert f"this sweep is being run by pid {os.getpid()} on " in busy.stdout and "run the same command again" in busy.stdout
    held.release()
    assert subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60).stdout.strip() == "acquired"
    # A driver killed -9 leaves its file but not its flock: the next one takes over.
    (tmp_path / LOCK_NAME).write_text(json.dumps({"host": "gone", "pid": 999_999, "since": "then"}))
    assert holder(tmp_path) is None  # a past driver's note is not a running one
    again = DriverLock(tmp_path)
    again.acquire(max_concurrent=1)
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert holder(tmp_path)["max_concurrent"] == 1 and holder(tmp_path)["pid"] == os.getpid()
    again.release()
    assert holder(tmp_path) is None and holder(tmp_path / "never_run") is None


def test_a_driver_starting_while_status_looks_at_the_lock_waits_for_it(tmp_path) -> None:
    """`sweeper status` looks by holding the lock shared for an instant; a driver starting then
    waits for it (up to a second) instead of calling the sweep busy."""
    import fcntl
    import threading

    from sweeper.dispatch.lock import LOCK_NAME, DriverLock

    (tmp_path / LOCK_NAME).write_text("")
    fd = os.open(tmp_path / LOCK_NAME, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)  # a look that lasts 0.3 s, a long one
    threading.Timer(0.3, os.close, (fd,)).start()
    started = time.monotonic()
    lock = DriverLock(tmp_path)
    lock.acquire()
    assert time.monotonic() - started >= 0.25  # it waited for the look, then took the lock
    lock.release()


@pytest.mark.parametrize("second_starts", ["at_once", "later"])
def test_a_second_driver_of_a_running_sweep_is_refused_and_nothing_trains_twice(tiny_data, tmp_path,
                                                                                second_starts) -> None:
    from sweeper.ledger import Ledger
    from sweeper.space import expand

    spec_path, results, cmd, first = _start_three_trial_driver("twice", tiny_data, tmp_path, capture=True)
    if second_starts == "later":
        _wait_for_file(results / "twice" / "ray", first)
    second = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outs = [p.communicate(timeout=600) for p in (first, second)]
    codes = sorted([first.returncode, second.returncode])
    assert codes == [0, 1], outs
    refused = outs[0] if first.returncode == 1 else outs[1]
    errors = [line for line in refused[1].splitlines() if line.startswith("sweeper: error:")]
    assert len(errors) == 1 and "this sweep is being run by pid " in errors[0] and "Traceback" not in refused[1]
    if second_starts == "later":
        assert f"pid {first.pid} on " in errors[0]
    trials = Ledger(results / "twice").trials()
    assert sorted(trials["trial_id"]) == sorted(t.id for t in expand(loads(spec_path.read_text())))
    assert len(list((results / "twice" / "ray").glob("run-*/*/result.json"))) == 3  # each trained once


# ------------------------------------------------------------------ a disk that fills, a folder that is read-only


@pytest.mark.parametrize(("fault", "file", "after"), [("ENOSPC", "trials.parquet", 1), ("EROFS", "spec.yaml", 0)])
def test_a_full_disk_or_read_only_folder_is_one_line_and_the_rerun_loses_nothing(tiny_data, tmp_path, fault, file,
                                                                               after) -> None:
    """Injected at os.replace in the driver (tests/fault_write/sitecustomize.py): the ledger is
    never torn, the error is one line naming the file, and once the disk can be written again
    the same command records every trial exactly once (those trained meanwhile recovered)."""
    from sweeper.ledger import Ledger

    spec_path, results, cmd = _three_trial_sweep("full", tiny_data, tmp_path)
    env = _env(PYTHONPATH=os.pathsep.join([str(ROOT / "tests" / "fault_write"), str(ROOT)]),
               SWEEPER_FAULT_ERRNO=fault, SWEEPER_FAULT_FILE=file, SWEEPER_FAULT_AFTER=str(after))
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("sweeper: error:")]
    reason = os.strerror(getattr(errno, fault))
    assert len(errors) == 1 and f"{file}: cannot be written ({reason})" in errors[0], proc.stderr[-3000:]
    assert "nothing recorded is lost" in errors[0] and "run the same command again" in errors[0]
    ledger = Ledger(results / "full")
    assert len(ledger.trials()) == after  # whole: the commit before the fault, nothing torn
    assert not list((results / "full").glob(f"*{TMP_SUFFIX}"))
    _rerun_finishes_every_trial(cmd, results / "full", spec_path)


def test_a_sweep_on_the_terminal_shows_the_sweepers_lines_not_rays(cli_sweep) -> None:
    """Ray Tune's experiment box and TensorBoard hint and Ray's token-auth notice, printed for
    every Tuner, are kept off; the sweeper's own progress and summary are what a user reads."""
    _, (run_proc, _, _) = cli_sweep
    shown = run_proc.stdout + run_proc.stderr
    for noise in ("Configuration for experiment", "tensorboard", "Token authentication is enabled"):
        assert noise not in shown, noise
    assert "oom: 0 trials run now" not in shown and "trials run now" in run_proc.stdout


# ------------------------------------------------------------------ a cluster that loses its T4 node


def test_the_resource_watch_warns_once_per_outage(monkeypatch, caplog) -> None:
    """A real thread on a probe the test controls: quiet while the T4 is there, one warning
    once it has been gone for MISSING_S, none while the outage lasts, again after a new one."""
    monkeypatch.setattr(console, "MISSING_S", 0.3)
    monkeypatch.setattr(console, "WATCH_POLL_S", 0.05)
    caplog.set_level(logging.WARNING, logger="sweeper")
    cluster = {"CPU": 4.0, "GPU": 2.0, "accelerator_type:T4": 1.0}
    with console.resource_watch({"cpu": 1.0, "gpu": 1.0, "accelerator_type:T4": 0.001}, lambda: dict(cluster)) as watch:
        time.sleep(0.5)
        assert watch.warnings == 0
        cluster.update({"GPU": 0.0, "accelerator_type:T4": 0.0})  # the node with the T4s is gone
        time.sleep(1.0)
        assert watch.warnings == 1
        cluster.update({"GPU": 2.0, "accelerator_type:T4": 1.0})
        time.sleep(0.3)
        cluster.update({"GPU": 0.0, "accelerator_type:T4": 0.0})
        time.sleep(1.0)
    assert watch.warnings == 2
    message = [r.getMessage() for r in caplog.records if r.name.startswith("sweeper")][0]
    assert message.startswith("the cluster has had no GPU or accelerator_type:T4 for ")
    assert "every trial asks for CPU 1, GPU 1, accelerator_type:T4 0.001" in message


def test_losing_the_only_t4_node_mid_sweep_is_named_within_a_minute_and_a_new_one_finishes_it(
        tiny_data, tmp_path) -> None:
    """A CPU-only head and a T4 node (real Ray); the T4 node removed while a trial trains on
    it. Tune retries the trial, which now fits no node and waits: the driver names the missing
    resource within about a minute, and when a T4 node joins the trial runs and is recorded once."""
    import ray
    from ray.cluster_utils import Cluster

    from sweeper.ledger import Ledger

    ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 0})
    t4 = cluster.add_node(num_cpus=2, num_gpus=2, resources={"accelerator_type:T4": 1})
    driver = None
    try:
        cluster.wait_for_nodes()
        spec = _write_spec(tmp_path / "lost.yaml", spec_text("lost", tiny_data, """
  optimizer: {value: adam}
  loss: {value: mae}
""").replace("steps_per_epoch: {value: 2}", "steps_per_epoch: {value: 400}"))
        cmd = [sys.executable, "-m", "sweeper.cli", "run", str(spec), "--results-dir", str(tmp_path / "r"),
               "--address", cluster.address]
        driver = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True, start_new_session=True)
        _wait_for_file(tmp_path / "r" / "lost" / "ray", driver)
        time.sleep(8)  # the trial is on the T4 node, training
        cluster.remove_node(t4)
        removed = time.monotonic()
        seen = ""
        while time.monotonic() - removed < 150 and driver.poll() is None and "the cluster has had no" not in seen:
            seen += driver.stderr.readline()
        assert "the cluster has had no GPU or accelerator_type:T4 for " in seen, seen[-3000:]
        assert time.monotonic() - removed < 100  # MISSING_S (60 s) after the loss, plus a poll
        cluster.add_node(num_cpus=2, num_gpus=2, resources={"accelerator_type:T4": 1})
        driver.communicate(timeout=300)
        assert driver.returncode == 0
        trials = Ledger(tmp_path / "r" / "lost").trials()
        assert list(trials["status"]) == ["ok"] and set(trials["accelerator"]) == {"T4"}
    finally:
        if driver is not None and driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
        cluster.shutdown()


def test_a_trial_on_a_node_that_dies_is_retried_on_another_and_the_sweep_finishes(tiny_data, tmp_path,
                                                                                 monkeypatch) -> None:
    """Two nodes with a fake T4 each, one trial on each (the driver on the head); kill -9 the
    other node's raylet while its trial runs. Tune retries that trial (max_failures: 1) on the
    node left once it is free; every trial is recorded once, both on the head, and trained
    once to the end (one Ray trial folder each)."""
    import threading

    import psutil
    import ray
    from ray.cluster_utils import Cluster

    from sweeper import trainable
    from sweeper.ledger import Ledger

    def quick_trial(config, context):  # sleeps instead of training; reports where it ran
        import time

        import ray
        from ray import tune

        from sweeper.records import Placement, TrialReport
        from sweeper.space import config_trial

        params, tid = config_trial(config)
        where = Placement(accelerator="T4", node=ray.get_runtime_context().get_node_id())
        for epoch in range(1, int(params["epochs"]) + 1):
            # 4 s an epoch: a worker outlives its killed raylet for a moment (it notices the lost
            # socket, then exits); at 1 s a loaded CI machine once let the trial finish first.
            time.sleep(4.0)
            tune.report(TrialReport(trial_id=tid, epoch=epoch, train_loss=0.1, placement=where, metrics={
                "val_psnr": 20.0 + epoch, "val_ssim": 0.5, "val_mae": 0.05}).to_dict())

    monkeypatch.setattr(trainable, "run_trial", quick_trial)
    ray.shutdown()
    t4 = {"num_cpus": 1, "num_gpus": 1, "resources": {"accelerator_type:T4": 1}}
    # The GCS declares a silent node dead after 1.5 s of missed health checks instead of 15 s.
    cluster = Cluster(initialize_head=True, head_node_args={
        **t4, "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3}})
    head, doomed = cluster.head_node.node_id, cluster.add_node(**t4)
    raylet = psutil.Process(doomed.all_processes["raylet"][0].process.pid)
    killed: list[int] = []

    def trial_on_the_node() -> psutil.Process | None:
        return next((p for p in raylet.children() if _is_trial(p)), None)

    try:
        cluster.wait_for_nodes()
        spec = loads(spec_text("nodedies", tiny_data, "  optimizer: {values: [adam, sgd]}\n"))
        # 0.5 s: into its first epoch; 300 s: a hang guard
        killer = threading.Thread(target=_kill_once_seen, args=(trial_on_the_node, lambda p: raylet, 0.5, 300, killed),
                                  daemon=True)
        killer.start()
        summary = run(spec, RunOptions(results_dir=tmp_path, address=cluster.address, wandb_mode="disabled",
                                       progress=False))
        killer.join(timeout=5)
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert killed, "no trial was seen on the node to kill"
    trials = Ledger(tmp_path / "nodedies").trials()
    assert summary.dispatched == 2 and len(trials) == 2 and set(trials["status"]) == {"ok"}, trials[["status", "error"]]
    assert sorted(trials["attempts"]) == [1, 2]  # the trial on the dead node ran again, once
    assert set(trials["node"]) == {head}  # ...on the node left
    assert (trials["epochs_run"] == 2).all()
    assert len(list((tmp_path / "nodedies" / "ray").glob("run-*/*/result.json"))) == 2  # one Ray trial each
