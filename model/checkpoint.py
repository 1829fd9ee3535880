"""A training run's per-epoch checkpoint, so a run cut short resumes where it stopped.

After each completed epoch :func:`model.train.train` writes the run's whole state into one
``.npz`` file: the weights, the optimizer's variables (its step counter and slots, the loss
scale under float16), the epochs' records so far, the best epoch's weights when samples are
wanted, and the wall time spent. Started again with the same file, parameters and dataset,
the run skips the epochs it has and computes exactly what the uninterrupted run would have:
the patch stream is keyed by patch index (:func:`model.data.train_pipeline`), so it restarts
at the first patch of the lost epoch, and on CPU the ops are deterministic
(:func:`model.runtime.configure_runtime`).

A checkpoint for other parameters, another dataset or another TensorFlow or Keras, or one that
cannot be read, is set aside with a warning and the run starts from its first epoch: it can
cost time, never a wrong result.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from model.files import replace_file

__all__ = ["Progress", "TrainState", "load_state", "read_progress", "save_state"]

_log = logging.getLogger(__name__)

_FORMAT = 1  # bump when the file's layout changes: older files are then set aside, not misread
# What a missing, torn or foreign file raises on reading (a torn zip, absent members, bad JSON).
_UNREADABLE = (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile)
_FOREIGN = "it was written for other parameters, another dataset, or another TensorFlow or Keras"


@dataclass(frozen=True)
class TrainState:
    """A run's state after its last completed epoch.

    Attributes:
        history: One record per completed epoch, as the epoch callback received it.
        best_epoch: 1-based epoch of the best record so far.
        images: Training patches seen.
        fit_seconds: Seconds spent in the fit loop (evaluation excluded): the throughput's base.
        seconds: Wall time of the run so far, earlier attempts included.
        weights: The model's weights (``model.get_weights()``).
        optimizer: The optimizer's variables, in ``optimizer.variables`` order.
        best_weights: The best epoch's weights, when the run keeps them for samples.
    """

    history: tuple[Mapping[str, float], ...]
    best_epoch: int
    images: int
    fit_seconds: float
    seconds: float
    weights: Sequence[np.ndarray]
    optimizer: Sequence[np.ndarray]
    best_weights: Sequence[np.ndarray] | None = None

    @property
    def epoch(self) -> int:
        """Completed epochs."""
        return len(self.history)


def save_state(path: Path, key: Mapping[str, Any], state: TrainState) -> None:
    """Replace ``path`` with ``state`` in one step (:func:`model.files.replace_file`): a kill
    at any moment leaves the previous epoch's checkpoint or this one, never half of one.

    Args:
        path: The checkpoint file.
        key: What the state belongs to, ``params`` (the run's parameters) among it;
            :func:`load_state` must match it.
        state: The run's state.
    """
    meta = {"format": _FORMAT, "key": dict(key), "history": [dict(r) for r in state.history],
            "best_epoch": state.best_epoch, "images": state.images, "fit_seconds": state.fit_seconds,
            "seconds": state.seconds, "best_weights": state.best_weights is not None}
    arrays = {"meta": np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)}
    arrays |= {f"w{i}": a for i, a in enumerate(state.weights)}
    arrays |= {f"o{i}": a for i, a in enumerate(state.optimizer)}
    arrays |= {f"b{i}": a for i, a in enumerate(state.best_weights or ())}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(path, buffer.getvalue())


def load_state(path: Path, key: Mapping[str, Any]) -> TrainState | None:
    """The state in ``path`` when it belongs to ``key``; else ``None`` (no file, or one set aside
    with a warning: written for another run, or unreadable)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = _meta(npz)
            if meta.get("format") != _FORMAT or meta.get("key") != json.loads(json.dumps(dict(key))):
                _set_aside(path, _FOREIGN)
                return None
            return TrainState(
                history=tuple(meta["history"]), best_epoch=int(meta["best_epoch"]), images=int(meta["images"]),
                fit_seconds=float(meta["fit_seconds"]), seconds=float(meta["seconds"]),
                weights=_numbered(npz, "w"), optimizer=_numbered(npz, "o"),
                best_weights=_numbered(npz, "b") if meta["best_weights"] else None,
            )
    except _UNREADABLE as err:
        _set_aside(path, f"it cannot be read ({type(err).__name__}: {err})")
        return None


class Progress(NamedTuple):
    """How far a checkpointed run has got: its completed ``epochs``, its ``params``, the wall
    ``seconds`` they took (earlier attempts included) and the wall seconds up to each epoch
    (``epoch_seconds``, cumulative as ``seconds``; NaN where a record lacks them)."""

    epochs: int
    params: dict[str, Any]
    seconds: float
    epoch_seconds: tuple[float, ...] = ()


def read_progress(path: Path) -> Progress | None:
    """The :class:`Progress` of the checkpoint at ``path``, from its small header only (no
    weights are read); ``None`` when it cannot be read."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = _meta(npz)
        history = meta["history"]
        return Progress(len(history), dict(meta["key"]["params"]), float(meta["seconds"]),
                        tuple(float(r.get("seconds", math.nan)) for r in history))
    except _UNREADABLE:
        return None


def _meta(npz: Any) -> dict[str, Any]:
    return json.loads(npz["meta"].tobytes().decode())


def _numbered(npz: Any, prefix: str) -> list[np.ndarray]:
    count = sum(1 for name in npz.files if name.startswith(prefix) and name[len(prefix):].isdigit())
    return [npz[f"{prefix}{i}"] for i in range(count)]


def _set_aside(path: Path, why: str) -> None:
    """Keep an unusable checkpoint for a look (never delete what cannot be re-made), out of the way."""
    target = path.with_name(f"{path.name}.set-aside")
    try:
        os.replace(path, target)
    except OSError:
        target = path
    _log.warning("%s: checkpoint not used, %s; training from the first epoch (kept as %s)", path, why, target.name)
