"""The ``sweeper`` command line: thin Typer commands that parse and call library functions.

Heavy libraries (TensorFlow, Ray, W&B) are imported inside commands, so ``--help`` and the
light commands start fast. Every :class:`~model.errors.UserError` becomes one line on
stderr and a non-zero exit status; no traceback.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, AbstractSet, Annotated, Iterator, Optional, Sequence

import typer

from model.errors import UserError
from model.runtime import VERBOSE_ENV, exit_now

if TYPE_CHECKING:
    from sweeper.space import Trial
    from sweeper.spec import SweepSpec

__all__ = ["app", "main"]

app = typer.Typer(
    name="sweeper",
    help="Grid-search a Keras deblurring model with Ray Tune, W&B and Optuna.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Make and inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


class _Stderr(logging.Handler):
    """The library's log records as ``sweeper: [warning: ]message`` lines on stderr.

    Writes to whatever ``sys.stderr`` is at the time (Typer's test runner swaps it per call).
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
            print(f"sweeper: {level}{record.getMessage()}", file=sys.stderr, flush=True)
        except Exception:  # noqa: BLE001 - logging must never take the command down
            self.handleError(record)


_HANDLER = _Stderr(logging.INFO)


@app.callback()
def _setup(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also show debug logs, TensorFlow's start-up "
                                          "lines and the Ray workers' output (e.g. `sweeper -v run SPEC`).")] = False,
) -> None:
    """Library code logs; the command line shows what the ``sweeper`` and ``model`` loggers say."""
    if verbose:
        os.environ[VERBOSE_ENV] = "1"  # read where TensorFlow starts and by Ray's set-up; workers inherit it
    for name in ("sweeper", "model"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG if verbose else logging.INFO)
        if _HANDLER not in logger.handlers:
            logger.addHandler(_HANDLER)


# Arguments several commands share, declared once.
_Sweep = Annotated[Optional[Path], typer.Argument(metavar="[SWEEP]", help="A sweep folder (default: the latest in results/).")]
_ResultsDir = Annotated[Path, typer.Option("--results-dir", help="Where sweep folders go.")]
_Metric = Annotated[Optional[str], typer.Option("--metric", help="Rank by val_psnr, val_ssim or val_mae (default: the spec's metric).")]
_DatasetName = Annotated[str, typer.Option("--name", help="Dataset name (its sub-folder of the datasets folder).")]


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turn a UserError into one line on stderr and its exit status (decorates every command)."""
    try:
        yield
    except UserError as err:
        # A spec error carries one line per problem; each gets the prefix.
        for line in str(err).splitlines() or [type(err).__name__]:
            typer.echo(f"sweeper: error: {line}", err=True)
        raise typer.Exit(err.exit_code) from None


@data_app.command("synth")
@_user_errors()
def data_synth(
    out: Annotated[Path, typer.Option("--out", help="Folder to write DATASET into.")] = Path("data"),
    name: _DatasetName = "synthetic",
    train: Annotated[int, typer.Option("--train", help="Training pairs.")] = 24,
    test: Annotated[int, typer.Option("--test", help="Test pairs.")] = 6,
    size: Annotated[int, typer.Option("--size", help="Side of each square image (multiple of 4).")] = 128,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; same seed, same bytes.")] = 0,
    kernel_size: Annotated[int, typer.Option("--kernel-size", help="Blur kernel side (odd).")] = 17,
    exposure: Annotated[float, typer.Option("--exposure", help="Fraction of the shake trajectory exposed, (0, 1].")] = 1.0,
    noise: Annotated[float, typer.Option("--noise", help="Gaussian noise sigma added to blurred images.")] = 0.01,
    sources: Annotated[Optional[Path], typer.Option("--sources", help="Folder of your own sharp images (default: scikit-image's).")] = None,
) -> None:
    """Write a synthetic deblurring dataset: camera-shake blur on bundled images."""
    from model.synth import synthesize

    root = synthesize(
        out, name, n_train=train, n_test=test, size=size, seed=seed,
        kernel_size=kernel_size, exposure=exposure, noise_sigma=noise, sources=sources,
    )
    typer.echo(f"wrote {train} train and {test} test pairs to {root}")


@data_app.command("cache")
@_user_errors()
def data_cache(
    name: _DatasetName = "synthetic",
    dataset_dir: Annotated[Path, typer.Option("--dir", help="Folder holding datasets.")] = Path("data"),
) -> None:
    """Build (or check) the node's decoded cache of a dataset, as the first trial would."""
    from model.cache import open_split
    from model.data import SPLITS, DatasetRef
    from sweeper.records import counted

    ref = DatasetRef(dataset_dir, name)
    for split in SPLITS:
        cached = open_split(ref, split)
        typer.echo(f"{split}: {counted(len(cached), 'pair')}, {cached.file.stat().st_size / 2**20:.1f} MiB in {cached.file.parent}")


