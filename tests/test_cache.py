"""The node's dataset cache: same values as decoding in memory, built once, rebuilt when the
images change, shared safely, failing in one line; and a trial's memory bounded by it."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.trial_memory import peak_rss_mib
from model.cache import CACHE_DIRNAME, open_split
from model.data import DatasetRef, eval_arrays, load_split, train_pipeline
from model.errors import DataError
from model.synth import synthesize
from tests.conftest import run_cli_light

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def ref(tmp_path: Path) -> DatasetRef:
    synthesize(tmp_path, "ds", n_train=5, n_test=2, size=40, seed=1, kernel_size=7)
    return DatasetRef(tmp_path, "ds")


def _caches(ref: DatasetRef, split: str = "train") -> list[Path]:
    return sorted(p for p in (ref.root / CACHE_DIRNAME).glob(f"{split}-*") if p.is_dir())


def _same_windows(a: object, b: object) -> None:
    assert len(a) == len(b)  # type: ignore[arg-type]
    for i in range(len(a)):  # type: ignore[arg-type]
        h, w = a.size(i)  # type: ignore[attr-defined]
        assert b.size(i) == (h, w)  # type: ignore[attr-defined]
        assert np.array_equal(a.window(i, 0, 0, h, w), b.window(i, 0, 0, h, w))  # type: ignore[attr-defined]


def test_stream_and_crops_match_decoding_in_memory(ref: DatasetRef, tf_runtime: None) -> None:
    cached, memory = open_split(ref, "train"), load_split(ref, "train")
    _same_windows(cached, memory)
    assert cached.window(1, 3, 5, 8, 12).dtype == np.float32
    streams = [iter(train_pipeline(pairs, patch_size=16, batch_size=3, seed=7)) for pairs in (cached, memory)]
    for _ in range(12):  # past two epochs of five images
        (b1, s1), (b2, s2) = next(streams[0]), next(streams[1])
        assert np.array_equal(b1.numpy(), b2.numpy()) and np.array_equal(s1.numpy(), s2.numpy())
    crops = eval_arrays(open_split(ref, "test"), max_size=24), eval_arrays(load_split(ref, "test"), max_size=24)
    for (cb, cs), (mb, ms) in zip(*crops, strict=True):
        assert cb.shape == (24, 24, 3) and np.array_equal(cb, mb) and np.array_equal(cs, ms)
    index = json.loads((_caches(ref)[0] / "index.json").read_text())
    assert index["dtype"] == "uint8"
    assert cached.file.stat().st_size == 5 * 40 * 40 * 6  # uint8: a quarter of float32


def test_built_once_then_rebuilt_when_an_image_changes(ref: DatasetRef, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="model.cache"):
        first = open_split(ref, "train")
        again = open_split(ref, "train")
    assert [r.message for r in caplog.records].count(f"caching 5 image pairs (0.0 MiB, uint8) in {_caches(ref)[0]}") == 1
    assert again.file == first.file
    victim = ref.root / "train" / "sharp" / first.names[2]
    Image.fromarray(np.full((40, 40, 3), 200, np.uint8)).save(victim)
    changed = open_split(ref, "train")
    assert changed.file != first.file and _caches(ref) == [changed.file.parent]  # the stale one is gone
    assert np.array_equal(changed.window(2, 0, 0, 40, 40)[..., 3:], np.full((40, 40, 3), 200 / 255, np.float32))
    # A trial that opened the old cache before the rebuild keeps reading it.
    assert first.window(2, 0, 0, 1, 1)[0, 0, 3] != changed.window(2, 0, 0, 1, 1)[0, 0, 3]


def test_trials_starting_together_build_once(ref: DatasetRef, caplog: pytest.LogCaptureFixture) -> None:
    results: list[object] = []
    with caplog.at_level(logging.INFO, logger="model.cache"):
        threads = [threading.Thread(target=lambda: results.append(open_split(ref, "train"))) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(results) == 4 and len({r.file for r in results}) == 1  # type: ignore[attr-defined]
    assert sum(r.message.startswith("caching ") for r in caplog.records) == 1
    _same_windows(results[0], load_split(ref, "train"))


def test_sixteen_bit_images_are_cached_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for kind in ("blur", "sharp"):
            folder = tmp_path / "wide" / split / kind
            folder.mkdir(parents=True)
            for name in ("a.png", "b.png"):
                Image.fromarray(rng.integers(0, 65535, (20, 24), dtype=np.uint16)).save(folder / name)
    ref = DatasetRef(tmp_path, "wide")
    cached = open_split(ref, "train")
    assert json.loads((cached.file.parent / "index.json").read_text())["dtype"] == "float32"
    _same_windows(cached, load_split(ref, "train"))


def test_unwritable_dataset_folder_caches_elsewhere(ref: DatasetRef, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (ref.root / CACHE_DIRNAME).write_text("not a folder")  # the dataset's own cache folder cannot be made
    monkeypatch.delenv("SWEEPER_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cached = open_split(ref, "train")
    assert cached.file.is_relative_to(tmp_path / "xdg" / "sweeper" / "datasets")
    monkeypatch.setenv("SWEEPER_CACHE_DIR", str(tmp_path / "fast"))
    assert open_split(ref, "train").file.is_relative_to(tmp_path / "fast")
    _same_windows(cached, load_split(ref, "train"))


def test_damaged_cache_is_rebuilt_or_named(ref: DatasetRef, caplog: pytest.LogCaptureFixture) -> None:
    opened = open_split(ref, "train")
    os.truncate(opened.file, 100)
    with pytest.raises(DataError) as info:  # damaged under a running trial: one line, the fix named
        opened.window(4, 0, 0, 40, 40)
    message = str(info.value)
    assert "\n" not in message and str(opened.file) in message and "delete" in message
    with caplog.at_level(logging.WARNING, logger="model.cache"):
        rebuilt = open_split(ref, "train")  # the next trial notices and builds it again
    assert "dataset cache is damaged (wrong size); building it again" in caplog.text
    _same_windows(rebuilt, load_split(ref, "train"))


def test_bad_image_fails_the_build_and_leaves_no_cache(ref: DatasetRef) -> None:
    victim = ref.root / "train" / "blur" / "0003.png"
    victim.write_bytes(victim.read_bytes()[:200])  # the header survives, the pixels do not
    with pytest.raises(DataError) as info:
        open_split(ref, "train")
    assert str(info.value).startswith(f"{victim}: corrupt or truncated image")
    assert _caches(ref) == [] and not list((ref.root / CACHE_DIRNAME).glob(".train-*"))


def test_pair_of_two_sizes_fails_like_loading(ref: DatasetRef) -> None:
    victim = ref.root / "train" / "sharp" / "0001.png"
    Image.fromarray(np.zeros((40, 36, 3), np.uint8)).save(victim)
    with pytest.raises(DataError) as cached:
        open_split(ref, "train")
    with pytest.raises(DataError) as loaded:
        load_split(ref, "train")
    assert str(cached.value) == str(loaded.value) and "differs from its sharp partner" in str(cached.value)


def test_full_disk_while_caching_is_one_line_and_a_rerun_recovers(ref: DatasetRef) -> None:
    """ENOSPC injected where the finished cache is moved into place (tests/fault_write)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "fault_write"), str(ROOT)]),
           "SWEEPER_FAULT_ERRNO": "ENOSPC", "SWEEPER_FAULT_FILE": "train-*"}
    env.pop("SWEEPER_CACHE_DIR", None)
    argv = [sys.executable, "-m", "sweeper.cli", "data", "cache", "--dir", str(ref.dir), "--name", ref.name]
    failed = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1, failed.stderr
    errors = [line for line in failed.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "(disk full)" in errors[0] and "SWEEPER_CACHE_DIR" in errors[0]
    assert "Traceback" not in failed.stderr and _caches(ref) == []
    ok = run_cli_light(["data", "cache", "--dir", str(ref.dir), "--name", ref.name])  # and imports no TF
    assert "train: 5 pairs, 0.0 MiB in" in ok.stdout and len(_caches(ref)) == 1


# A trial's data path without the model (see benchmarks.trial_memory): 40 batches of patches,
# then every evaluation crop of the training split (the largest).
_TRIAL = """
pairs = split("train")
stream = iter(train_pipeline(pairs, patch_size=64, batch_size=16, seed=0))
for _ in range(40):
    next(stream)
for blur, sharp in eval_arrays(pairs):
    pass
del stream  # a live iterator at exit deadlocks TensorFlow's numpy_function threads
"""


def _large(root: Path, name: str, pairs: int) -> DatasetRef:
    """``pairs`` 512x512 training pairs (BMP: quick to write) and two test pairs."""
    rng = np.random.default_rng(0)
    for split, count in (("train", pairs), ("test", 2)):
        for kind in ("blur", "sharp"):
            (root / name / split / kind).mkdir(parents=True)
        for i in range(count):
            image = rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)
            for kind in ("blur", "sharp"):
                Image.fromarray(image).save(root / name / split / kind / f"{i:03d}.bmp")
    return DatasetRef(root, name)


def _peak_rss_mib(ref: DatasetRef, how: str) -> float:
    return peak_rss_mib(_TRIAL, (ref.dir, ref.name), how, timeout=300)


def test_trial_memory_does_not_grow_with_the_dataset(tmp_path: Path) -> None:
    """64 pairs of 512x512 are 384 MiB as float32 (96 MiB cached); 4 pairs are 24 MiB.

    Reading through the cache, the trial's peak RSS stays within 40 MiB across the two; decoding
    the split in memory (the old way, and the check that this test can fail) adds over 200 MiB.
    """
    small, large = _large(tmp_path, "small", 4), _large(tmp_path, "large", 64)
    cached_small, cached_large = _peak_rss_mib(small, "cache"), _peak_rss_mib(large, "cache")
    in_memory_large = _peak_rss_mib(large, "memory")
    assert cached_large - cached_small < 40, (cached_small, cached_large)
    assert in_memory_large - cached_large > 200, (cached_small, cached_large, in_memory_large)
    shutil.rmtree(tmp_path / "large")
