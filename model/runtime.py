"""TensorFlow runtime set-up for one process: CPU threads, GPU memory growth, determinism,
and what ``precision: auto`` means on this process's hardware.

Must run before TensorFlow executes its first op (thread pools are fixed after that);
the Ray trainable calls it first thing in each worker with the CPUs Ray granted.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import sys
import tempfile
from typing import Collection, Iterator, NamedTuple, NoReturn, Sequence

__all__ = ["NATIVE_CPU_FLAGS", "VERBOSE_ENV", "configure_runtime", "CpuInfo", "RuntimeInfo", "accumulates_in_float32",
           "choose_precision", "cpu_emulates", "cpu_info",
           "exit_now", "is_startup_noise", "resolve_precision"]

_log = logging.getLogger(__name__)

# Keep TensorFlow's C++ start-up chatter (CPU feature banners, oneDNN notes) out of
# the user's terminal; real errors still surface as Python exceptions.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

VERBOSE_ENV = "SWEEPER_VERBOSE"
"""Set (to anything but empty) by ``sweeper --verbose``: TensorFlow's and Ray's start-up lines are shown."""

# What TensorFlow's C++ prints at start-up whatever TF_CPP_MIN_LOG_LEVEL says (absl logs before
# absl::InitializeLog go straight to stderr): CUDA probes of a machine without a GPU, and the
# duplicate-registration notes of its CUDA plugins. Nothing a user acts on.
_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called|cudart_stub\.cc|failed call to cuInit"
    r"|Unable to register cu(DNN|FFT|BLAS) factory|computation placer already registered"
    r"|oneDNN custom operations are on|TensorFlow binary is optimized to use available CPU instructions"
    r"|rebuild TensorFlow with the appropriate compiler flags"
)


def exit_now(code: int) -> NoReturn:
    """End this process with ``code`` at once, its log records and output flushed first.

    ``os._exit``, not the interpreter's teardown: at teardown pyarrow's thread pools (the ledger
    is parquet) can abort the process with SIGABRT (apache/arrow#34314), and Ray's exit handlers
    wait on a cluster that may be gone. Callers end only where no exit handler of theirs is due.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader that left (`| head`), a closed stream
            stream.flush()
    os._exit(code)


def is_startup_noise(line: str) -> bool:
    """Whether ``line`` (of TensorFlow's stderr) is start-up chatter hidden unless ``--verbose``."""
    return bool(_NOISE.search(line))


@contextlib.contextmanager
def _quiet_start() -> Iterator[None]:
    """Hold file descriptor 2 while TensorFlow starts, then pass on all but its noise.

    C++ writes to the descriptor, not ``sys.stderr``, so only a redirect of fd 2 sees it.
    Once per process: later imports print nothing new.
    """
    global _started
    if _started or os.environ.get(VERBOSE_ENV) or "tensorflow" in sys.modules:
        yield
        return
    _started = True
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (a closed stderr): nothing to filter
        yield
        return
    with tempfile.TemporaryFile(mode="w+b") as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [line for line in held.read().decode(errors="replace").splitlines(keepends=True)
                    if not is_startup_noise(line)]
            if kept:
                os.write(2, "".join(kept).encode())


_started = False


class RuntimeInfo(dict):
    """What :func:`configure_runtime` set: ``{"cpus", "gpus", "deterministic"}``."""


def configure_runtime(cpus: int | None = None, *, deterministic: bool = True) -> RuntimeInfo:
    """Pin TensorFlow to ``cpus`` threads, let GPU memory grow, and make CPU runs repeatable.

    Args:
        cpus: Intra-op threads (the CPUs the scheduler granted); ``None`` keeps TF's default.
        deterministic: Enable op determinism when no GPU is visible, so the same params and
            seed give the same numbers on CPU. On GPU it is left off: deterministic cuDNN
            kernels are much slower, and GPU sweeps compare across seeds anyway.

    Returns:
        The settings applied. Calling it after TensorFlow has started keeps the thread
        settings already in force (logged, not raised): they cannot change then.
    """
    with _quiet_start():
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")  # where CUDA's probe prints, when it does
    for gpu in gpus:
        try:
            # Without growth TF grabs the whole card at start-up, which breaks fractional
            # GPU sharing between trials and co-located processes.
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError as err:  # already initialised
            _log.debug("memory growth not set on %s: %s", gpu.name, err)
    if cpus is not None:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(max(1, int(cpus)))
            tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, int(cpus))))
        except RuntimeError as err:
            _log.debug("thread counts not changed: %s", err)
    det = bool(deterministic and not gpus)
    if det:
        tf.config.experimental.enable_op_determinism()
    return RuntimeInfo(cpus=cpus, gpus=len(gpus), deterministic=det)


