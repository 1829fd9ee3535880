"""The Ray Tune adapter: trial params -> ``model.train`` -> ``tune.report`` (+ W&B).

Runs inside Ray workers. The ledger is written by the driver (see ``dispatch``), not here:
workers on other nodes cannot reach the driver's disk, and one writer keeps it consistent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from model.errors import ConfigError
from model.images import side_by_side
from model.params import TrainParams
from model.runtime import accumulates_in_float32, configure_runtime, resolve_precision
from sweeper.folder import checkpoint_path
from sweeper.records import Placement, TrialReport
from sweeper.space import config_trial
from sweeper.tracking import TrialTracker

__all__ = ["TrialContext", "run_trial"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialContext:
    """What every trial of one sweep shares (picklable; sent once via ``tune.with_parameters``)."""

    sweep: str
    sweep_dir: str
    dataset_dir: str
    dataset_name: str
    wandb_mode: str
    cpus: float
    accelerator_type: str | None = None
    sweep_id: str | None = None
    samples: int = 3
    # resolved on the driver: workers on other nodes do not see the driver's environment
    vgg_weights: str | None = "auto"


def _placement(accelerator_type: str | None, precision: str) -> Placement:
    """Where this trial runs: the GPU type it was pinned to (or ``cpu``), the GPU ids Ray
    assigned, the node, the dtype policy ``precision`` means there, and whether its 16-bit
    convolutions are computed in float32 there."""
    import ray

    gpu_ids = [str(g) for g in ray.get_gpu_ids()]
    policy = resolve_precision(precision)
    emulated = accumulates_in_float32(policy.removeprefix("mixed_"))  # "float32" never is
    return Placement(accelerator=(accelerator_type or "GPU") if gpu_ids else "cpu", gpu_ids=",".join(gpu_ids),
                     node=ray.get_runtime_context().get_node_id() or "", dtype_policy=policy,
                     emulation="float32-accumulate" if emulated else "")


def _save_strip(triplets: Any, path: Path) -> None:
    """Blurred | restored | sharp, one row per sample, as a PNG for the report."""
    import numpy as np
    from PIL import Image

    rows = [side_by_side(t) for t in triplets]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


def run_trial(config: Mapping[str, Any], context: TrialContext) -> None:
    """Train one trial and report each epoch to Ray Tune.

    Any exception propagates: Ray retries the trial up to ``max_failures`` times and the
    driver records it as ``error`` with the exception's message. Except a ``ConfigError``
    (say, a perceptual loss without its VGG weights): it fails the same way on every attempt, so
    its last report says ``status="error"`` and the trial ends at once, without a retry and
    without Ray replacing the worker (a new worker pays for importing TensorFlow again). A
    diverged run is not an exception either: its last report says ``status="diverged"``.
    After each epoch the trial's state is checkpointed under ``<sweep>/checkpoints/``; a trial
    run again on the same node resumes from it (its earlier epochs are replayed to Tune and W&B).
    """
    from ray import tune

    from model.data import DatasetRef

    # Exactly the CPUs Ray granted; fixed for the worker process's lifetime (actors are reused
    # only between trials that ask for the same resources).
    configure_runtime(cpus=max(1, int(context.cpus)))
    from model.train import train

    params, tid = config_trial(config)
    where = _placement(context.accelerator_type, str(params.get("precision", TrainParams.precision)))
    sweep_dir = Path(context.sweep_dir)
    tracker = TrialTracker(context.sweep, tid, params, sweep_dir / "wandb", context.wandb_mode, context.sweep_id)
    tracker.start()

    def on_epoch(epoch: int, metrics: Mapping[str, float]) -> None:
        tracker.log_epoch(epoch, metrics)
        tune.report(TrialReport.from_result({**metrics, **where.to_dict(), "trial_id": tid, "status": "ok"}).to_dict())

    try:
        result = train(
            params, DatasetRef(Path(context.dataset_dir), context.dataset_name), on_epoch=on_epoch,
            samples=context.samples, vgg_weights=context.vgg_weights,
            # on this node's disk: a trial cut short (a kill, a lost session) and run again here
            # goes on after its last epoch instead of starting over
            checkpoint_path=checkpoint_path(sweep_dir, tid),
        )
    except ConfigError as err:
        tracker.finish({"status": "error"}, "error")
        # Named like Ray's error trace names a raised exception, so the ledger reads the same.
        message = f"{type(err).__module__}.{type(err).__qualname__}: {err}"
        _final_report(where, tid, "error", message, epoch=1)
        return
    except BaseException:
        tracker.finish({"status": "error"}, "error")
        raise
    if result.samples:
        tracker.log_images(result.samples)
        try:
            _save_strip(result.samples, sweep_dir / "samples" / f"{tid}.png")
        except OSError as err:  # a sample image is a nicety; never fail a trial for it
            _log.warning("could not save samples for %s: %s", tid, err)
    summary = {
        "status": result.status,
        "best_epoch": result.best_epoch,
        "seconds": result.seconds,
        "images_per_second": result.images_per_second,
        **{f"best_{k}": v for k, v in result.best.items() if k.startswith("val_")},
        **{f"final_{k}": v for k, v in result.final.items() if k.startswith("val_")},
    }
    tracker.finish(summary, result.status)
    if result.status == "diverged":
        # No epoch record exists for the epoch that blew up; this report carries the verdict.
        _final_report(where, tid, "diverged", result.error or "", epoch=result.epochs_run + 1)


def _final_report(where: Placement, tid: str, status: str, error: str, *, epoch: int) -> None:
    """A trial's last report when it ends without a scored epoch (diverged, or a config error)."""
    from ray import tune

    tune.report(TrialReport(trial_id=tid, epoch=epoch, status=status, error=error, placement=where).to_dict())
