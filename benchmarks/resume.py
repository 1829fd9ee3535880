"""What the per-epoch checkpoint costs and what resuming from it saves (``checkpoint``)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from benchmarks.common import Figures, tiny_dataset

# A race trial's shape (64x64 patches, batch 16, one thread, Nadam: two optimizer slots), cut short.
_SIZES = {"quick": {"epochs": 2, "steps_per_epoch": 5, "repeats": 1},
          "full": {"epochs": 4, "steps_per_epoch": 25, "repeats": 3}}


class _Cut(Exception):
    pass


def bench_checkpoint(quick: bool) -> Figures:
    """``model.train`` with and without its checkpoint, side by side (alternating, so drift
    hits both alike); one save and one load of the state; a run cut after half its epochs,
    then resumed, against the whole run: wall time and whether the numbers are identical."""
    from model.checkpoint import TrainState, load_state, save_state
    from model.data import DatasetRef
    from model.params import TrainParams
    from model.runtime import configure_runtime, resolve_precision
    from model.train import compiled_model, train

    sizes = _SIZES["quick" if quick else "full"]
    configure_runtime(1, deterministic=True)
    p = TrainParams(optimizer="nadam", loss="mae", epochs=sizes["epochs"], steps_per_epoch=sizes["steps_per_epoch"],
                    batch_size=16, patch_size=64, precision=resolve_precision("auto"))
    seconds: dict[str, list[float]] = {"without": [], "with": []}
    with tempfile.TemporaryDirectory() as tmp:
        ref = DatasetRef(*tiny_dataset(Path(tmp), size=128))
        ckpt = Path(tmp) / "checkpoints" / "trial.npz"
        train(TrainParams(**{**p.to_dict(), "epochs": 1}), ref)  # warm-up: the process's first trace is slow
        for _ in range(sizes["repeats"]):
            for variant in ("without", "with"):
                straight = train(p, ref, checkpoint_path=ckpt if variant == "with" else None)
                seconds[variant].append(straight.seconds)

        half = max(1, p.epochs // 2)
        kept: list[Figures] = []

        def cut(epoch: int, metrics: Figures) -> None:
            kept.append(metrics)
            if epoch == half:
                raise _Cut

        t0 = time.perf_counter()
        try:
            train(p, ref, checkpoint_path=ckpt, on_epoch=cut)
        except _Cut:
            pass
        cut_s = time.perf_counter() - t0
        size = ckpt.stat().st_size
        # One save and one load of a state the size of this model's and optimizer's (Nadam).
        net = compiled_model(p, None)
        state = TrainState(history=tuple(kept), best_epoch=1, images=0, fit_seconds=1.0, seconds=1.0,
                           weights=net.get_weights(), optimizer=[v.numpy() for v in net.optimizer.variables])
        key = {"bench": True}
        spare = Path(tmp) / "spare.npz"
        t0 = time.perf_counter()
        save_state(spare, key, state)
        save_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        load_state(spare, key)
        load_s = time.perf_counter() - t0
        resumed = train(p, ref, checkpoint_path=ckpt)

    def strip(history: object) -> list[Figures]:
        return [{k: v for k, v in m.items() if k not in ("images_per_second", "seconds")} for m in history]

    best = {k: min(v) for k, v in seconds.items()}
    return {
        "precision": p.precision, "epochs": p.epochs, "steps_per_epoch": p.steps_per_epoch, "batch_size": 16,
        "patch_size": 64, "optimizer": "nadam", "threads": 1, "repeats": sizes["repeats"],
        "run_seconds_without": seconds["without"], "run_seconds_with": seconds["with"],
        "ratio_with_to_without": best["with"] / best["without"],
        "checkpoint_bytes": size, "save_seconds": save_s, "load_seconds": load_s,
        "save_share_of_an_epoch": save_s / (best["with"] / p.epochs),
        "cut_after_epochs": half, "cut_run_seconds": cut_s, "resumed_run_seconds": resumed.seconds - kept[-1]["seconds"],
        "resumed_epochs": resumed.resumed_epochs,
        "resumed_equals_uninterrupted": strip(resumed.history) == strip(straight.history),
        "cpus_seen": os.cpu_count(),
    }
