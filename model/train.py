"""One training run of the deblur model, and inference on a folder.

:func:`train` is pure in the sweeper's sense: parameters and a dataset in, a
:class:`TrainResult` out, an optional per-epoch callback; no Ray, no W&B. The Ray trainable,
``sweeper train`` and ``run.py`` all call it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from model.checkpoint import TrainState, load_state, save_state
from model.data import EVAL_MAX_SIZE, DatasetRef
from model.images import to_uint8
from model.params import TrainParams

__all__ = ["train", "predict", "compiled_model", "TrainResult", "EpochMetrics", "PredictResult", "EpochCallback"]

_log = logging.getLogger(__name__)

# per-epoch record handed to the callback and kept in the result's history
EpochMetrics = dict[str, float]
EpochCallback = Callable[[int, EpochMetrics], None]


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced.

    Attributes:
        status: ``"ok"``, or ``"diverged"`` when the loss became NaN/inf (training stopped).
        final: Metrics of the last completed epoch (train_loss, val_psnr, val_ssim, val_mae).
        best: Metrics of the epoch with the highest val_psnr.
        best_epoch: 1-based epoch of ``best`` (0 when no epoch completed).
        epochs_run: Completed epochs.
        seconds: Wall time of the whole run, data loading included (and the earlier attempts'
            time, when it resumed from a checkpoint).
        images_per_second: Training patches per second of the fit loop (evaluation excluded).
        model_path: Where the best model was saved, if a path was given and an epoch completed.
        history: One :data:`EpochMetrics` per completed epoch (restored ones included).
        error: Why the run stopped early, else ``None``.
        samples: (blurred, restored, sharp) uint8 HxWx3 triplets restored with the best
            epoch's weights, as many as asked for.
    """

    status: str
    final: EpochMetrics
    best: EpochMetrics
    best_epoch: int
    epochs_run: int
    seconds: float
    images_per_second: float
    model_path: Path | None
    history: tuple[EpochMetrics, ...] = field(default_factory=tuple)
    error: str | None = None
    samples: tuple[tuple[Any, Any, Any], ...] = field(default_factory=tuple)
    resumed_epochs: int = 0
    """Epochs restored from a checkpoint instead of trained in this call."""


def compiled_model(params: TrainParams, vgg_weights: str | None, *, jit_compile: bool = False) -> Any:
    """The write-up's network compiled with the trial's optimizer and loss, optimizer slots built."""
    from model.architecture import build_model
    from model.losses import get_loss
    from model.optimizers import get_optimizer
    from model.runtime import resolve_precision

    net = build_model(precision=resolve_precision(params.precision))
    net.compile(
        optimizer=get_optimizer(params.optimizer, params.learning_rate, params.rho, params.momentum),
        loss=get_loss(params.loss, vgg_weights=vgg_weights),
        # XLA measured at half the speed of plain graph execution on 2-core Xeons
        # (benchmarks/README.md); the benchmark's `xla` variant is the only caller that asks.
        jit_compile=jit_compile,
    )
    # Otherwise the optimizer makes its slot variables inside fit's first tf.function trace,
    # and TF traces the whole train step a second time to lift them: building them here halved
    # a tiny trial on a 2-core CPU (47-50 s -> 21-28 s, same numbers to the last digit).
    net.optimizer.build(net.trainable_variables)
    return net


