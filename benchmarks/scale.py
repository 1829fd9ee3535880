"""Benchmarks of scale (issue 14): a GoPro-size dataset through the node's cache, every
precision side by side, and the arithmetic of 16-bit convolutions. Registered in
``benchmarks/run.py``, which runs each in its own child."""

from __future__ import annotations

import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.common import Figures, values_and_gradients
from benchmarks.timing import later_epochs_rate
from benchmarks.trial_memory import peak_rss_mib

# 1280x720 is GoPro's frame; --quick keeps the pair counts small.
_SCALE = {
    "quick": {"pairs": (6, 12), "memory_pairs": (6, 12), "width": 640, "height": 360, "batches": 30},
    "full": {"pairs": (30, 300), "memory_pairs": (30, 100, 300), "width": 1280, "height": 720, "batches": 200},
}
_PATCH, _BATCH, _FIT_STEPS = 64, 16, 20
_PRECISION_BUDGET = {"quick": {"epochs": 2, "steps_per_epoch": 5}, "full": {"epochs": 4, "steps_per_epoch": 25}}


def _write_pair(root: Path, split: str, index: int, width: int, height: int) -> None:
    """One sharp image (smooth colour fields plus fine texture, as in a photo) and its blur."""
    import numpy as np
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(index)
    coarse = rng.integers(0, 256, (height // 40 + 1, width // 40 + 1, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), dtype=np.int16)
    sharp = np.clip(smooth + rng.integers(-24, 25, (height, width, 1), dtype=np.int16), 0, 255).astype(np.uint8)
    image = Image.fromarray(sharp)
    name = f"{index:04d}.png"
    image.save(root / split / "sharp" / name, compress_level=1)
    image.filter(ImageFilter.GaussianBlur(3)).save(root / split / "blur" / name, compress_level=1)


def _make_dataset(root: Path, name: str, pairs: int, width: int, height: int) -> tuple[Path, str]:
    """``pairs`` training pairs and two test pairs of ``width`` x ``height`` PNGs."""
    for split in ("train", "test"):
        for kind in ("blur", "sharp"):
            (root / name / split / kind).mkdir(parents=True)
    jobs = [("train", i) for i in range(pairs)] + [("test", i) for i in range(2)]
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:  # PIL releases the GIL while encoding
        list(pool.map(lambda job: _write_pair(root / name, job[0], job[1], width, height), jobs))
    return root, name


# A trial's data path (see benchmarks.trial_memory): the training split feeding 20 steps of
# the model's fit, then every evaluation crop of the test split.
_TRIAL = f"""
pairs = split("train")
from model.params import TrainParams
from model.train import compiled_model
net = compiled_model(TrainParams(batch_size={_BATCH}, patch_size={_PATCH}), None)
net.fit(train_pipeline(pairs, patch_size={_PATCH}, batch_size={_BATCH}, seed=0), steps_per_epoch={_FIT_STEPS}, epochs=1, verbose=0)
for blur, sharp in eval_arrays(split("test")):
    pass
"""


def _patches_per_s(stream: Any, batches: int) -> float:
    iterator = iter(stream)
    for _ in range(5):  # warm-up: tracing, first reads
        next(iterator)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    rate = batches * _BATCH / (time.perf_counter() - t0)
    del iterator  # a live numpy_function iterator must not outlive the process (model.data)
    return rate


def _model_images_per_s(stream: Any) -> float:
    """What one trial's model consumes (float32, 64x64, batch 16): epochs 2..3 of a fit."""
    import keras

    from model.params import TrainParams
    from model.train import compiled_model

    net = compiled_model(TrainParams(batch_size=_BATCH, patch_size=_PATCH), None)
    ends: list[float] = []
    timer = keras.callbacks.LambdaCallback(on_epoch_end=lambda *_: ends.append(time.perf_counter()))
    net.fit(stream, steps_per_epoch=_FIT_STEPS, epochs=3, verbose=0, callbacks=[timer])
    return 2 * _FIT_STEPS * _BATCH / (ends[-1] - ends[0])


def bench_dataset_scale(quick: bool) -> Figures:
    """A generated GoPro-size dataset (1280x720, 300 training pairs; --quick: 640x360, 12):
    cache build time, the cached pipeline's patches/s against the model's consumption (one
    thread each, as a 1-CPU trial has), and a trial's peak RSS at two sizes, cached and in memory."""
    from model.cache import open_split
    from model.data import DatasetRef, train_pipeline
    from model.runtime import configure_runtime

    size = _SCALE["quick" if quick else "full"]
    configure_runtime(1, deterministic=False)
    figures: Figures = {"width": size["width"], "height": size["height"], "patch_size": _PATCH, "batch_size": _BATCH}
    with tempfile.TemporaryDirectory() as tmp:
        refs = {}
        for n in sorted(set(size["pairs"]) | set(size["memory_pairs"])):
            t0 = time.perf_counter()
            refs[n] = _make_dataset(Path(tmp), f"pairs{n}", n, size["width"], size["height"])
            figures[f"generate_s_{n}"] = time.perf_counter() - t0
        largest = max(size["pairs"])
        ref = DatasetRef(*refs[largest])
        t0 = time.perf_counter()
        cached = open_split(ref, "train")
        figures["cache_build_s"] = time.perf_counter() - t0
        figures["cache_mib"] = cached.file.stat().st_size / 2**20
        figures["float32_in_memory_mib"] = figures["cache_mib"] * 4
        t0 = time.perf_counter()
        open_split(ref, "train")
        figures["cache_open_s"] = time.perf_counter() - t0  # every later trial on the node
        stream = train_pipeline(cached, patch_size=_PATCH, batch_size=_BATCH, seed=0)
        figures["pipeline_patches_per_s"] = _patches_per_s(stream, size["batches"])
        figures["model_images_per_s"] = _model_images_per_s(stream)
        figures["pipeline_over_model"] = figures["pipeline_patches_per_s"] / figures["model_images_per_s"]
        for n in size["pairs"]:
            figures[f"trial_peak_rss_mib_cached_{n}"] = peak_rss_mib(_TRIAL, refs[n], "cache", timeout=3600)
        for n in size["memory_pairs"]:
            figures[f"trial_peak_rss_mib_in_memory_{n}"] = peak_rss_mib(_TRIAL, refs[n], "memory", timeout=3600)
    small, large = size["pairs"]
    figures["cached_rss_growth_mib"] = (figures[f"trial_peak_rss_mib_cached_{large}"]
                                        - figures[f"trial_peak_rss_mib_cached_{small}"])
    return figures


def bench_precision(quick: bool) -> Figures:
    """Every precision side by side on one core: a fixed budget of ``model.train`` (64x64,
    batch 16, the write-up's RMSprop + MAE) on the built-in synthetic data; images/s and the
    val_psnr it reached, and what ``auto`` resolves to here."""
    from model.data import DatasetRef
    from model.params import PRECISIONS, TrainParams
    from model.runtime import configure_runtime, resolve_precision
    from model.synth import synthesize
    from model.train import train

    configure_runtime(1, deterministic=False)
    budget = _PRECISION_BUDGET["quick" if quick else "full"]
    figures: Figures = {"auto_resolves_to": resolve_precision("auto"), **budget, "patch_size": _PATCH,
                        "batch_size": _BATCH, "threads": 1}
    with tempfile.TemporaryDirectory() as tmp:
        synthesize(Path(tmp), "synthetic", n_train=24, n_test=6, size=128, seed=0, kernel_size=17)
        ref = DatasetRef(Path(tmp), "synthetic")
        for precision in (p for p in PRECISIONS if p != "auto"):
            result = train(TrainParams(precision=precision, batch_size=_BATCH, patch_size=_PATCH, **budget), ref)
            figures[precision] = {
                "images_per_s": result.images_per_second,
                "later_epochs_images_per_s": later_epochs_rate(result.history, budget["steps_per_epoch"] * _BATCH),
                "val_psnr": result.final["val_psnr"], "best_val_psnr": result.best["val_psnr"],
                "seconds": result.seconds,
            }
    base = figures["float32"]["later_epochs_images_per_s"]
    for precision in (p for p in PRECISIONS if p not in ("auto", "float32")):
        figures[precision]["speed_over_float32"] = figures[precision]["later_epochs_images_per_s"] / base
        figures[precision]["psnr_minus_float32_db"] = figures[precision]["val_psnr"] - figures["float32"]["val_psnr"]
    return figures



def bench_conv_arithmetic(quick: bool) -> Figures:
    """The network's 16-bit convolutions against TensorFlow's own kernels, on one core: how
    many of the output and gradient values equal the exact result (float64 on the same 16-bit
    values) rounded once, their mean relative error, and seconds for a forward + backward pass
    of a residual-block convolution (batch 16, 32x32, 128 -> 128 channels; float32 beside)."""
    import numpy as np
    import tensorflow as tf
    from keras import layers

    from model.architecture import _Conv2D, _Conv2DTranspose
    from model.runtime import accumulates_in_float32, configure_runtime

    configure_runtime(1, deterministic=False)
    rng = np.random.default_rng(0)
    repeats = 2 if quick else 5
    figures: Figures = {"threads": 1, "repeats": repeats}

    for dtype in ("bfloat16", "float16"):
        figures[dtype] = {"accumulates_in_float32": accumulates_in_float32(dtype)}
        for kind, ours, stock, strides in (("conv", _Conv2D, layers.Conv2D, 1),
                                           ("transpose", _Conv2DTranspose, layers.Conv2DTranspose, 2)):
            x = tf.cast(rng.standard_normal((16, 32, 32, 128)), dtype)
            made = {}
            for name, cls, policy in (("network", ours, f"mixed_{dtype}"), ("tensorflow", stock, f"mixed_{dtype}"),
                                      ("exact", stock, "float64"), ("float32", stock, "float32")):
                made[name] = cls(128, 3, strides=strides, padding="same", use_bias=False, dtype=policy)
                made[name].build(x.shape)
            kernel = tf.cast(rng.standard_normal(made["exact"].kernel.shape) * 0.03, dtype)
            for layer in made.values():
                layer.kernel.assign(tf.cast(kernel, layer.kernel.dtype))
            upstream = tf.cast(rng.standard_normal(made["exact"].compute_output_shape(x.shape)), dtype)
            exact = [tf.cast(v, dtype) for v in values_and_gradients(made["exact"], tf.cast(x, tf.float64), upstream)]
            row: dict[str, Any] = {}
            for name in ("network", "tensorflow", "float32"):
                inputs = x if name != "float32" else tf.cast(x, tf.float32)
                values = values_and_gradients(made[name], inputs, upstream)
                started = time.perf_counter()
                for _ in range(repeats):
                    values_and_gradients(made[name], inputs, upstream)
                row[f"{name}_seconds"] = (time.perf_counter() - started) / repeats
                if name == "float32":
                    continue
                for part, got, want in zip(("output", "input_gradient", "kernel_gradient"), values, exact):
                    got64, want64 = (np.asarray(tf.cast(v, tf.float64)) for v in (tf.cast(got, dtype), want))
                    row[f"{name}_{part}_equal_to_exact"] = float(np.mean(got64 == want64))
                    row[f"{name}_{part}_mean_relative_error"] = float(
                        np.mean(np.abs(got64 - want64)) / np.mean(np.abs(want64)))
            figures[dtype][kind] = row
    return figures
