"""Shared fixtures: tiny synthetic datasets made on disk, a quiet, repeatable TF runtime, and
helpers several test modules use (one-line errors, a free port, a light CLI run)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Callable

import pytest

# Quiet TF start-up and keep test processes from stepping on each other's cores.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]


def synthetic_ref(factory: pytest.TempPathFactory, name: str, **options: object) -> "object":
    """A real synthetic dataset of 32x32 pairs in the DBlur layout, in a fresh temp folder."""
    from model.data import DatasetRef
    from model.synth import synthesize

    out = factory.mktemp(name)
    synthesize(out, name, size=32, kernel_size=7, **options)
    return DatasetRef(out, name)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> "object":
    """3 train and 2 test pairs of 32x32."""
    return synthetic_ref(tmp_path_factory, "tiny", n_train=3, n_test=2, seed=0)


@pytest.fixture(scope="session")
def tf_runtime() -> None:
    """Configure TF once per test process (threads are fixed after the first op)."""
    from model.runtime import configure_runtime

    configure_runtime(cpus=2, deterministic=True)


def tiny_params(**overrides: object) -> dict:
    """Training params small enough to run in seconds on 2 cores."""
    params = dict(optimizer="adam", loss="mae", learning_rate=0.001, epochs=2, steps_per_epoch=3, batch_size=2, patch_size=16, seed=0)
    params.update(overrides)
    return params


def one_line_error(kind: type[Exception], call: Callable[..., object], *args: object, **kwargs: object) -> str:
    """Run ``call(*args, **kwargs)``; it must raise ``kind`` with a one-line message.

    Returns:
        The message.
    """
    with pytest.raises(kind) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (the OS's pick, so tests never collide)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli_light(argv: list[str], heavy: tuple[str, ...] = ("tensorflow", "ray", "keras", "wandb")) -> "object":
    """Run ``sweeper <argv>`` in a fresh interpreter and fail if it imported any ``heavy`` module.

    Returns:
        The finished ``subprocess.CompletedProcess`` (stdout is the command's output).
    """
    import subprocess
    import sys

    code = (
        "import sys\nfrom sweeper.cli import app\n"
        f"try:\n    app({argv!r})\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        f"heavy = [m for m in {heavy!r} if m in sys.modules]\nassert not heavy, heavy\n"
        # end as `sweeper` itself does (cli.main): pyarrow's teardown can abort a finished process
        "from model.runtime import exit_now\nexit_now(0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def t4_ray():
    """A local Ray advertising two fake GPUs of type T4 (no real GPU is used)."""
    import ray

    ray.shutdown()
    # address="local": a new private instance. A bare ray.init joins the cluster named in
    # /tmp/ray/ray_current_cluster when one is up, as another test run's two-node cluster was once.
    ray.init(address="local", num_cpus=2, num_gpus=2, resources={"accelerator_type:T4": 1},
             include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()