@app.command("train")
@_user_errors()
def train_cmd(
    model_path: Annotated[Path, typer.Option("--model-path", "--model_path", help="Where to save the best model (.keras).")] = Path("models/deblur.keras"),
    dataset_dir: Annotated[Path, typer.Option("--dataset-dir", "--dataset_dir", help="Folder holding datasets.")] = Path("data"),
    dataset_name: Annotated[str, typer.Option("--dataset-name", "--dataset_name", help="Dataset folder name; 'synthetic' is made on first use.")] = "synthetic",
    optimizer: Annotated[str, typer.Option(help="sgd, adam, adamw, rmsprop, adagrad, nadam, ...")] = "rmsprop",
    loss: Annotated[str, typer.Option(help="A loss name or a sum like 'mae+0.1*sobel'.")] = "mae",
    learning_rate: Annotated[float, typer.Option("--learning-rate", "--learning_rate")] = 0.001,
    rho: Annotated[float, typer.Option(help="RMSprop rho.")] = 0.9,
    momentum: Annotated[float, typer.Option()] = 0.0,
    epochs: Annotated[int, typer.Option()] = 3,
    steps_per_epoch: Annotated[int, typer.Option("--steps-per-epoch", "--steps_per_epoch")] = 10,
    batch_size: Annotated[int, typer.Option("--batch-size", "--batch_size")] = 8,
    patch_size: Annotated[int, typer.Option("--patch-size", "--patch_size")] = 64,
    seed: Annotated[int, typer.Option()] = 0,
    precision: Annotated[str, typer.Option(help="float32, mixed_bfloat16 (CPUs with native bf16) or mixed_float16 (T4-class GPUs).")] = "float32",
    vgg_weights: Annotated[Optional[str], typer.Option("--vgg-weights", "--vgg_weights", help="VGG16 notop .h5 for the perceptual loss (or SWEEPER_VGG_WEIGHTS).")] = None,
) -> None:
    """Train the deblur model once and save the best epoch."""
    from model.data import DatasetRef, list_pairs
    from model.params import TrainParams
    from model.runtime import configure_runtime
    from model.synth import ensure_dataset

    params = TrainParams(
        optimizer=optimizer, loss=loss, learning_rate=learning_rate, rho=rho, momentum=momentum,
        epochs=epochs, steps_per_epoch=steps_per_epoch, batch_size=batch_size,
        patch_size=patch_size, seed=seed, precision=precision,
    )
    ensure_dataset(dataset_dir, dataset_name, fix="--dataset-dir and --dataset-name")
    dataset = DatasetRef(dataset_dir, dataset_name)
    for split in ("train", "test"):  # a wrong path answers now, not after TensorFlow loads
        list_pairs(dataset, split)
    configure_runtime()
    from model.train import train

    def show(epoch: int, m: dict[str, float]) -> None:
        typer.echo(
            f"epoch {epoch}/{params.epochs}  loss {m['train_loss']:.4f}  "
            f"val_psnr {m['val_psnr']:.2f} dB  val_ssim {m['val_ssim']:.4f}  val_mae {m['val_mae']:.4f}"
        )

    result = train(
        params, dataset, model_path=model_path, on_epoch=show,
        vgg_weights=vgg_weights if vgg_weights is not None else "auto",
    )
    if result.status != "ok":
        typer.echo(f"sweeper: training {result.status}: {result.error}", err=True)
        raise typer.Exit(3)
    typer.echo(
        f"best val_psnr {result.best['val_psnr']:.2f} dB at epoch {result.best_epoch}; "
        f"{result.images_per_second:.1f} patches/s; {result.seconds:.1f} s; saved {result.model_path}"
    )


