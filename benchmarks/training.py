"""Benchmarks of the model on this machine: training throughput against bare Keras and the
CPU's matmul roofline (``train_throughput``), and inference speed (``inference``)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Figures, tiny_dataset
from benchmarks.timing import later_epochs_rate, median_seconds

__all__ = ["bench_inference", "bench_train_throughput", "forward_flops_per_image"]

# Sizes per mode; --quick keeps the whole run to a few minutes on a busy 2-core machine.
_SIZES: dict[str, dict[str, Any]] = {
    "quick": {
        "train": {"batch_size": 4, "patch_size": 32, "steps_per_epoch": 3, "epochs": 3},
        "matmul_sizes": [1024, 2048],
        "matmul_repeats": 5,
        "inference_calls": 20,
        "batch16_calls": 3,
    },
    "full": {
        "train": {"batch_size": 16, "patch_size": 64, "steps_per_epoch": 20, "epochs": 4},
        "matmul_sizes": [1024, 2048, 4096],
        "matmul_repeats": 10,
        "inference_calls": 50,
        "batch16_calls": 10,
    },
}


def forward_flops_per_image(patch: int) -> int:
    """Multiply-add FLOPs (2 per MAC) of one forward pass at ``patch`` x ``patch``, counted
    analytically from the model's convolution kernels and output shapes.

    Conv2D: 2*Ho*Wo*k*k*Cin*Cout. Conv2DTranspose (stride s): 2*Hin*Win*k*k*Cin*Cout.
    Convolutions nested in a layer (ResidualBlock) are stride 1 "same", so they use the
    enclosing layer's output size. Pooling, BN, ReLU, adds and concatenations are ignored
    (well under 1% of the total).
    """
    import keras

    from model.architecture import build_model

    net = build_model((patch, patch, 3))
    total = 0
    for layer in net.layers:
        convs = [layer] if isinstance(layer, keras.layers.Conv2D | keras.layers.Conv2DTranspose) else [
            sub for sub in layer._flatten_layers(include_self=False) if isinstance(sub, keras.layers.Conv2D)
        ]
        for conv in convs:
            kh, kw, a, b = conv.kernel.shape
            _, ho, wo, _ = layer.output.shape
            if isinstance(conv, keras.layers.Conv2DTranspose):  # kernel (k, k, Cout, Cin)
                s = conv.strides[0]
                total += 2 * (ho // s) * (wo // s) * kh * kw * a * b
            else:  # kernel (k, k, Cin, Cout)
                total += 2 * ho * wo * kh * kw * a * b
    return total


def _bare_fit_rate(p: Any, blur: Any, sharp: Any, *, jit_compile: bool = False, policy: str | None = None) -> float:
    """Images/s of a bare ``model.fit`` on in-memory arrays over epochs 2..last.

    Same model, optimizer, loss and compile as ``model.train`` (``compiled_model``);
    ``jit_compile`` and a Keras dtype ``policy`` (e.g. ``mixed_bfloat16``) give the variants.
    """
    import keras

    from model.train import compiled_model

    previous = keras.mixed_precision.global_policy().name
    if policy is not None:
        keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(p.seed)
        net = compiled_model(p, vgg_weights=None, jit_compile=jit_compile)
        ends: list[float] = []
        timer = keras.callbacks.LambdaCallback(on_epoch_end=lambda *_: ends.append(time.perf_counter()))
        t0 = time.perf_counter()
        net.fit(blur, sharp, batch_size=p.batch_size, epochs=p.epochs, shuffle=False, verbose=0, callbacks=[timer])
    finally:
        keras.mixed_precision.set_global_policy(previous)
    per_epoch = p.steps_per_epoch * p.batch_size
    marks = [t0, *ends]
    return (p.epochs - 1) * per_epoch / (marks[-1] - marks[1]) if p.epochs > 1 else per_epoch / (marks[1] - t0)


def _matmul_peak(sizes: list[int], repeats: int, dtype: str = "float32") -> tuple[float, dict[str, float]]:
    """The machine's dense-matmul FLOP/s: the best, over ``sizes``, of the median of ``repeats``.

    One size alone is a poor ceiling on a shared 2-core VM (2048 x 2048 was seen at 175 and at
    289 GFLOP/s in two processes a minute apart); a roofline needs the best the CPU sustains.
    """
    import tensorflow as tf

    by_n = {}
    for n in sizes:
        a = tf.cast(tf.random.normal((n, n)), dtype)
        b = tf.cast(tf.random.normal((n, n)), dtype)
        matmul = tf.function(lambda: tf.matmul(a, b))
        by_n[str(n)] = 2 * n**3 / median_seconds(lambda: matmul().numpy(), repeats)
    return max(by_n.values()), by_n


def bench_train_throughput(quick: bool) -> Figures:
    """model.train's fit loop vs a bare model.fit, counted FLOPs, a matmul roofline, and the
    variants tried (XLA; bf16 mixed precision on CPUs with native bf16), side by side."""
    import numpy as np

    from model.data import DatasetRef, load_split, train_pipeline
    from model.params import TrainParams
    from model.runtime import configure_runtime, cpu_emulates
    from model.train import train

    sizes = _SIZES["quick" if quick else "full"]
    threads = os.cpu_count() or 1
    configure_runtime(threads, deterministic=False)
    # The ceiling first, on a cold process: nothing of the training is resident yet.
    matmul_flops, matmul_by_n = _matmul_peak(sizes["matmul_sizes"], sizes["matmul_repeats"])
    p = TrainParams(**sizes["train"])
    per_epoch = p.steps_per_epoch * p.batch_size
    with tempfile.TemporaryDirectory() as tmp:
        ref = DatasetRef(*tiny_dataset(Path(tmp), size=max(48, p.patch_size * 2)))
        result = train(p, ref)
        images_per_s = later_epochs_rate(result.history, per_epoch)

        # Bare keras: the same patches, materialised once, same optimizer/loss via the same compile.
        stream = train_pipeline(load_split(ref, "train"), patch_size=p.patch_size, batch_size=p.batch_size,
                                seed=p.seed)
        blur, sharp = (np.concatenate(t) for t in zip(*((b.numpy(), s.numpy())
                                                      for b, s in stream.take(p.steps_per_epoch))))
    bare = _bare_fit_rate(p, blur, sharp)
    variants: Figures = {"xla_images_per_s": _bare_fit_rate(p, blur, sharp, jit_compile=True)}
    if not cpu_emulates("mixed_bfloat16"):  # elsewhere TF emulates bf16, which says nothing
        variants["bf16_mixed_images_per_s"] = _bare_fit_rate(p, blur, sharp, policy="mixed_bfloat16")
        variants["bf16_matmul_flops_per_s"] = _matmul_peak(sizes["matmul_sizes"], sizes["matmul_repeats"],
                                                           "bfloat16")[0]
    for key in [k for k in variants if k.endswith("images_per_s")]:
        variants[key.replace("images_per_s", "speedup")] = variants[key] / bare

    forward = forward_flops_per_image(p.patch_size)
    step_flops = 3 * forward * p.batch_size  # backward ~ 2x forward
    achieved = step_flops / p.batch_size * images_per_s
    return {
        "images_per_s": images_per_s,
        "bare_keras_images_per_s": bare,
        "ratio_to_bare_keras": images_per_s / bare,
        "train_flops_per_step": step_flops,
        "flops_method": "analytic conv count: 2*H*W*k*k*Cin*Cout per conv forward, x3 forward+backward",
        "achieved_flops_per_s": achieved,
        "matmul_flops_per_s": matmul_flops,
        "matmul_flops_per_s_by_n": matmul_by_n,
        "roofline_fraction": achieved / matmul_flops,
        "variants": variants,
        "batch_size": p.batch_size,
        "patch_size": p.patch_size,
        "steps_per_epoch": p.steps_per_epoch,
        "epochs": p.epochs,
        "timed_epochs": "2..last (epoch 1 is warm-up)",
        "threads": threads,
    }


def bench_inference(quick: bool) -> Figures:
    """Forward-pass latency at 256x256 (batch 1), throughput at batch 16, saved model size."""
    import tensorflow as tf

    from model.architecture import build_model
    from model.runtime import configure_runtime

    sizes = _SIZES["quick" if quick else "full"]
    threads = os.cpu_count() or 1
    configure_runtime(threads, deterministic=False)
    net = build_model()
    forward = tf.function(lambda x: net(x, training=False), reduce_retracing=True)
    one = tf.random.uniform((1, 256, 256, 3))
    sixteen = tf.random.uniform((16, 256, 256, 3))
    ms = 1000 * median_seconds(lambda: forward(one).numpy(), sizes["inference_calls"])
    batch_s = median_seconds(lambda: forward(sixteen).numpy(), sizes["batch16_calls"])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "deblur.keras"
        net.save(path)
        mb = path.stat().st_size / 2**20
    return {
        "ms_per_image_256": ms,
        "images_per_s_batch16": 16 / batch_s,
        "model_file_mb": mb,
        "calls_batch1": sizes["inference_calls"],
        "calls_batch16": sizes["batch16_calls"],
        "threads": threads,
        "note": "CPU figures; the write-up's 28 ms is on a T4 GPU and not comparable",
    }