NATIVE_CPU_FLAGS: dict[str, tuple[str, ...]] = {
    "mixed_bfloat16": ("avx512_bf16", "amx_bf16"),
    "mixed_float16": ("avx512_fp16", "amx_fp16"),
}
"""CPU flags (Linux ``/proc/cpuinfo`` names) of native 16-bit float arithmetic, by the Keras
mixed policy that computes in it: any one of them is enough."""
# Tensor cores (float16 matrix units) arrived with compute capability 7.0 (V100; T4 is 7.5).
_TENSOR_CORES = (7, 0)


def choose_precision(gpu_capabilities: Sequence[tuple[int, int]], cpu_flags: Collection[str]) -> str:
    """The Keras dtype policy ``auto`` picks for this hardware.

    Args:
        gpu_capabilities: CUDA compute capability of each visible GPU (none: CPU training).
        cpu_flags: The CPU's feature flags, as ``/proc/cpuinfo`` names them.

    Returns:
        ``mixed_float16`` when every GPU has tensor cores; ``float32`` on older GPUs;
        on CPU, ``mixed_bfloat16`` when bf16 is native and ``float32`` otherwise (emulated
        bf16 is no faster than float32: :func:`accumulates_in_float32`).
    """
    if gpu_capabilities:
        return "mixed_float16" if min(tuple(c) for c in gpu_capabilities) >= _TENSOR_CORES else "float32"
    return "float32" if cpu_emulates("mixed_bfloat16", cpu_flags) else "mixed_bfloat16"


def cpu_emulates(policy: str, cpu_flags: Collection[str] | None = None) -> bool:
    """Whether a CPU computes ``policy``'s 16-bit floats in software, for lack of every flag
    :data:`NATIVE_CPU_FLAGS` lists for it (there the network's convolutions accumulate in
    float32: :func:`accumulates_in_float32`).

    Args:
        policy: A Keras dtype policy; ``float32`` and ``auto`` are never emulated.
        cpu_flags: The CPU's feature flags; ``None`` reads this machine's.
    """
    native = NATIVE_CPU_FLAGS.get(policy)
    if native is None:
        return False
    return not set(native) & set(_cpu_flags() if cpu_flags is None else cpu_flags)


def accumulates_in_float32(dtype: str, cpu_flags: Collection[str] | None = None) -> bool:
    """Whether the model's convolutions on ``dtype`` values compute in float32 in this process.

    True for a 16-bit ``dtype`` that this process computes on a CPU without native arithmetic
    for it (:func:`cpu_emulates`; no GPU visible). There TensorFlow's own 16-bit convolution
    kernels sum the backward passes (and the transposed convolution) in 16 bits: on an
    AVX2-only EPYC 5-16% of bf16 gradients equal the exact result rounded once, 1-3% off on
    average, and training ran 11x slower than float32. Native 16-bit hardware (oneDNN on
    AVX512-BF16 or AMX, GPU tensor cores) sums 16-bit products in a float32 accumulator and
    rounds once; computing in float32 on the 16-bit values (exact) and rounding the result is
    that arithmetic (99.99% equal the once-rounded exact result), at about float32's speed
    (0.92x for bf16, benchmarks/README.md). ``cpu_flags``: the CPU's flags; ``None`` reads
    this machine's.
    """
    if not cpu_emulates(f"mixed_{dtype}", cpu_flags):  # the mixed policy computing in dtype; none for float32
        return False
    import tensorflow as tf

    return not tf.config.list_logical_devices("GPU")


def resolve_precision(precision: str) -> str:
    """``precision`` as a Keras dtype policy: itself, or for ``"auto"`` what
    :func:`choose_precision` picks for the GPUs TensorFlow sees here and this CPU."""
    if precision != "auto":
        return precision
    import tensorflow as tf

    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        capabilities.append(tuple(capability) if capability else (0, 0))  # unknown: no tensor cores assumed
    return choose_precision(capabilities, _cpu_flags())


class CpuInfo(NamedTuple):
    """This machine's first CPU as ``/proc/cpuinfo`` describes it (``unknown`` / no flags elsewhere)."""

    model: str
    flags: frozenset[str]


@functools.cache  # asked on every 16-bit convolution's trace; a CPU does not change
def cpu_info(path: str = "/proc/cpuinfo") -> CpuInfo:
    """The first CPU's model name and feature flags, read once from ``path``."""
    model, flags = "unknown", None
    try:
        with open(path, encoding="ascii", errors="replace") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model == "unknown":
                    model = value.strip()
                elif key.strip() == "flags" and flags is None:
                    flags = frozenset(value.split())
                if model != "unknown" and flags is not None:
                    break
    except OSError:  # not Linux: no flag is known, so no bf16 is assumed
        pass
    return CpuInfo(model, flags or frozenset())


def _cpu_flags() -> frozenset[str]:
    return cpu_info().flags
