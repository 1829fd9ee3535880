"""Benchmarks of the sweeper: training throughput, orchestration overhead, concurrency,
search efficiency, inference, report and dataset scale, precision and 16-bit convolution arithmetic.

``python benchmarks/run.py [--quick] [--only NAME ...] [--out FILE]`` prints one JSON object
per line: first a ``machine`` line, then one line per benchmark. Every benchmark runs in its
own child process (``python benchmarks/run.py --one NAME [--quick]``) because TensorFlow's
thread settings are fixed per process and Ray's start-up must not pollute training numbers.

The benchmarks live one group to a module: :mod:`benchmarks.training` (train_throughput,
inference), :mod:`benchmarks.orchestration` (orchestration_overhead, concurrency, load),
:mod:`benchmarks.search` (search_efficiency), :mod:`benchmarks.report_scale` and
:mod:`benchmarks.scale` (dataset_scale, precision, conv_arithmetic), :mod:`benchmarks.resume`
(checkpoint); this script registers and runs them.

Benchmarks measure; nothing here asserts on speed. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Imported after the path set-up above: this file runs as a script.
from benchmarks.common import Figures  # noqa: E402
from benchmarks.orchestration import bench_concurrency, bench_load, bench_orchestration_overhead  # noqa: E402
from benchmarks.report_scale import bench_report_scale  # noqa: E402
from benchmarks.resume import bench_checkpoint  # noqa: E402
from benchmarks.scale import bench_conv_arithmetic, bench_dataset_scale, bench_precision  # noqa: E402
from benchmarks.search import bench_search_efficiency  # noqa: E402
from benchmarks.training import bench_inference, bench_train_throughput  # noqa: E402
from model.runtime import cpu_info  # noqa: E402


BENCHMARKS: dict[str, Callable[[bool], Figures]] = {
    "train_throughput": bench_train_throughput,
    "orchestration_overhead": bench_orchestration_overhead,
    "concurrency": bench_concurrency,
    "search_efficiency": bench_search_efficiency,
    "inference": bench_inference,
    "load": bench_load,
    "report_scale": bench_report_scale,
    "dataset_scale": bench_dataset_scale,
    "precision": bench_precision,
    "conv_arithmetic": bench_conv_arithmetic,
    "checkpoint": bench_checkpoint,
}


def _machine() -> Figures:
    """CPU model, core count, AVX flags and the TensorFlow version (without importing TF)."""
    model, flags = cpu_info()
    try:
        tf_version = metadata.version("tensorflow")
    except metadata.PackageNotFoundError:
        tf_version = "not installed"
    return {
        "name": "machine",
        "cpu_model": model,
        "cores": os.cpu_count(),
        "avx512f": "avx512f" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags,
        "avx2": "avx2" in flags,
        "tensorflow": tf_version,
        "python": sys.version.split()[0],
    }


def _run_child(name: str, quick: bool, timeout: float) -> Figures:
    """Run one benchmark in a fresh interpreter; its last stdout JSON line, or an error record."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", name] + (["--quick"] if quick else [])
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"name": name, "error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        return {"name": name, "error": f"exit {proc.returncode}: {tail}"}
    record = json.loads(lines[-1])
    record["wall_s"] = time.perf_counter() - t0
    return record


def _one(name: str, quick: bool) -> None:
    """Child entry point: run one benchmark, print its JSON line."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    figures = BENCHMARKS[name](quick)
    print(json.dumps({"name": name, "quick": quick, **figures}, default=str), flush=True)


def _announced_child(name: str, index: int, total: int, args: argparse.Namespace) -> Figures:
    """One benchmark child, with a line on stderr before and after (stdout stays JSON): a full
    run is silent for up to an hour otherwise."""
    print(f"[{index}/{total}] {name}{' --quick' if args.quick else ''}: running ...", file=sys.stderr, flush=True)
    record = _run_child(name, args.quick, args.timeout)
    outcome = f"error: {record['error'].splitlines()[0]}" if "error" in record else f"done in {record['wall_s']:.1f} s"
    print(f"[{index}/{total}] {name}: {outcome}", file=sys.stderr, flush=True)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), metavar="NAME", help="run only these")
    parser.add_argument("--out", type=Path, help="also append the JSON lines to this file")
    parser.add_argument("--one", choices=list(BENCHMARKS), help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per benchmark (default 3600)")
    args = parser.parse_args(argv)
    if args.one:
        _one(args.one, args.quick)
        return 0
    out = args.out.open("a") if args.out else None
    failed = False
    names = args.only or list(BENCHMARKS)
    for record in (_machine() if n is None else _announced_child(n, i, len(names), args) for i, n in enumerate([None, *names])):
        line = json.dumps(record, default=str)
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()
        failed |= "error" in record
    if out:
        out.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
