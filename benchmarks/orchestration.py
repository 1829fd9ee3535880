"""Benchmarks of the orchestration: what running trials through ``sweeper run`` costs against
a plain loop (``orchestration_overhead``), trials per hour under two concurrency layouts
(``concurrency``), and a 500-trial grid landing in the ledger exactly once with the driver's
memory flat (``load``)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, TINY_TRIAL, Figures, ray_start, ray_stop, spec_doc, timed_sweep, tiny_dataset

__all__ = ["bench_concurrency", "bench_load", "bench_orchestration_overhead"]

# concurrency's grid: how many trials, and each one's budget (larger than TINY_TRIAL).
_CONCURRENCY_TRIALS = {"quick": 4, "full": 8}
_CONCURRENCY_TRIAL: dict[str, dict[str, Any]] = {
    "quick": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 4, "patch_size": 32},
    "full": {"epochs": 2, "steps_per_epoch": 8, "batch_size": 8, "patch_size": 64},
}


def bench_orchestration_overhead(quick: bool) -> Figures:
    """12 tiny trials through sweeper.dispatch.run vs the same params in a plain loop."""
    from model.data import DatasetRef
    from model.train import train
    from sweeper.spec import from_dict

    grid = {"learning_rate": [0.0003, 0.001, 0.003], "rho": [0.9, 0.99], "seed": [0, 1], **TINY_TRIAL}
    with tempfile.TemporaryDirectory() as tmp:
        data = tiny_dataset(Path(tmp) / "data")
        spec = from_dict(spec_doc("overhead", grid, data, cpu=os.cpu_count() or 1, max_concurrent=1))
        ref = DatasetRef(*data)
        # Loop first: it pays one TensorFlow import and first trace, as the sweep's worker does.
        t0 = time.perf_counter()
        n = 0
        for lr in grid["learning_rate"]:
            for rho in grid["rho"]:
                for seed in grid["seed"]:
                    train({"learning_rate": lr, "rho": rho, "seed": seed, **TINY_TRIAL}, ref)
                    n += 1
        loop_seconds = time.perf_counter() - t0
        startup = ray_start()
        sweep_seconds, trials = timed_sweep(spec, Path(tmp) / "results")
        ray_stop()
    return {
        "trials": n,
        "trials_ok": int((trials["status"] == "ok").sum()),
        "startup_s": startup,
        "sweep_seconds": startup + sweep_seconds,
        "loop_seconds": loop_seconds,
        "seconds_per_trial_overhead": sweep_seconds / n - loop_seconds / n,
        "definition": "(sweep wall - Ray start-up - loop wall) / trials; max_concurrent 1, both sequential",
        "trial": TINY_TRIAL,
    }


def bench_concurrency(quick: bool) -> Figures:
    """Trials per hour: 1 trial x all cores vs one trial per core (1 thread each)."""
    from sweeper.spec import from_dict

    mode = "quick" if quick else "full"
    n = _CONCURRENCY_TRIALS[mode]
    cores = os.cpu_count() or 1
    trial = _CONCURRENCY_TRIAL[mode]
    with tempfile.TemporaryDirectory() as tmp:
        data = tiny_dataset(Path(tmp) / "data", size=max(48, trial["patch_size"] * 2))
        grid = {"seed": list(range(n)), **trial}
        startup = ray_start()
        figures: Figures = {"trials": n, "trial": trial, "startup_s": startup}
        for label, cpu, concurrent in (("1x%d" % cores, cores, 1), ("%dx1" % cores, 1, cores)):
            spec = from_dict(spec_doc(f"conc_{cpu:g}", grid, data, cpu=cpu, max_concurrent=concurrent))
            seconds, trials = timed_sweep(spec, Path(tmp) / label)
            figures[f"trials_per_hour_{label}"] = n * 3600 / seconds
            figures[f"seconds_{label}"] = seconds
            figures[f"trials_ok_{label}"] = int((trials["status"] == "ok").sum())
        ray_stop()
    one, many = figures[f"trials_per_hour_1x{cores}"], figures[f"trials_per_hour_{cores}x1"]
    figures["faster"] = f"1x{cores}" if one >= many else f"{cores}x1"
    return figures


def bench_load(quick: bool) -> Figures:
    """A 500-trial grid of trivial trials through ``sweeper run`` (100 with --quick): every
    trial must land in the ledger exactly once, and the driver's memory must stay flat."""
    import psutil
    import yaml

    from sweeper.ledger import Ledger

    n = 100 if quick else 500
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = tiny_dataset(root / "data", size=32)
        doc = spec_doc("load", {**TINY_TRIAL, "steps_per_epoch": 1, "batch_size": 1, "seed": list(range(n))},
                        data, cpu=1, max_concurrent=2)
        spec_path = root / "load.yaml"
        spec_path.write_text(yaml.safe_dump(doc))
        env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(ROOT)}
        t0 = time.perf_counter()
        driver = subprocess.Popen([sys.executable, "-m", "sweeper.cli", "run", str(spec_path), "--results-dir",
                                   str(root / "results"), "--wandb-mode", "disabled"],
                                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        ledger = Ledger(root / "results" / "load", create=False)
        samples: list[tuple[float, int, float]] = []  # (seconds, rows, driver RSS MB)
        supervisor = psutil.Process(driver.pid)
        while driver.poll() is None:
            try:
                # `sweeper run` supervises the driver in a child (`python -m sweeper.dispatch`):
                # the Tuner's memory is the child's, so the supervisor's alone would read flat.
                rss = sum(p.memory_info().rss for p in (supervisor, *supervisor.children())) / 2**20
                rows = len(ledger.done_ids())
            except (psutil.Error, Exception):  # the driver exiting, or a ledger mid-creation
                time.sleep(1.0)
                continue
            samples.append((time.perf_counter() - t0, rows, rss))
            time.sleep(1.0)
        wall = time.perf_counter() - t0
        stderr = driver.stderr.read() if driver.stderr else ""
        if driver.returncode != 0:
            raise RuntimeError(f"sweeper run exited {driver.returncode}: {stderr.strip().splitlines()[-1:]}")
        trials = ledger.trials()

    def rss_at(fraction: float) -> float | None:
        past = [mb for _, rows, mb in samples if rows >= fraction * n]
        return round(past[0], 1) if past else None

    return {
        "name": "load",
        "quick": quick,
        "trials": n,
        "ledger_rows": len(trials),
        "unique_trial_ids": int(trials["trial_id"].nunique()),
        "status_counts": {str(k): int(v) for k, v in trials["status"].value_counts().items()},
        "wall_s": round(wall, 1),
        "seconds_per_trial": round(wall / n, 3),
        # Flat memory: RSS when 10%, 50% and 100% of the rows were in the ledger, and the peak;
        # every tenth too, to see whether it plateaus across the 200-trial Tuner batches.
        "driver_rss_mb_at_10pct": rss_at(0.1),
        "driver_rss_mb_at_50pct": rss_at(0.5),
        "driver_rss_mb_at_100pct": rss_at(1.0),
        "driver_rss_mb_by_tenth": [rss_at(k / 10) for k in range(1, 11)],
        "driver_rss_mb_peak": round(max((mb for *_, mb in samples), default=0.0), 1),
        "rss_samples": len(samples),
    }
