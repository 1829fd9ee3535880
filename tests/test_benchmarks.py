"""The benchmark harness: its FLOP count agrees with TensorFlow's own, its arithmetic is right,
and ``benchmarks/run.py`` prints one JSON object per line. Nothing here times anything."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmarks.report_scale import written_ledger
from benchmarks.search import asha_replay
from benchmarks.timing import later_epochs_rate
from benchmarks.training import forward_flops_per_image
from tests.conftest import ROOT


def test_conv_flops_agree_with_tensorflows_profiler() -> None:
    """The roofline's numerator: the analytic count against TF's registered op statistics."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    from tensorflow.python.profiler import model_analyzer, option_builder

    from model.architecture import build_model

    patch = 32
    net = build_model((patch, patch, 3))
    forward = tf.function(lambda x: net(x, training=False)).get_concrete_function(
        tf.TensorSpec((1, patch, patch, 3), tf.float32))
    graph = convert_variables_to_constants_v2(forward).graph
    opts = option_builder.ProfileOptionBuilder(option_builder.ProfileOptionBuilder.float_operation()
                                               ).with_empty_output().build()
    stats = model_analyzer.profile(graph, options=opts)
    conv_ops = {"Conv2D", "Conv2DBackpropInput"}
    # TF attributes a convolution's FLOPs to the op node; sum those of convolution type only
    # (the analytic count leaves out bias adds, BN, ReLU, pooling, adds and concatenations).
    by_type = {node.name: node.float_ops for node in stats.children}
    tf_conv = sum(flops for name, flops in by_type.items()
                  if graph.get_operation_by_name(name).type in conv_ops)
    assert tf_conv > 0
    assert forward_flops_per_image(patch) == tf_conv


def test_later_epochs_rate_skips_the_warm_up_epoch() -> None:
    # 10 images an epoch; epoch 1 took 5 s (tracing), epochs 2 and 3 took 1 s each.
    history = ({"epoch": 1, "images_per_second": 10 / 5}, {"epoch": 2, "images_per_second": 20 / 6},
               {"epoch": 3, "images_per_second": 30 / 7})
    assert later_epochs_rate(history, 10) == pytest.approx(10.0)
    assert later_epochs_rate(history[:1], 10) == pytest.approx(2.0)


def test_asha_replay_runs_the_sweepers_own_scheduler_on_recorded_curves() -> None:
    """Three trials, 3 epochs, ASHA (min_iter 1, eta 3): a rung at epoch 1 keeps the top third.

    One at a time, best first: the best runs all 3 epochs and sets the bar the others miss
    at epoch 1 (3 + 1 + 1 of 9). Worst first, each newcomer beats the ones before it, so all
    run to the end (9 of 9). The scheduler object is the sweeper's, not a re-implementation.
    """
    from sweeper.spec import load

    spec = load(ROOT / "search_spaces" / "lr_rho.yaml",
                ("epochs=3", "early_terminate={type: hyperband, min_iter: 1, eta: 3}"))
    curves = {"best": [22.0, 23.0, 24.0], "mid": [21.0, 21.5, 22.0], "low": [20.0, 20.5, 20.7]}
    assert asha_replay(spec, curves, ["best", "mid", "low"], concurrent=1) == (5, 24.0)
    assert asha_replay(spec, curves, ["low", "mid", "best"], concurrent=1) == (9, 24.0)
    # Two side by side: mid passes epoch 1 unopposed and best beats it, so both run to the end;
    # low starts in the freed slot and is stopped at epoch 1 (3 + 3 + 1).
    assert asha_replay(spec, curves, ["mid", "best", "low"], concurrent=2) == (7, 24.0)


def test_cli_prints_a_machine_line_then_one_json_object_per_benchmark(tmp_path) -> None:
    out = tmp_path / "bench.jsonl"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--only", "inference",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["name"] for r in lines] == ["machine", "inference"]
    assert lines[0]["cores"] >= 1 and isinstance(lines[0]["avx512f"], bool)
    inference = lines[1]
    assert inference["quick"] is True and "error" not in inference
    assert inference["ms_per_image_256"] > 0 and inference["images_per_s_batch16"] > 0
    assert 3.0 < inference["model_file_mb"] < 5.0  # 972,739 float32 weights, ~3.7 MiB, plus the archive
    assert [json.loads(line) for line in out.read_text().splitlines()] == lines
    # Progress goes to stderr, one line before and one after each benchmark.
    progress = [line for line in proc.stderr.splitlines() if line.startswith("[1/1] inference")]
    assert progress[0] == "[1/1] inference --quick: running ..." and progress[1].startswith("[1/1] inference: done in ")


def test_cli_refuses_an_unknown_benchmark_name() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--only", "speed"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "invalid choice: 'speed'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_report_scale_writes_a_ledger_the_report_reads_whole(tmp_path) -> None:
    """The report bench's ledger: every trial and epoch there, and ranked as one configuration
    per (lr, rho) pair with all its seeds (nothing timed)."""
    from sweeper.ledger import Ledger
    from sweeper.report import build_report

    assert written_ledger(tmp_path / "r", 3, 2, 4, epochs=2) == 24
    trials, epochs = Ledger(tmp_path / "r", create=False).snapshot()
    assert len(trials) == 24 and len(epochs) == 48 and trials["trial_id"].is_unique
    result = build_report(tmp_path / "r", plots=False)
    assert len(result.ranking) == 6 and all(c.n == 4 for c in result.ranking) and not result.partial