@app.command("predict")
@_user_errors()
def predict_cmd(
    model: Annotated[Path, typer.Option("--model", help="A .keras file saved by `sweeper train`.")],
    input: Annotated[Path, typer.Option("--input", help="Folder of blurred images.")],
    output: Annotated[Path, typer.Option("--output", help="Folder for the restored images.")],
) -> None:
    """Deblur a folder of images and report milliseconds per image."""
    from model.runtime import configure_runtime

    configure_runtime(deterministic=False)
    from model.train import predict
    from sweeper.records import counted

    result = predict(model, input, output)
    typer.echo(
        f"restored {counted(len(result.outputs), 'image')} into {output}: "
        f"{result.ms_per_image:.1f} ms per image (first call {result.warmup_ms:.0f} ms, excluded)"
    )


def _trial_table(spec: SweepSpec, trials: Sequence[Trial], done: AbstractSet[str]) -> None:
    """Print the planned trials (the --dry-run view): varying params and ledger status."""
    from rich.console import Console
    from rich.table import Table

    from sweeper.records import counted

    varying = [n for n in sorted(trials[0].params) if len({repr(t.params[n]) for t in trials}) > 1] if trials else []
    table = Table(title=f"{spec.name}: {counted(len(trials), 'trial')} ({len(trials) - len(done & {t.id for t in trials})} to run)")
    table.add_column("#", justify="right")
    table.add_column("trial_id")
    for name in varying:
        table.add_column(name)
    table.add_column("ledger")
    for i, t in enumerate(trials, 1):
        table.add_row(str(i), t.id, *[str(t.params[n]) for n in varying], "done" if t.id in done else "pending")
    Console().print(table)


@app.command("run")
@_user_errors()
def run_cmd(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="Search-space YAML, e.g. search_spaces/optim_loss.yaml.")],
    results_dir: _ResultsDir = Path("results"),
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", help="Overrides sweeper.dataset.dir.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a spec value: key.path=value, or ~key.path to remove one (repeatable).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an existing sweep only (refused if --results-dir holds none); re-running without it resumes too.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the trial table; run nothing.")] = False,
    address: Annotated[Optional[str], typer.Option("--address", help="Join this Ray cluster (default: RAY_ADDRESS, else a local Ray on 127.0.0.1).")] = None,
    max_concurrent: Annotated[Optional[int], typer.Option("--max-concurrent", help="Trials at once (overrides the spec).")] = None,
    wandb_mode: Annotated[Optional[str], typer.Option("--wandb-mode", help="online | offline | disabled (default: offline without an API key).")] = None,
    wandb_sweep: Annotated[bool, typer.Option("--wandb-sweep", help="Online: register the spec as a W&B sweep and attach the runs.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Allow grids over 100,000 trials.")] = False,
) -> None:
    """Run every trial of a search space on Ray Tune; re-running resumes from the ledger."""
    from sweeper.dispatch import EXIT_INTERRUPTED, RunOptions, local_cpu_warning, resume_command, supervise
    from sweeper.spec import load

    spec = load(spec_path, tuple(set_ or ()), allow_huge=yes)
    options = RunOptions(
        results_dir=results_dir, data_dir=data_dir, resume=resume, address=address,
        max_concurrent=max_concurrent, wandb_mode=wandb_mode, wandb_sweep=wandb_sweep,
    )
    if dry_run:
        from sweeper.status import preview

        view = preview(spec, results_dir)
        if view.trials:
            _trial_table(spec, view.trials, view.done)
        if view.line:
            typer.echo(view.line)
        if slow := local_cpu_warning(spec, address):
            # Whether a GPU would take the trials is Ray's to find at run time; the CPU is known now.
            gpu = " (unless a GPU takes the trials)" if spec.resources.gpu > 0 else ""
            typer.echo(f"sweeper: warning: {slow}{gpu}", err=True)
        return
    # The driver runs in a child process: when Ray ends it (its node died), this one says so in one line.
    resume_with = resume_command(spec_path, set_ or (), options, allow_huge=yes)
    summary = supervise(spec, options, resume_with)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary.status_counts.items())) or "none"
    if summary.interrupted:
        typer.echo(
            # What the ledger holds, counted there: a race's `remaining` is only its next round.
            f"sweeper: interrupted: {sum(summary.status_counts.values())} of {summary.planned} trials in the "
            f"ledger ({counts}); resume with `{resume_with}`", err=True,
        )
        raise typer.Exit(EXIT_INTERRUPTED)
    typer.echo(
        f"{spec.name}: {summary.dispatched} trials run now, {summary.already_done} already in the ledger"
        + (f", {summary.recovered} recovered from an interrupted run" if summary.recovered else "")
        + f"; ledger: {counts}; results in {summary.sweep_dir}"
    )


