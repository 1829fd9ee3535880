"""The CLI through Typer's CliRunner and as real subprocesses: one-line errors, no tracebacks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sweeper.cli import app
from tests.conftest import ROOT

runner = CliRunner()


def _sweeper(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sweeper.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def _one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("sweeper: error:")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_help_imports_neither_tensorflow_nor_ray() -> None:
    code = (
        "import sys\n"
        "from sweeper.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'ray', 'wandb') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "train" in proc.stdout and "predict" in proc.stdout


def test_data_synth_writes_the_dblur_layout(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "synth", "--out", str(tmp_path), "--name", "s", "--train", "2", "--test", "1", "--size", "32", "--kernel-size", "7"])
    assert result.exit_code == 0, result.output
    for split, n in (("train", 2), ("test", 1)):
        blur = sorted(p.name for p in (tmp_path / "s" / split / "blur").iterdir())
        sharp = sorted(p.name for p in (tmp_path / "s" / split / "sharp").iterdir())
        assert blur == sharp and len(blur) == n


def test_data_synth_bad_argument_is_one_line_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "synth", "--out", str(tmp_path), "--size", "30"])
    assert result.exit_code == 2
    assert "size" in _one_line_error(result.stderr)


def test_train_bad_optimizer_suggests_the_closest(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--optimizer", "rmsprp", "--dataset-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "did you mean 'rmsprop'?" in _one_line_error(result.stderr)


def test_train_missing_dataset_names_its_path(tmp_path: Path) -> None:
    proc = _sweeper("train", "--dataset-dir", str(tmp_path), "--dataset-name", "gopro", "--epochs", "1")
    assert proc.returncode == 1
    assert str(tmp_path / "gopro") in _one_line_error(proc.stderr)


def test_train_corrupt_image_names_the_file(tiny_data: object, tmp_path: Path) -> None:
    copy = tmp_path / "bad"
    shutil.copytree(tiny_data.root, copy)
    victim = sorted((copy / "train" / "sharp").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:40])  # truncated PNG
    proc = _sweeper("train", "--dataset-dir", str(tmp_path), "--dataset-name", "bad", "--epochs", "1")
    assert proc.returncode == 1
    assert victim.name in _one_line_error(proc.stderr)


def test_train_on_the_synthetic_default_makes_it_on_first_use(tmp_path: Path) -> None:
    """`sweeper train` with no dataset makes the synthetic one, then trains (CliRunner)."""
    pytest.importorskip("tensorflow")
    result = runner.invoke(
        app,
        ["train", "--dataset-dir", str(tmp_path / "data"), "--model-path", str(tmp_path / "m.keras"),
         "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2", "--patch-size", "16"],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data" / "synthetic" / "train" / "blur").is_dir()
    assert "best val_psnr" in result.stdout and (tmp_path / "m.keras").is_file()
    # ... and the model it saved deblurs a folder through `sweeper predict` (here of one image)
    one = tmp_path / "one"
    one.mkdir()
    first = sorted((tmp_path / "data" / "synthetic" / "test" / "blur").iterdir())[0]
    shutil.copy(first, one / first.name)
    result = runner.invoke(app, ["predict", "--model", str(tmp_path / "m.keras"), "--input", str(one),
                                 "--output", str(tmp_path / "restored")])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"restored 1 image into {tmp_path / 'restored'}: "), result.stdout
    assert [p.name for p in (tmp_path / "restored").iterdir()] == [first.name]


def test_tensorflows_startup_lines_show_only_with_verbose(tiny_data: object, tmp_path: Path) -> None:
    """TensorFlow prints CUDA probes on a machine without a GPU whatever TF_CPP_MIN_LOG_LEVEL says;
    `sweeper train` hides them (and only them), `sweeper --verbose train` shows them."""
    from model.runtime import is_startup_noise

    args = ["train", "--dataset-dir", str(tiny_data.dir), "--dataset-name", tiny_data.name, "--epochs", "1",
            "--steps-per-epoch", "1", "--batch-size", "1", "--patch-size", "16", "--model-path", str(tmp_path / "m.keras")]
    quiet, verbose = _sweeper(*args), _sweeper("--verbose", *args)
    assert quiet.returncode == 0 and verbose.returncode == 0, (quiet.stderr, verbose.stderr)
    assert "best val_psnr" in quiet.stdout and "best val_psnr" in verbose.stdout
    assert not [line for line in quiet.stderr.splitlines() if is_startup_noise(line)], quiet.stderr
    assert "cudart_stub" in verbose.stderr  # this machine has no CUDA: the probe speaks
    assert is_startup_noise("I0000 00:00:1.0  7 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)")
    assert not is_startup_noise("E0000 00:00:1.0  7 op_kernel.cc:1] OOM when allocating tensor")


def test_predict_missing_model_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["predict", "--model", str(tmp_path / "nope.keras"), "--input", str(tmp_path), "--output", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "nope.keras" in _one_line_error(result.stderr)