def _restorer(net: Any) -> Callable[[Any], Any]:
    """A graph-compiled forward pass that does not retrace for every image size."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def restore(x: Any) -> Any:
        return net(x, training=False)

    return lambda x: restore(tf.convert_to_tensor(x)).numpy()


def _run_callbacks(
    net: Any,
    eval_pairs: Sequence[Any],
    on_epoch: EpochCallback | None,
    model_path: Path | None,
    images_per_epoch: int,
    keep_best_weights: bool,
    *,
    started: float,
    resumed: TrainState | None,
    checkpoint: Callable[[TrainState], None] | None,
) -> Any:
    import keras

    from model.metrics import evaluate

    restore = _restorer(net)

    class _Tracker(keras.callbacks.Callback):
        """Stops on a non-finite loss, evaluates each epoch, keeps the best model, checkpoints."""

        def __init__(self) -> None:
            super().__init__()
            self.history: list[EpochMetrics] = [dict(r) for r in resumed.history] if resumed else []
            self.best_epoch = resumed.best_epoch if resumed else 0
            self.best: EpochMetrics = dict(self.history[self.best_epoch - 1]) if self.best_epoch else {}
            self.best_weights: list[Any] | None = (
                list(resumed.best_weights) if resumed and resumed.best_weights is not None else None)
            self.images = resumed.images if resumed else 0
            self.diverged_at: int | None = None
            self.fit_seconds = resumed.fit_seconds if resumed else 0.0
            self.earlier_seconds = resumed.seconds if resumed else 0.0
            self._epoch_start = 0.0

        def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
            self._epoch_start = time.perf_counter()

        def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
            loss = float((logs or {}).get("loss", 0.0))
            if not math.isfinite(loss):
                self.diverged_at = batch
                self.model.stop_training = True

        def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
            self.fit_seconds += time.perf_counter() - self._epoch_start
            if self.diverged_at is not None:
                return  # weights are NaN: nothing worth evaluating or saving
            self.images += images_per_epoch
            scores = evaluate(restore, eval_pairs)
            record: EpochMetrics = {
                "epoch": epoch + 1,
                "train_loss": float((logs or {})["loss"]),
                **{f"val_{name}": float(value) for name, value in scores.items()},
                # cumulative over the epochs so far, as is the run's wall time (earlier attempts in)
                "images_per_second": self.images / self.fit_seconds,
                "seconds": self.earlier_seconds + time.perf_counter() - started,
            }
            self.history.append(record)
            if not self.best or record["val_psnr"] > self.best["val_psnr"]:
                self.best, self.best_epoch = record, epoch + 1
                if keep_best_weights:
                    self.best_weights = self.model.get_weights()
                if model_path is not None:
                    self.model.save(model_path)
            if checkpoint is not None:  # before the callback: what it is told is never lost
                checkpoint(self.state())
            if on_epoch is not None:
                on_epoch(epoch + 1, record)

        def state(self) -> TrainState:
            return TrainState(
                history=tuple(self.history), best_epoch=self.best_epoch, images=self.images,
                fit_seconds=self.fit_seconds, seconds=self.history[-1]["seconds"], weights=self.model.get_weights(),
                optimizer=[v.numpy() for v in self.model.optimizer.variables], best_weights=self.best_weights)

    return _Tracker()


def _restore(net: Any, state: TrainState) -> None:
    """Put a checkpoint's weights and optimizer variables (step counter and slots) back."""
    net.set_weights(state.weights)
    variables = net.optimizer.variables
    if len(variables) != len(state.optimizer):
        raise ValueError(f"the checkpoint holds {len(state.optimizer)} optimizer variables, the model {len(variables)}")
    for variable, value in zip(variables, state.optimizer):
        variable.assign(value)


def train(
    params: TrainParams | Mapping[str, Any],
    dataset: DatasetRef,
    *,
    model_path: str | Path | None = None,
    on_epoch: EpochCallback | None = None,
    vgg_weights: str | None = "auto",
    eval_max_size: int | None = EVAL_MAX_SIZE,
    samples: int = 0,
    checkpoint_path: str | Path | None = None,
) -> TrainResult:
    """Train the deblur model once.

    Args:
        params: Hyperparameters (a mapping is validated into :class:`TrainParams`).
        dataset: Where the ``train``/``test`` splits live.
        model_path: Where to save the best model (``.keras``); ``None`` saves nothing.
        on_epoch: Called after each completed epoch with (epoch, metrics).
        vgg_weights: Weights for the perceptual loss (see ``model.losses``).
        eval_max_size: Largest side of the centre crops evaluated each epoch.
        samples: How many test pairs to restore with the best weights for the result.
        checkpoint_path: Where to keep the run's state after each epoch (``.npz``, see
            :mod:`model.checkpoint`). If it holds a checkpoint of this run, training resumes
            after its last epoch, bit-exactly on CPU; the restored epochs are replayed through
            ``on_epoch`` first, so a consumer sees every epoch. Removed when the run ends.

    Returns:
        The run's :class:`TrainResult`; a NaN/inf loss gives ``status="diverged"``.

    Raises:
        ConfigError: Bad parameters. DataError: bad or missing data. OutOfMemory: the batch
            does not fit in the device's memory.
    """
    import keras
    import tensorflow as tf

    from model.cache import open_split
    from model.data import eval_arrays, train_pipeline
    from model.errors import OutOfMemory

    started = time.perf_counter()
    p = params if isinstance(params, TrainParams) else TrainParams.from_mapping(params)
    # Through the node's disk cache: a trial's memory does not grow with the dataset.
    train_split = open_split(dataset, "train")
    eval_pairs = eval_arrays(open_split(dataset, "test"), max_size=eval_max_size)
    path = Path(model_path) if model_path is not None else None
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)

    keras.utils.set_random_seed(p.seed)
    net = compiled_model(p, vgg_weights)
    ckpt = Path(checkpoint_path) if checkpoint_path is not None else None
    # everything the state depends on (another TensorFlow or Keras may compute otherwise)
    key = {"params": p.to_dict(), "dataset": str(dataset.dir.resolve() / dataset.name), "best_weights": samples > 0,
           "tensorflow": tf.__version__, "keras": keras.__version__}
    resumed, save = _checkpointing(ckpt, key)
    if resumed is not None:
        try:
            _restore(net, resumed)
            _log.info("%s: resuming after epoch %d of %d", ckpt, resumed.epoch, p.epochs)
        except ValueError as err:  # shapes or variables this model does not have
            _log.warning("%s: checkpoint does not fit this model (%s); training from the first epoch", ckpt, err)
            resumed = None
            keras.utils.set_random_seed(p.seed)
            net = compiled_model(p, vgg_weights)  # nothing partly restored may leak into the fresh run
    done = resumed.epoch if resumed is not None else 0
    stream = train_pipeline(train_split, patch_size=p.patch_size, batch_size=p.batch_size, seed=p.seed,
                            start=done * p.steps_per_epoch * p.batch_size)
    tracker = _run_callbacks(
        net, eval_pairs, on_epoch, path, p.steps_per_epoch * p.batch_size, keep_best_weights=samples > 0,
        started=started, resumed=resumed, checkpoint=save,
    )
    for record in tracker.history if on_epoch is not None else ():
        on_epoch(int(record["epoch"]), record)
    try:
        net.fit(stream, epochs=p.epochs, initial_epoch=done, steps_per_epoch=p.steps_per_epoch, callbacks=[tracker],
                verbose=0, shuffle=False)
    except tf.errors.ResourceExhaustedError as err:
        # TF's message is pages long; keep its first line and say what to change.
        first = (str(getattr(err, "message", "") or err).strip().splitlines() or ["out of memory"])[0][:300]
        raise OutOfMemory(
            f"out of memory training batch_size={p.batch_size} x {p.patch_size}x{p.patch_size} patches "
            f"({first}); lower batch_size or patch_size"
        ) from None

    if ckpt is not None:
        with contextlib.suppress(OSError):  # the run is over: its result is what counts now
            ckpt.unlink(missing_ok=True)
    diverged = tracker.diverged_at is not None
    triplets: tuple[tuple[Any, Any, Any], ...] = ()
    if tracker.best_weights is not None:
        net.set_weights(tracker.best_weights)
        triplets = _samples(_restorer(net), eval_pairs[:samples])
    return TrainResult(
        status="diverged" if diverged else "ok",
        final=dict(tracker.history[-1]) if tracker.history else {},
        best=dict(tracker.best),
        best_epoch=tracker.best_epoch,
        epochs_run=len(tracker.history),
        seconds=tracker.earlier_seconds + time.perf_counter() - started,
        images_per_second=tracker.history[-1]["images_per_second"] if tracker.history else 0.0,
        model_path=path if path is not None and tracker.history else None,
        history=tuple(tracker.history),
        error=(
            f"loss became non-finite in epoch {len(tracker.history) + 1}, step {tracker.diverged_at + 1}"
            if diverged
            else None
        ),
        samples=triplets,
        resumed_epochs=done,
    )