@app.command("status")
@_user_errors()
def status_cmd(
    sweep: _Sweep = None,
    results_dir: _ResultsDir = Path("results"),
) -> None:
    """Show a sweep's progress from its ledger (safe while the sweep is running)."""
    from sweeper.status import sweep_status

    typer.echo(sweep_status(sweep, results_dir))


@app.command("dashboard")
@_user_errors()
def dashboard_cmd(
    sweep: _Sweep = None,
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8080,
    host: Annotated[str, typer.Option("--host", help="Interface to bind (default: this machine only).")] = "127.0.0.1",
    metric: _Metric = None,
    results_dir: _ResultsDir = Path("results"),
) -> None:
    """Serve the sweep in optuna-dashboard (history, parallel coordinates, importance), offline."""
    from sweeper import dashboard

    url, name = dashboard.prepare(sweep, results_dir, port=port, metric=metric)
    typer.echo(f"sweeper: dashboard for {name} ({url}) at http://{host}:{port}/ (Ctrl-C stops it)")
    dashboard.serve(url, host=host, port=port)


@app.command("report")
@_user_errors()
def report_cmd(
    sweep: _Sweep = None,
    fmt: Annotated[str, typer.Option("--format", help="table | md | csv | html | json (printed; report files are always written).")] = "table",
    metric: _Metric = None,
    results_dir: _ResultsDir = Path("results"),
) -> None:
    """Rank a sweep's configurations, check the write-up's claims and write report.md/html/json and plots."""
    from model.errors import ConfigError
    from sweeper.report import FORMATS, render, report, rich_table

    if fmt not in FORMATS:
        raise ConfigError(f"--format: unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    result = report(sweep, results_dir, metric)
    if fmt == "table":
        from rich.console import Console

        Console().print(rich_table(result))
        typer.echo(f"report: {result.sweep_dir / 'report.html'} (and report.md, report.json, plots/)")
    else:
        typer.echo(render(result, fmt))


def main() -> None:
    """Console-script entry point: run the command, flush every stream, and end the process.

    The end is :func:`model.runtime.exit_now`, not the interpreter's teardown: at teardown
    pyarrow's thread pools can abort the process ("terminate called without an active
    exception", apache/arrow#34314). On a loaded machine that turned a finished ``sweeper
    status`` or ``sweeper run``, its output all printed, into exit -6. This process starts no Ray
    of its own (the driver is a child with its own exit), so no exit handler of ours is skipped.
    """
    try:
        app()
        code = 0
    except SystemExit as stop:
        code = _exit_status(stop.code)
    exit_now(code)


def _exit_status(code: object) -> int:
    """The process exit status ``sys.exit(code)`` would give."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


if __name__ == "__main__":  # pragma: no cover
    main()
