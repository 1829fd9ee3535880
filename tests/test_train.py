"""One real training run end to end: learning, determinism, divergence, saving, predicting."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, synthetic_ref, tiny_params

pytestmark = pytest.mark.usefixtures("tf_runtime")


@pytest.fixture(scope="module")
def one_pair(tmp_path_factory: pytest.TempPathFactory) -> "object":
    """A dataset of a single 32x32 pair, to overfit."""
    return synthetic_ref(tmp_path_factory, "one", n_train=1, n_test=1, seed=3)


def test_thirty_steps_on_one_pair_lower_the_loss(one_pair: object, tmp_path: Path) -> None:
    from model.train import train

    seen: list[tuple[int, dict]] = []
    result = train(
        tiny_params(epochs=3, steps_per_epoch=10, batch_size=1, patch_size=32, learning_rate=0.003),
        one_pair,
        model_path=tmp_path / "best.keras",
        on_epoch=lambda e, m: seen.append((e, m)),
    )
    assert result.status == "ok" and result.error is None
    losses = [m["train_loss"] for m in result.history]
    assert losses[-1] < losses[0]
    assert [e for e, _ in seen] == [1, 2, 3] and len(result.history) == result.epochs_run == 3
    assert set(seen[0][1]) == {"epoch", "train_loss", "val_psnr", "val_ssim", "val_mae", "images_per_second",
                               "seconds"}
    assert 0 < seen[0][1]["seconds"] < seen[1][1]["seconds"] < seen[2][1]["seconds"] <= result.seconds
    assert result.best["val_psnr"] == max(m["val_psnr"] for m in result.history)
    assert result.history[result.best_epoch - 1] == result.best
    assert result.images_per_second > 0 and result.seconds > 0
    assert result.model_path == tmp_path / "best.keras" and result.model_path.is_file()


def test_bfloat16_mixed_precision_trains_and_scores_in_float32(tiny_data: object) -> None:
    from model.train import train

    result = train(tiny_params(precision="mixed_bfloat16"), tiny_data, samples=1)
    assert result.status == "ok" and result.epochs_run == 2
    assert all(isinstance(m["val_psnr"], float) and m["val_psnr"] > 10 for m in result.history)
    assert result.samples[0][1].dtype.name == "uint8"  # restored through the float32 output


@pytest.mark.parametrize(("gpus", "flags", "policy"), [
    ([(7, 5)], {"avx2"}, "mixed_float16"),             # a T4: tensor cores
    ([(8, 0), (7, 0)], set(), "mixed_float16"),         # every GPU has them
    ([(7, 5), (6, 0)], {"avx512_bf16"}, "float32"),     # a P100 among them: no float16 matrix units
    ([], {"avx2", "fma"}, "float32"),                   # emulated bf16 is slower than float32
    ([], {"avx512f", "avx512_bf16"}, "mixed_bfloat16"),
    ([], {"amx_bf16"}, "mixed_bfloat16"),
])
def test_auto_precision_follows_the_hardware(gpus: list, flags: set, policy: str) -> None:
    from model.runtime import choose_precision

    assert choose_precision(gpus, flags) == policy


def test_cpu_info_reads_the_first_cpus_model_and_flags(tmp_path) -> None:
    """What ``auto`` and the bf16 warning decide from: the first processor's lines, not the last."""
    from model.runtime import CpuInfo, cpu_info

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9B14\n"
                    "flags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\nmodel name\t: Other\n"
                    "flags\t\t: fpu\n", encoding="ascii")
    assert cpu_info(str(info)) == CpuInfo("AMD EPYC 9B14", frozenset({"fpu", "avx2", "avx512_bf16"}))
    assert cpu_info(str(tmp_path / "none")) == CpuInfo("unknown", frozenset())  # not Linux: no bf16 assumed


def test_auto_precision_trains_exactly_as_the_policy_it_resolves_to(tiny_data: object) -> None:
    from model.runtime import resolve_precision
    from model.train import train

    resolved = resolve_precision("auto")
    assert resolved in {"float32", "mixed_bfloat16"} and resolve_precision("mixed_float16") == "mixed_float16"
    auto = train(tiny_params(precision="auto"), tiny_data)
    assert _metrics(auto.history) == _metrics(train(tiny_params(precision=resolved), tiny_data).history)


