"""Benchmark of ``sweeper report`` at scale (``report_scale``): finished ledgers of 100, 1,000
and 10,000 trials, written straight to parquet, reported by a fresh process each time."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import ROOT, Figures, spec_doc

__all__ = ["bench_report_scale", "written_ledger"]


def written_ledger(folder: Path, n_lr: int, n_rho: int, seeds: int, epochs: int = 5) -> int:
    """A finished lr x rho x seed ledger written straight to parquet (no training): what
    ``sweeper report`` reads after a sweep of that size. Returns the trial count."""
    import numpy as np
    import pyarrow.parquet as pq
    import yaml

    from sweeper.ledger import Ledger, arrow_table
    from sweeper.records import EPOCH_SCHEMA, TRIAL_SCHEMA, EpochRow, TrialRow
    from sweeper.space import expand
    from sweeper.spec import from_dict

    lrs = [float(f"{x:.3g}") for x in np.geomspace(1e-4, 1e-2, n_lr)]
    rhos = [round(float(x), 4) for x in np.linspace(0.8, 0.99, n_rho)]
    doc = spec_doc(folder.name, {"learning_rate": lrs, "rho": rhos, "seed": list(range(seeds)), "epochs": epochs},
                    (folder / "no-data", "none"), cpu=1, max_concurrent=2)
    spec = from_dict(doc)
    folder.mkdir(parents=True)
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec.to_dict()))
    rng = np.random.default_rng(0)
    trials, epoch_rows = [], []
    for trial in expand(spec):
        value = 24.0 + 0.1 * rng.normal()
        metrics = {"val_psnr": value, "val_ssim": 0.6, "val_mae": 0.03}
        trials.append(TrialRow(trial.id, "ok", params=trial.params, metrics=metrics, seconds=30.0,
                               epochs_run=epochs, best_epoch=epochs).columns())
        epoch_rows += [EpochRow(e, trial_id=trial.id, train_loss=0.03,
                                metrics={**metrics, "val_psnr": value - 0.1 * (epochs - e)}).columns()
                       for e in range(1, epochs + 1)]
    ledger = Ledger(folder)
    pq.write_table(arrow_table(epoch_rows, EPOCH_SCHEMA), ledger.epochs_path)
    pq.write_table(arrow_table(trials, TRIAL_SCHEMA), ledger.trials_path)
    return len(trials)


def bench_report_scale(quick: bool) -> Figures:
    """``sweeper report`` (a fresh process, as a user runs it) on finished ledgers of 100,
    1,000 and 10,000 trials (10 lr x 10 rho x 10 seeds is the 1,000), three times each:
    the target is under 3 s at 1,000 and no worse than linear growth."""
    sizes = {100: (10, 10, 1), 1000: (10, 10, 10)} if quick else {100: (10, 10, 1), 1000: (10, 10, 10),
                                                                   10_000: (20, 50, 10)}
    figures: Figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n, shape in sizes.items():
            folder = Path(tmp) / f"r{n}"
            assert written_ledger(folder, *shape) == n
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-m", "sweeper.cli", "report", str(folder), "--format", "json"],
                               cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True,
                               capture_output=True, timeout=600)
                times.append(time.perf_counter() - t0)
            figures[f"report_s_{n}"] = statistics.median(times)
            figures[f"report_s_{n}_runs"] = times
    figures["growth_1000_over_100"] = figures["report_s_1000"] / figures["report_s_100"]
    if "report_s_10000" in figures:
        figures["growth_10000_over_1000"] = figures["report_s_10000"] / figures["report_s_1000"]
    return figures