def _checkpointing(
    path: Path | None, key: Mapping[str, Any]
) -> tuple[TrainState | None, Callable[[TrainState], None] | None]:
    """The state to resume from (if ``path`` holds the run's of ``key``), and the per-epoch saver."""
    if path is None:
        return None, None
    resumed = load_state(path, key)
    failed: list[OSError] = []

    def save(state: TrainState) -> None:
        if failed:
            return
        try:
            save_state(path, key, state)
        except OSError as err:  # a checkpoint saves time on a restart; never fail the run for it
            failed.append(err)
            _log.warning("%s: cannot write the checkpoint (%s); this run goes on without one", path, err)

    return resumed, save


def _samples(restore: Callable[[Any], Any], pairs: list[Any]) -> tuple[tuple[Any, Any, Any], ...]:
    """(blurred, restored, sharp) uint8 triplets for a few evaluation pairs."""
    return tuple(
        (to_uint8(blur), to_uint8(restore(blur[None])[0]), to_uint8(sharp)) for blur, sharp in pairs
    )


@dataclass(frozen=True)
class PredictResult:
    """Outcome of :func:`predict`: written files and per-image latency (first call excluded)."""

    outputs: tuple[Path, ...]
    ms_per_image: float
    warmup_ms: float


def predict(model_path: str | Path, input_dir: str | Path, output_dir: str | Path) -> PredictResult:
    """Deblur every image in ``input_dir`` into ``output_dir`` (same file names, PNG).

    Images whose sides are not multiples of 4 are reflect-padded for the network and
    cropped back, so outputs have the input's size.
    """
    import keras
    import numpy as np
    from PIL import Image

    import model.architecture  # noqa: F401  (registers ResidualBlock for loading)
    from model.errors import DataError
    from model.images import image_files, read_image

    src, dst = Path(input_dir), Path(output_dir)
    if not Path(model_path).is_file():
        raise DataError(f"{model_path}: model file not found; train one with `sweeper train --model-path PATH`")
    files = image_files(src)
    if not files:
        raise DataError(f"{src}: no images to deblur (looked for .png, .jpg, .jpeg, .bmp, .tif, .tiff)")
    dst.mkdir(parents=True, exist_ok=True)
    restore = _restorer(keras.saving.load_model(model_path, compile=False))
    outputs, timings = [], []
    for file in files:
        image = read_image(file)
        h, w = image.shape[:2]
        padded = np.pad(image, ((0, -h % 4), (0, -w % 4), (0, 0)), mode="reflect")
        t0 = time.perf_counter()
        out = restore(padded[None])[0, :h, :w]
        timings.append((time.perf_counter() - t0) * 1000)
        target = dst / f"{file.stem}.png"
        Image.fromarray(to_uint8(out)).save(target)
        outputs.append(target)
    steady = timings[1:] or timings
    return PredictResult(tuple(outputs), float(np.median(steady)), timings[0])