def _metrics(history: tuple[dict, ...]) -> list[dict]:
    """Everything but the timing, which no seed can make repeatable."""
    return [{k: v for k, v in m.items() if k not in ("images_per_second", "seconds")} for m in history]


class _Cut(Exception):
    """The run's end from outside (a kill, a lost session), as an epoch callback can raise it."""


def _cut_after(epoch: int, seen: list) -> "object":
    def on_epoch(e: int, metrics: dict) -> None:
        seen.append(dict(metrics))
        if e == epoch:
            raise _Cut
    return on_epoch


@pytest.mark.parametrize(("precision", "optimizer"), [
    ("float32", "adam"), ("mixed_bfloat16", "nadam"), ("mixed_float16", "rmsprop")])  # fp16: its loss scale too
def test_a_run_cut_short_resumes_after_its_last_epoch_bit_exactly(tiny_data: object, tmp_path: Path,
                                                                  precision: str, optimizer: str) -> None:
    """Cut after epoch 2 of 3, run again with the same checkpoint: epochs 1-2 are replayed (not
    trained: their timings are the first attempt's), epoch 3 is trained, and every number,
    the best weights' samples included, is what the uninterrupted run computed."""
    from model.train import train

    params = tiny_params(epochs=3, precision=precision, optimizer=optimizer)
    straight = train(params, tiny_data, samples=1)
    ckpt = tmp_path / "checkpoints" / "t.npz"
    first: list[dict] = []
    with pytest.raises(_Cut):
        train(params, tiny_data, samples=1, checkpoint_path=ckpt, on_epoch=_cut_after(2, first))
    assert ckpt.is_file()
    seen: list[tuple[int, dict]] = []
    resumed = train(params, tiny_data, samples=1, checkpoint_path=ckpt, on_epoch=lambda e, m: seen.append((e, m)))
    assert resumed.resumed_epochs == 2 and resumed.epochs_run == 3 and resumed.status == "ok"
    assert [e for e, _ in seen] == [1, 2, 3]
    assert [m for _, m in seen[:2]] == first  # replayed as recorded, timings included
    assert _metrics(resumed.history) == _metrics(straight.history)  # epoch 3's train_loss too
    assert resumed.best_epoch == straight.best_epoch
    for got, want in zip(resumed.samples, straight.samples):
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
    assert resumed.seconds > first[-1]["seconds"]  # the first attempt's time is counted
    assert not ckpt.exists() and not list(ckpt.parent.iterdir())  # the run is over: nothing left


def test_a_run_cut_after_its_last_epoch_returns_its_result_without_training(tiny_data: object,
                                                                            tmp_path: Path) -> None:
    """Killed between the last epoch's checkpoint and its return: run again, nothing trains."""
    from model.train import train

    ckpt = tmp_path / "t.npz"
    first: list[dict] = []
    with pytest.raises(_Cut):
        train(tiny_params(), tiny_data, checkpoint_path=ckpt, on_epoch=_cut_after(2, first))
    again = train(tiny_params(), tiny_data, checkpoint_path=ckpt)
    assert again.resumed_epochs == again.epochs_run == 2 and list(again.history) == first
    assert again.images_per_second == first[-1]["images_per_second"] and not ckpt.exists()


@pytest.mark.parametrize("bad", ["other_params", "other_keras", "torn", "misfit"])
def test_a_checkpoint_that_is_not_this_runs_is_set_aside_and_the_run_starts_over(
        tiny_data: object, tmp_path: Path, caplog: pytest.LogCaptureFixture, bad: str) -> None:
    from model.train import train

    ckpt = tmp_path / "t.npz"
    with pytest.raises(_Cut):
        train(tiny_params(seed=0 if bad == "other_params" else 1), tiny_data, checkpoint_path=ckpt,
              on_epoch=_cut_after(1, []))
    if bad == "torn":
        ckpt.write_bytes(ckpt.read_bytes()[:1000])  # as a disk that lost the file's tail
    if bad in ("misfit", "other_keras"):
        with np.load(ckpt) as npz:
            arrays = {k: npz[k] for k in npz.files}
        if bad == "misfit":  # this run's key, but an optimizer variable short (another Keras's layout)
            arrays.pop(max((k for k in arrays if k.startswith("o")), key=lambda k: int(k[1:])))
        else:  # all of this run's, but saved by another Keras
            meta = json.loads(arrays["meta"].tobytes())
            assert meta["key"]["keras"] and meta["key"]["tensorflow"]
            meta["key"]["keras"] = "2.15.0"
            arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        with open(ckpt, "wb") as handle:
            np.savez(handle, **arrays)
    with caplog.at_level("WARNING"):
        result = train(tiny_params(seed=1), tiny_data, checkpoint_path=ckpt)
    assert result.resumed_epochs == 0 and result.epochs_run == 2
    assert _metrics(result.history) == _metrics(train(tiny_params(seed=1), tiny_data).history)
    foreign = "written for other parameters, another dataset, or another TensorFlow or Keras"
    why = {"other_params": foreign, "other_keras": foreign, "torn": "cannot be read",
           "misfit": "does not fit this model"}[bad]
    assert [r.getMessage() for r in caplog.records if why in r.getMessage()], caplog.text
    assert (tmp_path / "t.npz.set-aside").is_file() == (bad != "misfit") and not ckpt.exists()


def test_a_checkpoint_that_cannot_be_written_never_fails_the_run(tiny_data: object, tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    from model.train import train

    (tmp_path / "a_file").write_text("")
    with caplog.at_level("WARNING", logger="model.train"):
        result = train(tiny_params(), tiny_data, checkpoint_path=tmp_path / "a_file" / "t.npz")
    assert result.status == "ok" and result.epochs_run == 2
    assert sum("cannot write the checkpoint" in r.getMessage() for r in caplog.records) == 1  # once, not per epoch


def test_same_params_and_seed_give_the_same_numbers(tiny_data: object) -> None:
    from model.train import train

    first = train(tiny_params(), tiny_data)
    second = train(tiny_params(), tiny_data)
    assert _metrics(first.history) == _metrics(second.history)
    other = train(tiny_params(seed=1), tiny_data)
    assert _metrics(other.history) != _metrics(first.history)


def test_samples_are_restored_with_the_best_weights(tiny_data: object) -> None:
    from model.train import train

    result = train(tiny_params(), tiny_data, samples=2)
    assert len(result.samples) == 2
    for blur, restored, sharp in result.samples:
        assert blur.dtype == restored.dtype == sharp.dtype == np.uint8
        assert blur.shape == restored.shape == sharp.shape and blur.shape[-1] == 3
    assert train(tiny_params(epochs=1), tiny_data).samples == ()


def test_a_loss_that_turns_nan_is_reported_as_diverged(tiny_data: object) -> None:
    from model.train import train

    result = train(tiny_params(optimizer="sgd", loss="mse", learning_rate=1e12, epochs=3, steps_per_epoch=5), tiny_data)
    assert result.status == "diverged"
    assert "non-finite" in result.error
    assert result.epochs_run < 3
    assert all(np.isfinite(m["train_loss"]) for m in result.history)


def test_bad_params_raise_a_config_error_before_any_work(tiny_data: object) -> None:
    from model.errors import ConfigError
    from model.train import train

    with pytest.raises(ConfigError, match="rho"):
        train(tiny_params(rho=1.5), tiny_data)


def test_saved_best_model_predicts_a_folder(tiny_data: object, tmp_path: Path) -> None:
    from model.train import predict, train

    result = train(tiny_params(epochs=1), tiny_data, model_path=tmp_path / "m.keras")
    blur_dir = tiny_data.root / "test" / "blur"
    out = predict(result.model_path, blur_dir, tmp_path / "restored")
    names = sorted(p.name for p in blur_dir.iterdir())
    assert sorted(p.name for p in out.outputs) == names
    assert out.ms_per_image > 0
    from model.images import read_image

    assert read_image(out.outputs[0]).shape == read_image(blur_dir / names[0]).shape


def test_run_py_trains_end_to_end_on_synthetic_data(tiny_data: object, tmp_path: Path) -> None:
    """The write-up's own command, as a real subprocess."""
    model_path = tmp_path / "run.keras"
    proc = subprocess.run(
        [
            sys.executable, "run.py", "--model_path", str(model_path),
            "--dataset_dir", str(tiny_data.dir), "--dataset_name", tiny_data.name,
            "--optimizer", "rmsprop", "--loss", "mae", "--learning_rate", "0.001", "--rho", "0.9",
            "--epochs", "1", "--steps_per_epoch", "2", "--batch_size", "2", "--patch_size", "16",
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "epoch 1/1" in proc.stdout and "best val_psnr" in proc.stdout
    assert model_path.is_file()
